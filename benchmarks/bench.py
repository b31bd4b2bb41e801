"""Side-by-side copy benchmark: our COPY and FDW strategies against the practical limit (a binary psql
pipe), the original tool's two strategies, and Airflow's GenericTransfer, on the same data, in one run.

    make bench                                   # full size: narrow 10M, events 5M, users 1M rows
    .venv/bin/python benchmarks/bench.py --scale 0.1 --out /tmp/bench.json      # a tenth of that
    .venv/bin/python benchmarks/bench.py --narrow-rows 2000 --events-rows 2000 --users-rows 2000 \\
        --generic-rows 2000 --memory-rows 1000 --out /tmp/tiny.json           # smoke size

It starts two throwaway clusters (source and target, identical settings, all of them recorded in the
output), builds the source tables, sets up the postgres_fdw link the way FdwSetupOperator does
(fetch_size 10000) plus a second server the way the original does (default fetch_size), and then
measures every method on every table, each in a process of its own (so peak RSS is that method's),
the target table emptied and both clusters checkpointed before each measurement. Experiments:
verify time vs copy time, peak RSS at two sizes of the narrow table, loading ``events`` with three
secondary indexes (built after the data vs maintained during the load), and analyze's time estimates
vs the measured times. Prints a table and writes everything as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(HERE), str(REPO)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_methods  # noqa: E402
import bench_report  # noqa: E402

DEFAULT_ROWS = {"narrow": 10_000_000, "events": 5_000_000, "users": 1_000_000}
DEFAULT_GENERIC_ROWS = 1_000_000
DEFAULT_MEMORY_ROWS = 1_000_000

#: Measured methods, in the order they run for each table (the pipe right before our COPY, so the two
#: compared most closely see the same machine state).
METHODS = ("psql_pipe", "copy", "copy_psycopg2", "fdw", "original_fdw", "original_copy", "generic_transfer")
#: Slow, and far from our numbers (>= 4x): measured in the first run only.
ONCE = ("generic_transfer", "original_copy")

#: Settings of both clusters on top of PostgresCluster.DEFAULT_SETTINGS (the same for every method).
BENCH_SETTINGS: dict[str, Any] = {
    "max_parallel_maintenance_workers": 2,
    "max_wal_size": "8GB",
}
REPORTED_SETTINGS = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
    "max_worker_processes",
    "wal_level",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_compression",
    "max_wal_size",
    "checkpoint_timeout",
    "wal_buffers",
    "jit",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-results.json", help="JSON results file")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every default row count by this")
    p.add_argument("--narrow-rows", type=int)
    p.add_argument("--events-rows", type=int)
    p.add_argument("--users-rows", type=int)
    p.add_argument("--generic-rows", type=int, help="rows of the slice GenericTransfer moves (default 1M)")
    p.add_argument(
        "--memory-rows",
        type=int,
        help="rows of the small narrow load compared with the full one for peak RSS (default 1M)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="repetitions; the median is reported (GenericTransfer and the original COPY run once)",
    )
    p.add_argument(
        "--tables", default=",".join(DEFAULT_ROWS), help="comma-separated subset of narrow,events,users"
    )
    p.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}"
    )
    p.add_argument("--no-experiments", action="store_true", help="skip the memory and index experiments")
    p.add_argument(
        "--wal-level",
        default="replica",
        choices=("replica", "minimal", "logical"),
        help="wal_level of both clusters (PostgreSQL's default: replica)",
    )
    p.add_argument("--work-dir", default=str(REPO / ".work" / "bench"), help="where the clusters live")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one measurement")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.tables = [t for t in args.tables.split(",") if t]
    args.methods = [m for m in args.methods.split(",") if m]
    for t in args.tables:
        if t not in DEFAULT_ROWS:
            p.error(f"unknown table {t!r}: choose from {', '.join(DEFAULT_ROWS)}")
    for m in args.methods:
        if m not in METHODS:
            p.error(f"unknown method {m!r}: choose from {', '.join(METHODS)}")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def row_counts(args: argparse.Namespace) -> dict[str, int]:
    explicit = {"narrow": args.narrow_rows, "events": args.events_rows, "users": args.users_rows}
    return {t: max(1, explicit[t] or int(DEFAULT_ROWS[t] * args.scale)) for t in args.tables}


def machine_info() -> dict[str, Any]:
    import psycopg
    import psycopg2

    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()})",
        "psycopg2": psycopg2.__version__.split()[0],
        "loadavg_at_start": os.getloadavg(),
    }


class Bench:
    """One benchmark run: clusters, data, measurements, results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows = row_counts(args)
        scale = args.scale
        self.generic_rows = args.generic_rows or max(1, int(DEFAULT_GENERIC_ROWS * scale))
        self.memory_rows = args.memory_rows or max(1, int(DEFAULT_MEMORY_ROWS * scale))
        self.script = str(Path(__file__).resolve())
        self.results: dict[str, Any] = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "parameters": {
                "rows": self.rows,
                "generic_rows": self.generic_rows,
                "memory_rows": self.memory_rows,
                "runs": args.runs,
                "methods": args.methods,
                "wal_level": args.wal_level,
            },
            "machine": machine_info(),
            "measurements": [],
        }

    # ------------------------------------------------------------------------------------- setup
    def start(self) -> None:
        from airflow_provider_confiture.testing.postgres_cluster import DEFAULT_SETTINGS, PostgresCluster

        settings = {**BENCH_SETTINGS, "wal_level": self.args.wal_level}
        if self.args.wal_level == "minimal":
            settings["max_wal_senders"] = 0
        work = Path(self.args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        self.source = PostgresCluster(f"source-{os.getpid()}", work, settings=settings)
        self.target = PostgresCluster(f"target-{os.getpid()}", work, settings=settings)
        self.source.start()
        self.target.start()
        self.source_db = self.source.create_database("bench_source")
        self.target_db = self.target.create_database("bench_target")
        self.results["cluster_settings"] = {
            "configured": {**DEFAULT_SETTINGS, **settings},
            "source": self._show(self.source.connect(self.source_db)),
            "target": self._show(self.target.connect(self.target_db)),
            "session": {"maintenance_work_mem (our index rebuild, SET LOCAL)": "512MB"},
        }

    @staticmethod
    def _show(conn: Any) -> dict[str, str]:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                (list(REPORTED_SETTINGS),),
            )
            return dict(cur.fetchall())

    def stop(self) -> None:
        import shutil

        for cluster in (getattr(self, "target", None), getattr(self, "source", None)):
            if cluster is not None:
                cluster.destroy()
        shutil.rmtree(self._airflow_home(), ignore_errors=True)

    def build(self) -> None:
        import bench_data

        from airflow_provider_confiture.core.link import fdw
        from airflow_provider_confiture.core.planning import plan_migration
        from airflow_provider_confiture.core.planning.mapping import parse_mapping_text
        from airflow_provider_confiture.core.planning.plan import PlanOptions

        started = time.monotonic()
        with self.source.connect(self.source_db) as conn:
            bench_data.build_source(conn, self.rows)
        with self.target.connect(self.target_db) as conn:
            bench_data.build_target(conn, list(self.rows))
        self.results["build_seconds"] = round(time.monotonic() - started, 1)
        self.mapping_text = "".join(bench_data.TABLES[t].mapping_yaml() for t in self.rows)

        # Our link, exactly as FdwSetupOperator makes it (fetch_size 10000), and the original's.
        src = bench_methods.connect("psycopg3", self.conninfo("source"))
        tgt = bench_methods.connect("psycopg3", self.conninfo("target"))
        try:
            result, source_catalog = plan_migration(
                src, tgt, parse_mapping_text(self.mapping_text), PlanOptions()
            )
            link = fdw.FdwLink(
                host=self.source.host,
                port=self.source.port,
                dbname=self.source_db,
                user=self.source.superuser,
                password=self.source.password,
            )
            fdw.setup_link(tgt, link, result.plans, source_catalog, PlanOptions())
            self.results["fdw_link"] = {"server": link.server, "fetch_size": link.fetch_size}
        finally:
            src.close()
            tgt.close()
        with self.target.connect(self.target_db) as conn:
            bench_data.create_reference_server(
                conn,
                self.source.host,
                self.source.port,
                self.source_db,
                self.source.superuser,
                self.source.password,
                list(self.rows),
            )
        self.results["tables"] = self._table_facts()

    def _table_facts(self) -> dict[str, Any]:
        import bench_data

        facts = {}
        with self.source.connect(self.source_db) as conn, conn.cursor() as cur:
            for key, rows in self.rows.items():
                spec = bench_data.TABLES[key]
                cur.execute(
                    "SELECT pg_table_size(%s::regclass), pg_total_relation_size(%s::regclass)",
                    (spec.source, spec.source),
                )
                heap, total = cur.fetchone()
                facts[key] = {
                    "source": spec.source,
                    "target": spec.target,
                    "rows": rows,
                    "source_table_bytes": heap,
                    "source_total_bytes": total,
                }
        return facts

    def conninfo(self, side: str) -> str:
        cluster, db = (self.source, self.source_db) if side == "source" else (self.target, self.target_db)
        return cluster.conninfo(db)

    # ------------------------------------------------------------------------------- measuring
    def _reset(self, table: str) -> None:
        """Empty the target table and checkpoint both clusters: every method starts from the same state."""
        import bench_data
        from psycopg import sql

        with self.target.connect(self.target_db) as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(bench_data.TABLES[table].target)))
            conn.execute("CHECKPOINT")
        with self.source.connect(self.source_db) as conn:
            conn.execute("CHECKPOINT")

    def _target_rows(self, table: str) -> int:
        import bench_data
        from psycopg import sql

        with self.target.connect(self.target_db) as conn:
            return conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(bench_data.TABLES[table].target))
            ).fetchone()[0]

    def _ours_spec(self, table: str, strategy: str, driver: str, **extra: Any) -> dict[str, Any]:
        import bench_data

        spec = bench_data.TABLES[table]
        return {
            "worker": "ours",
            "strategy": strategy,
            "driver": driver,
            "table": table,
            "source": self.conninfo("source"),
            "target": self.conninfo("target"),
            "source_table": spec.source,
            "target_table": spec.target,
            "columns": spec.column_string,
            **extra,
        }

    def measure(self, table: str, method: str, expected: int | None = None, **extra: Any) -> dict[str, Any]:
        """Run one method on one table (target emptied first); returns its measurement."""
        import bench_data

        spec = bench_data.TABLES[table]
        self._reset(table)
        expected = expected or self.rows[table]
        timeout = self.args.timeout
        load_before = os.getloadavg()[0]
        cpu_before = cpu_times()
        if method == "copy":
            r = bench_methods.run_worker(
                self.script, self._ours_spec(table, "copy", "psycopg3", verify=True, **extra), timeout
            )
        elif method == "copy_psycopg2":
            r = bench_methods.run_worker(
                self.script, self._ours_spec(table, "copy", "psycopg2", **extra), timeout
            )
        elif method == "fdw":
            r = bench_methods.run_worker(
                self.script, self._ours_spec(table, "fdw", "psycopg3", **extra), timeout
            )
        elif method == "psql_pipe":
            r = bench_methods.psql_pipe(
                str(self.source.psql_path),
                (self.source.conninfo(self.source_db, self.source.superuser), self.source.password),
                (self.target.conninfo(self.target_db, self.target.superuser), self.target.password),
                spec.copy_out("binary").as_string(None),
                spec.copy_in("binary").as_string(None),
                timeout,
            )
        elif method in ("original_fdw", "original_copy"):
            r = bench_methods.run_worker(
                self.script,
                {
                    "worker": method,
                    "table": table,
                    "target": self.conninfo("target"),
                    "foreign_schema": bench_data.REFERENCE_SCHEMA,
                },
                timeout,
            )
        elif method == "generic_transfer":
            expected = min(self.generic_rows, self.rows[table])
            r = bench_methods.run_worker(
                self.script,
                {
                    "worker": "generic_transfer",
                    "table": table,
                    "limit_id": expected,
                    "expected_rows": expected,
                    "source_conn_id": "bench_source",
                    "target_conn_id": "bench_target",
                    "airflow_env": self._airflow_env(),
                },
                timeout,
            )
        else:  # pragma: no cover - parse_args rejects it
            raise ValueError(method)
        r["steal_percent"] = steal_percent(cpu_before, cpu_times())
        r["target_rows"] = self._target_rows(table)
        r["expected_rows"] = expected
        r["rows_ok"] = r["target_rows"] == expected and r.get("rows", expected) in (expected, -1)
        r["loadavg_before"] = round(load_before, 2)
        if not r["rows_ok"]:
            raise RuntimeError(
                f"{method} on {table}: target holds {r['target_rows']} rows, expected {expected} "
                f"(method reported {r.get('rows')})"
            )
        return r

    def _airflow_home(self) -> Path:
        return Path(self.args.work_dir) / f"airflow-{os.getpid()}"

    def _airflow_env(self) -> dict[str, str]:
        home = self._airflow_home()
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        for conn_id, cluster, db in (
            ("bench_source", self.source, self.source_db),
            ("bench_target", self.target, self.target_db),
        ):
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "postgres",
                    "host": cluster.host,
                    "port": cluster.port,
                    "login": cluster.superuser,
                    "password": cluster.password,
                    "schema": db,
                }
            )
        return env

    def run_methods(self) -> None:
        for run in range(self.args.runs):
            for table in self.rows:
                for method in self.args.methods:
                    if run > 0 and method in ONCE:
                        continue
                    say(f"run {run + 1}/{self.args.runs}: {table:<7} {method:<17}", end="")
                    r = self.measure(table, method)
                    say(
                        f" {r['seconds']:8.2f} s  {r['expected_rows'] / r['seconds']:>12,.0f} rows/s  "
                        f"peak RSS {r['peak_rss_kb'] / 1024:6.0f} MB  CPU steal {r['steal_percent']:4.1f}%"
                    )
                    self.results["measurements"].append(
                        {"run": run + 1, "table": table, "method": method, **r}
                    )

    def run_experiments(self) -> None:
        """Peak RSS at two sizes, and index build after the data vs indexes maintained during the load."""
        import bench_data

        experiments: dict[str, Any] = {}
        if "narrow" in self.rows and "copy" in self.args.methods:
            small = min(self.memory_rows, self.rows["narrow"])
            say(f"memory: narrow copy with {small:,} rows", end="")
            r = self.measure("narrow", "copy", expected=small, where=f"id <= {small}")
            say(f" {r['seconds']:8.2f} s  peak RSS {r['peak_rss_kb'] / 1024:6.0f} MB")
            experiments["memory_small"] = {"rows": small, **r}
        if "events" in self.rows:
            with self.target.connect(self.target_db) as conn:
                bench_data.add_events_indexes(conn)
                before = bench_data.index_definitions(conn, "events")
            try:
                for label, defer in (("deferred", True), ("in_place", False)):
                    say(f"indexes: events with 3 secondary indexes, {label:<8}", end="")
                    r = self.measure("events", "copy", defer_indexes=defer)
                    with self.target.connect(self.target_db) as conn:
                        r["indexes_after"] = bench_data.index_definitions(conn, "events")
                    r["same_indexes"] = r["indexes_after"] == before
                    say(f" {r['seconds']:8.2f} s  same index names and definitions: {r['same_indexes']}")
                    experiments[f"indexes_{label}"] = r
            finally:
                with self.target.connect(self.target_db) as conn:
                    bench_data.drop_events_indexes(conn)
        self.results["experiments"] = experiments

    def analyze_estimates(self) -> None:
        """What analyze says (strategy, time) for each table, and both strategies' estimates."""
        from airflow_provider_confiture.core.planning import estimates
        from airflow_provider_confiture.core.planning.analyze import analyze
        from airflow_provider_confiture.core.planning.mapping import parse_mapping_text
        from airflow_provider_confiture.core.planning.plan import PlanOptions

        src = bench_methods.connect("psycopg3", self.conninfo("source"))
        tgt = bench_methods.connect("psycopg3", self.conninfo("target"))
        try:
            analysis = analyze(src, tgt, parse_mapping_text(self.mapping_text), PlanOptions())
        finally:
            src.close()
            tgt.close()
        out = {}
        for t in analysis.tables:
            out[t.key] = {
                "rows": t.rows,
                "bytes": t.bytes,
                "strategy": t.strategy,
                "estimated_seconds": round(t.estimated_seconds, 2),
                "copy": round(estimates.estimate_seconds("copy", t.rows, t.bytes), 2),
                "fdw": round(estimates.estimate_seconds("fdw", t.rows, t.bytes), 2),
            }
        self.results["analyze"] = out
        self.results["throughput_constants"] = {
            k: {"rows_per_second": v.rows_per_second, "bytes_per_second": v.bytes_per_second}
            for k, v in estimates.THROUGHPUT.items()
        }


def cpu_times() -> list[int]:
    """The machine's aggregate CPU times (/proc/stat): user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to someone else between two samples (a noisy-neighbour
    indicator: on a shared VM every measurement is slower when it is high)."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    return round(100.0 * delta[7] / total, 1) if total > 0 else 0.0


def say(text: str, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return bench_methods.worker_main()
    bench = Bench(args)
    started = time.monotonic()
    try:
        say(f"starting two clusters in {args.work_dir} (wal_level={args.wal_level})")
        bench.start()
        say("building source tables: " + ", ".join(f"{t} {n:,} rows" for t, n in bench.rows.items()))
        bench.build()
        say(f"built in {bench.results['build_seconds']} s")
        bench.analyze_estimates()
        bench.run_methods()
        if not args.no_experiments:
            bench.run_experiments()
    finally:
        bench.stop()
    bench.results["machine"]["loadavg_at_end"] = os.getloadavg()
    bench.results["total_seconds"] = round(time.monotonic() - started, 1)
    bench_report.summarize(bench.results)
    Path(args.out).write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
    say("")
    say(bench_report.render(bench.results))
    say(f"\nwrote {args.out} ({bench.results['total_seconds']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
