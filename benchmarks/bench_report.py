"""Summaries, targets (issue 5) and the printed table of a benchmark run.

The printed report is Markdown, so docs/benchmarks.md can carry it as is.
"""

from __future__ import annotations

import statistics
from typing import Any

LABELS = {
    "copy": "ours: COPY strategy (psycopg 3)",
    "copy_psycopg2": "ours: COPY strategy (psycopg2)",
    "fdw": "ours: FDW strategy (fetch_size 10000)",
    "psql_pipe": "psql COPY binary pipe (reference)",
    "original_fdw": "original FDW: INSERT..SELECT, fetch_size 100",
    "original_copy": "original COPY: CSV via FDW, buffered",
    "generic_transfer": "Airflow GenericTransfer (slice)",
}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(results: dict[str, Any]) -> None:
    """Add ``summary`` (medians and ratios per table and method), ``verify`` and ``targets``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in results["measurements"]:
        groups.setdefault((m["table"], m["method"]), []).append(m)
    tables = results.get("tables", {})
    summary: dict[str, dict[str, Any]] = {}
    for (table, method), ms in groups.items():
        seconds = _median([m["seconds"] for m in ms])
        rows = ms[0]["expected_rows"]
        copy_bytes = next(
            (
                m["bytes"]
                for m in results["measurements"]
                if m["table"] == table and m["method"] == "copy" and m.get("bytes")
            ),
            None,
        )
        facts = tables.get(table, {})
        table_bytes = copy_bytes or facts.get("source_table_bytes") or 0
        moved = table_bytes * rows / max(facts.get("rows", rows), 1)
        summary.setdefault(table, {})[method] = {
            "label": LABELS.get(method, method),
            "rows": rows,
            "seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds, 1) if seconds else 0.0,
            "mb_per_second": round(moved / 1e6 / seconds, 2) if seconds else 0.0,
            "peak_rss_mb": round(max(m["peak_rss_kb"] for m in ms) / 1024, 1),
            "cpu_seconds": round(_median([m.get("cpu_seconds", 0.0) for m in ms]), 2),
            "steal_percent": round(_median([m.get("steal_percent", 0.0) for m in ms]), 1),
            "runs": len(ms),
            "all_seconds": [round(m["seconds"], 3) for m in ms],
        }
    order = list(LABELS)
    for table in summary:  # ours first, then the references, whatever order they ran in
        summary[table] = dict(
            sorted(
                summary[table].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)
            )
        )
    for methods in summary.values():
        pipe = methods.get("psql_pipe")
        for entry in methods.values():
            entry["ratio_to_pipe"] = (
                round(entry["rows_per_second"] / pipe["rows_per_second"], 3)
                if pipe and pipe["rows_per_second"]
                else None
            )
    results["summary"] = summary
    results["mb_basis"] = (
        "MB = bytes of our binary COPY stream of the table (scaled to the slice for "
        "GenericTransfer); pg_table_size when our COPY was not measured"
    )

    verify: dict[str, Any] = {}
    for (table, method), ms in groups.items():
        if method != "copy":
            continue
        vs = [m["verify_seconds"] for m in ms if "verify_seconds" in m]
        if vs:
            copy_s = _median([m["seconds"] for m in ms])
            verify[table] = {
                "verify_seconds": round(_median(vs), 3),
                "copy_seconds": round(copy_s, 3),
                "ratio": round(_median(vs) / copy_s, 3),
                "status": sorted({m.get("verify_status") for m in ms}),
            }
    results["verify"] = verify
    results["targets"] = targets(results)


def _target(
    out: list[dict[str, Any]],
    name: str,
    table: str,
    value: float | None,
    limit: float,
    higher: bool,
    detail: str = "",
) -> None:
    if value is None:
        return
    met = value >= limit if higher else value <= limit
    out.append(
        {
            "target": name,
            "table": table,
            "value": round(value, 3),
            "limit": f"{'>=' if higher else '<='} {limit}",
            "met": met,
            "detail": detail,
        }
    )


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    summary = results.get("summary", {})

    def rps(table: str, method: str) -> float | None:
        entry = summary.get(table, {}).get(method)
        return entry["rows_per_second"] if entry else None

    by_run: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for m in results.get("measurements", []):
        by_run.setdefault((m["table"], m["method"]), {})[m["run"]] = m

    def speed(m: dict[str, Any]) -> float:
        return m["expected_rows"] / m["seconds"]

    def ratio(table: str, a: str, b: str) -> tuple[float | None, str]:
        """Median of the per-run ratios when both ran in several runs (the two ran minutes apart, under
        the same neighbours), else the ratio of the medians."""
        ra, rb = by_run.get((table, a), {}), by_run.get((table, b), {})
        common = sorted(set(ra) & set(rb))
        if len(common) >= 2:
            per = [speed(ra[i]) / speed(rb[i]) for i in common]
            return _median(per), "per run: " + ", ".join(f"{x:.2f}" for x in per)
        x, y = rps(table, a), rps(table, b)
        return (x / y if x and y else None), ""

    def ratio_target(name: str, table: str, a: str, b: str, limit: float) -> None:
        value, detail = ratio(table, a, b)
        _target(out, name, table, value, limit, True, detail)

    for table in summary:
        for method in ("copy", "copy_psycopg2"):
            who = "COPY (psycopg 3)" if method == "copy" else "COPY (psycopg2)"
            ratio_target(f"{who} vs psql binary pipe", table, method, "psql_pipe", 0.9)
        ratio_target("COPY vs original FDW strategy", table, "copy", "original_fdw", 2)
        ratio_target("COPY vs original COPY strategy", table, "copy", "original_copy", 2)
        ratio_target("COPY vs GenericTransfer", table, "copy", "generic_transfer", 40)
        for method in ("copy", "copy_psycopg2"):
            entry = summary.get(table, {}).get(method)
            if entry:
                _target(out, f"peak RSS MB, {LABELS[method]}", table, entry["peak_rss_mb"], 150, False)
    if "narrow" in summary:
        ratio_target(
            "FDW strategy vs original FDW (default fetch_size)", "narrow", "fdw", "original_fdw", 1.5
        )
    for table, v in results.get("verify", {}).items():
        _target(out, "verify time / copy time", table, v["ratio"], 0.5, False)

    experiments = results.get("experiments", {})
    small = experiments.get("memory_small")
    big = summary.get("narrow", {}).get("copy")
    if small and big:
        small_mb = small["peak_rss_kb"] / 1024
        _target(
            out,
            "peak RSS at full size / at the small size (narrow)",
            "narrow",
            big["peak_rss_mb"] / small_mb,
            1.2,
            False,
            f"{big['rows']:,} rows: {big['peak_rss_mb']:.0f} MB; {small['rows']:,} rows: {small_mb:.0f} MB",
        )
    deferred, in_place = experiments.get("indexes_deferred"), experiments.get("indexes_in_place")
    if deferred and in_place:
        _target(
            out,
            "events + 3 indexes: built after / maintained during",
            "events",
            deferred["seconds"] / in_place["seconds"],
            0.7,
            False,
            f"{deferred['seconds']:.1f} s vs {in_place['seconds']:.1f} s; same names and definitions: "
            f"{deferred.get('same_indexes') and in_place.get('same_indexes')}",
        )

    for table, est in results.get("analyze", {}).items():
        for strategy, method in (("copy", "copy"), ("fdw", "fdw")):
            entry = summary.get(table, {}).get(method)
            if entry and entry["seconds"]:
                _target(
                    out,
                    f"analyze estimate / measured, {strategy}",
                    table,
                    est[strategy] / entry["seconds"],
                    2,
                    False,
                    f"estimated {est[strategy]:.1f} s, measured {entry['seconds']:.1f} s",
                )
                out[-1]["met"] = 0.5 <= est[strategy] / entry["seconds"] <= 2
                out[-1]["limit"] = "0.5 .. 2"
    return out


def _fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    machine = results.get("machine", {})
    target_settings = results.get("cluster_settings", {}).get("target", {})
    lines.append(
        f"Machine: {machine.get('nproc')} CPUs ({machine.get('cpu')}), {machine.get('memory_gb')} GB RAM, "
        f"load average at start {', '.join(f'{x:.2f}' for x in machine.get('loadavg_at_start', []))}"
    )
    if target_settings:
        lines.append(
            f"PostgreSQL {target_settings.get('server_version')}, both clusters: "
            + ", ".join(
                f"{k}={target_settings[k]}"
                for k in (
                    "shared_buffers",
                    "wal_level",
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "max_wal_size",
                    "max_parallel_maintenance_workers",
                )
                if k in target_settings
            )
        )
    params = results.get("parameters", {})
    lines.append(f"Runs: {params.get('runs')} (median reported)")
    steal = sorted(m["steal_percent"] for m in results.get("measurements", []) if "steal_percent" in m)
    if steal:
        lines.append(
            f"CPU steal (hypervisor) during the measurements: median {_median(steal):.1f}%, "
            f"max {steal[-1]:.1f}%"
        )
    for table, methods in results.get("summary", {}).items():
        facts = results.get("tables", {}).get(table, {})
        lines.append("")
        lines.append(
            f"### {table} ({facts.get('source', table)} -> {facts.get('target', table)}, "
            f"{_fmt_int(facts.get('rows', 0))} rows)"
        )
        lines.append("")
        lines.append("| method | rows | seconds | rows/s | MB/s | peak RSS MB | CPU s | x pipe |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for e in methods.values():
            ratio = f"{e['ratio_to_pipe']:.2f}" if e.get("ratio_to_pipe") is not None else "-"
            lines.append(
                f"| {e['label']} | {_fmt_int(e['rows'])} | {e['seconds']:.2f} | {_fmt_int(e['rows_per_second'])} "
                f"| {e['mb_per_second']:.1f} | {e['peak_rss_mb']:.0f} | {e['cpu_seconds']:.1f} | {ratio} |"
            )
    tgts = results.get("targets", [])
    if tgts:
        lines.append("")
        lines.append("### Targets")
        lines.append("")
        lines.append("| target | table | value | limit | met | detail |")
        lines.append("|---|---|---:|---|---|---|")
        for t in tgts:
            lines.append(
                f"| {t['target']} | {t['table']} | {t['value']:.2f} | {t['limit']} | "
                f"{'yes' if t['met'] else 'NO'} | {t['detail']} |"
            )
    return "\n".join(lines)
