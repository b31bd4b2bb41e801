"""The measured methods. Each runs in a process of its own, so its peak RSS is its own.

``python benchmarks/bench.py --worker`` (a JSON spec on stdin) runs one Python method (our COPY or FDW load
through ``core.load.load_table``, the original tool's two strategies, Airflow's ``GenericTransfer``)
and prints one ``BENCH-RESULT {json}`` line. The psql pipe is two psql processes started by the
parent, which reads their resource usage with ``os.wait4``.

Timings cover the data movement and everything the method needs to leave the table loaded and
committed (for our loads: lock, setting indexes aside, TRUNCATE, copy, index rebuild, sequences,
commit), not interpreter start-up, imports, connecting or planning.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

RESULT_MARK = "BENCH-RESULT "


def _status_kb(field: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb() -> int:
    """Current resident set size of this process (VmRSS), in kB."""
    return _status_kb("VmRSS")


def _usage() -> tuple[float, int]:
    """(CPU seconds, peak RSS kB) of this process.

    The peak is VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec, and a child started by
    (v)fork from a bigger parent would report the parent's peak.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, _status_kb("VmHWM")


def connect(driver: str, conninfo: str, *, read_only: bool = False) -> Any:
    """A transaction-mode connection with the session the operators set up (operators/connections.py)."""
    from airflow_provider_confiture.core.db import dbapi

    settings: dict[str, str | int | None] = dict(dbapi.DETERMINISTIC_SETTINGS)
    settings.pop("client_encoding")
    settings["idle_in_transaction_session_timeout"] = "15min"
    if read_only:
        settings["default_transaction_read_only"] = "on"
    options = " ".join(
        f"-c {k}={str(v).replace(' ', chr(92) + ' ')}" for k, v in settings.items() if v is not None
    )
    if driver == "psycopg3":
        import psycopg

        conn = psycopg.connect(
            conninfo, autocommit=False, options=options, application_name="confiture-bench"
        )
    elif driver == "psycopg2":
        import psycopg2

        conn = psycopg2.connect(conninfo, options=options, application_name="confiture-bench")
        conn.autocommit = False
    else:
        raise ValueError(f"unknown driver {driver!r}")
    dbapi.set_session(conn, {"client_encoding": "UTF8"})
    conn.commit()
    return conn


# ------------------------------------------------------------------------------------------ methods
def _plan(src: Any, tgt: Any, spec: dict[str, Any]) -> Any:
    from airflow_provider_confiture.core.planning import mapping, plan_migration
    from airflow_provider_confiture.core.planning.plan import PlanOptions

    one = mapping.one_table_mapping(
        spec["source_table"], spec["target_table"], spec.get("columns"), where=spec.get("where")
    )
    return plan_migration(src, tgt, one, PlanOptions(), [spec["target_table"]])[0].get(spec["target_table"])


def ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our load (strategy ``copy`` or ``fdw``), as TableMigrateOperator runs it."""
    from airflow_provider_confiture.core import verify
    from airflow_provider_confiture.core.loading import load

    src = connect(spec["driver"], spec["source"], read_only=True)
    tgt = connect(spec["driver"], spec["target"])
    plan = _plan(src, tgt, spec)
    # The benchmark empties the target and other methods fill it between measurements: a rehearsal
    # target by definition, overwritten on purpose (the guard's check still runs, as in a real load).
    options = load.LoadOptions(
        defer_indexes=spec.get("defer_indexes", True), progress_interval=3600, overwrite_target_writes=True
    )
    base = rss_kb()
    cpu0, _ = _usage()
    started = time.monotonic()
    result = load.load_table(src, tgt, plan, spec["strategy"], options=options)
    seconds = time.monotonic() - started
    cpu1, peak = _usage()
    out: dict[str, Any] = {
        "rows": result.rows,
        "seconds": seconds,
        "bytes": result.bytes,
        "copy_format": result.copy_format,
        "peak_rss_kb": peak,
        "base_rss_kb": base,
        "cpu_seconds": cpu1 - cpu0,
        "set_aside": result.set_aside,
    }
    if spec.get("verify"):
        started = time.monotonic()
        check = verify.verify_table(src, tgt, plan)
        out["verify_seconds"] = time.monotonic() - started
        out["verify_status"] = check.status
        out["verify_rows"] = [check.source_rows, check.target_rows]
    src.close()
    tgt.close()
    return out


def original_fdw(spec: dict[str, Any]) -> dict[str, Any]:
    """The original FDW strategy: one INSERT ... SELECT through a default-fetch_size foreign table."""
    from bench_data import TABLES

    table = TABLES[spec["table"]]
    tgt = connect("psycopg3", spec["target"])
    base = rss_kb()
    cpu0, _ = _usage()
    started = time.monotonic()
    with tgt.cursor() as cur:
        cur.execute(table.insert_select(spec["foreign_schema"]))
        rows = cur.rowcount
    tgt.commit()
    seconds = time.monotonic() - started
    cpu1, peak = _usage()
    tgt.close()
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_kb": peak,
        "base_rss_kb": base,
        "cpu_seconds": cpu1 - cpu0,
    }


def original_copy(spec: dict[str, Any]) -> dict[str, Any]:
    """The original COPY strategy: CSV out of the foreign table on the target, buffered whole in the
    client, then written back in one COPY FROM STDIN (findings.md, section 1)."""
    from bench_data import TABLES

    table = TABLES[spec["table"]]
    tgt = connect("psycopg3", spec["target"])
    base = rss_kb()
    cpu0, _ = _usage()
    started = time.monotonic()
    buffered = io.BytesIO()
    with tgt.cursor() as cur:
        with cur.copy(table.foreign_copy_out_csv(spec["foreign_schema"])) as cp:
            for block in cp:
                buffered.write(block)
        with cur.copy(table.copy_in("csv")) as cp:
            cp.write(buffered.getbuffer())
        rows = cur.rowcount
    tgt.commit()
    seconds = time.monotonic() - started
    cpu1, peak = _usage()
    tgt.close()
    return {
        "rows": rows,
        "seconds": seconds,
        "bytes": buffered.tell(),
        "peak_rss_kb": peak,
        "base_rss_kb": base,
        "cpu_seconds": cpu1 - cpu0,
    }


def generic_transfer(spec: dict[str, Any]) -> dict[str, Any]:
    """Airflow's GenericTransfer (common-sql) as shipped, defaults only, on a slice of the table."""
    os.environ.update(spec["airflow_env"])
    from bench_data import TABLES

    table = TABLES[spec["table"]]
    from airflow.providers.common.sql.operators.generic_transfer import GenericTransfer

    query = table.source_select(spec["limit_id"]).as_string(None)
    op = GenericTransfer(
        task_id=f"generic_{table.key}",
        sql=query,
        destination_table=table.target,
        source_conn_id=spec["source_conn_id"],
        destination_conn_id=spec["target_conn_id"],
    )
    base = rss_kb()
    cpu0, _ = _usage()
    started = time.monotonic()
    op.execute({})
    seconds = time.monotonic() - started
    cpu1, peak = _usage()
    return {
        "rows": spec["expected_rows"],
        "seconds": seconds,
        "peak_rss_kb": peak,
        "base_rss_kb": base,
        "cpu_seconds": cpu1 - cpu0,
    }


WORKERS = {
    "ours": ours,
    "original_fdw": original_fdw,
    "original_copy": original_copy,
    "generic_transfer": generic_transfer,
}


def worker_main() -> int:
    """Entry point of a worker process: run the method its stdin describes, print its result."""
    import logging

    logging.disable(logging.INFO)  # GenericTransfer logs every 1,000 rows; not part of the measurement
    spec = json.loads(sys.stdin.read())
    result = WORKERS[spec["worker"]](spec)
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


def run_worker(script: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one method in a fresh Python process; its result, or RuntimeError with its stderr.

    The spec (it holds connection strings) goes through stdin, never the command line."""
    proc = subprocess.run(
        [sys.executable, script, "--worker"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-30:])
    raise RuntimeError(
        f"benchmark worker {spec.get('worker')} on {spec.get('table')} failed "
        f"(exit {proc.returncode}):\n{tail}"
    )


def psql_pipe(
    psql: str, source: tuple[str, str], target: tuple[str, str], copy_out: str, copy_in: str, timeout: float
) -> dict[str, Any]:
    """``psql -c 'COPY ... TO STDOUT' | psql -c 'COPY ... FROM STDIN'``, binary: the practical limit.

    ``source``/``target``: (conninfo without password, password); the password goes through
    PGPASSWORD, not the command line. Returns wall time, each psql's peak RSS and CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    base = [psql, "-X", "-v", "ON_ERROR_STOP=1"]
    started = time.monotonic()
    # -q on the sending side: its "COPY n" tag would otherwise follow the data into the pipe.
    out = subprocess.Popen(
        [*base, "-q", "-d", source[0], "-c", copy_out],
        stdout=subprocess.PIPE,
        env={**env, "PGPASSWORD": source[1]},
    )
    into = subprocess.Popen(
        [*base, "-d", target[0], "-c", copy_in],
        stdin=out.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, "PGPASSWORD": target[1]},
    )
    assert out.stdout is not None
    out.stdout.close()
    usage: dict[str, Any] = {}
    peak = {"out": 0, "in": 0}  # VmHWM sampled while each psql runs (ru_maxrss would be the parent's)
    procs = {"out": out, "in": into}
    deadline = started + timeout
    while len(usage) < 2:
        for name, proc in procs.items():
            if name in usage:
                continue
            peak[name] = max(peak[name], _status_kb("VmHWM", proc.pid))
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                usage[name] = ru
        if time.monotonic() > deadline:
            out.kill()
            into.kill()
            raise RuntimeError("psql pipe timed out")
        if len(usage) < 2:
            time.sleep(0.005)
    seconds = time.monotonic() - started
    stdout, stderr = into.communicate()
    if out.returncode or into.returncode:
        raise RuntimeError(
            f"psql pipe failed ({out.returncode}, {into.returncode}): {stderr.decode()[-2000:]}"
        )
    text = stdout.decode().strip()
    rows = int(text.split()[-1]) if text.startswith("COPY") else -1
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_kb": max(peak.values()),
        "peak_rss_kb_each": peak,
        "cpu_seconds": sum(u.ru_utime + u.ru_stime for u in usage.values()),
    }
