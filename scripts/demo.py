#!/usr/bin/env python3
"""``make demo``: the example migration DAG end to end, on two throwaway PostgreSQL clusters.

1. Starts two local clusters under ``.work/demo/pg/`` (``old`` and ``new``, 127.0.0.1, password
   authentication over TCP: the new server reaches the old one through postgres_fdw like a real one).
2. Creates the old database ``shop`` from ``dags/example_schema_to_schema/old_schema.sql`` and seeds it
   (``scripts/seed_demo.py``: a few hundred thousand rows in ``order_line``).
3. Sets up an isolated Airflow home in ``.work/demo/airflow`` (SQLite, ``airflow db migrate``), the
   connections ``confiture_source``/``confiture_target`` as ``AIRFLOW_CONN_*`` environment variables.
4. Runs ``airflow dags test example_schema_to_schema`` (the whole DAG, in one process), its full output
   kept in ``.work/demo/dags-test.log``.
5. Prints the analyze and verify tables (from the run's XComs), the tasks with their durations, and a
   summary. Exits non-zero when the run failed.
6. Stops the clusters, unless ``--keep``: then they stay up and the command to open the same DAG in the
   Airflow UI (``airflow standalone``) against them is printed; the environment it needs (passwords
   included) is written to ``.work/demo/demo.env`` (mode 0600), never printed.

Airflow is imported only after its environment is set (step 5), never at module import.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".work" / "demo"
PG_BASE = WORK / "pg"
AIRFLOW_HOME = WORK / "airflow"
ENV_FILE = WORK / "demo.env"
DAGS_TEST_LOG = WORK / "dags-test.log"
DAG_ID = "example_schema_to_schema"
OLD_DB = "shop"
NEW_DB = "shop_v2"

sys.path.insert(0, str(REPO))  # run from a checkout without the package installed, too
sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_demo  # noqa: E402  (a sibling script)

from airflow_provider_confiture.testing import PostgresCluster  # noqa: E402  (no Airflow imports)


# --------------------------------------------------------------------------------------------- output
def say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def step(title: str, key: str, timings: dict[str, float]) -> Iterator[None]:
    """Print a step's title, then its duration; the duration is kept in ``timings[key]``."""
    say(f"==> {title}")
    started = time.monotonic()
    yield
    timings[key] = time.monotonic() - started
    say(f"    done in {timings[key]:.1f} s")


# --------------------------------------------------------------------------------------------- clusters
def stop_leftovers() -> None:
    """Stop clusters a previous ``--keep`` demo left running, then start from a clean directory."""
    for pid_file in sorted(PG_BASE.glob("*/data/postmaster.pid")):
        name = pid_file.parent.parent.name
        say(f"    stopping cluster {name!r} left running by a previous --keep demo")
        PostgresCluster(name, PG_BASE).stop()
    shutil.rmtree(WORK, ignore_errors=True)


def start_clusters() -> tuple[PostgresCluster, PostgresCluster]:
    old = PostgresCluster("old", PG_BASE).start()
    try:
        new = PostgresCluster("new", PG_BASE).start()
    except BaseException:
        old.stop()
        raise
    return old, new


# --------------------------------------------------------------------------------------------- airflow
def airflow_env(old: PostgresCluster, new: PostgresCluster) -> dict[str, str]:
    """The demo's Airflow settings (passwords inside: written to a 0600 file, never printed)."""
    return {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # For `airflow standalone` (--keep): a local throwaway UI where everyone is admin, no login.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW_CONN_CONFITURE_SOURCE": old.uri(OLD_DB),
        "AIRFLOW_CONN_CONFITURE_TARGET": new.uri(NEW_DB),
    }


def process_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Airflow setting of the caller's, plus the demo's."""
    env = {
        k: v for k, v in os.environ.items()
        if not (k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))
    }  # fmt: skip
    env.update(settings)
    return env


def write_env_file(settings: dict[str, str]) -> None:
    fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Environment of the `make demo` Airflow (secrets inside: keep this file private).\n")
        for key, value in settings.items():
            f.write(f"{key}={shlex.quote(value)}\n")


def airflow_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "airflow"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "airflow"]


def migrate_metadata_db(env: dict[str, str]) -> None:
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [*airflow_cmd(), "db", "migrate"], env=env, capture_output=True, text=True, timeout=900
    )
    if res.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")


#: One console log line of ``airflow dags test``: ``<time> [<level>  ] <event> [<logger>] key=value...``.
_LOG_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<event>.*?) \[(?P<logger>[\w.]+)\]")
_DAG_TEST_END = "[DAG TEST] end task "
#: The last line of a task's traceback: the exception that failed it (the traceback is in the log file).
_EXCEPTION_LINE = re.compile(r"^(?:airflow_provider_confiture\.[\w.]+|[\w.]*(?:Error|Exception)): ")


def progress_line(line: str) -> str | None:
    """What the console shows of one log line: finished tasks, table loads, Confiture warnings/errors."""
    if _DAG_TEST_END in line:
        fields = dict(p.split("=", 1) for p in line.split(_DAG_TEST_END, 1)[1].split() if "=" in p)
        index = fields.get("map_index", "-1")
        return f"finished {fields.get('task_id', '?')}" + (f" [{index}]" if index not in ("-1", "") else "")
    if _EXCEPTION_LINE.match(line):
        text = line.strip()
        return "error: " + (text if len(text) <= 400 else text[:400] + "...")
    m = _LOG_LINE.match(line)
    if not m or "airflow_provider_confiture" not in m["logger"] or not m["event"].strip():
        return None
    event = m["event"].strip()
    if m["level"] in ("warning", "error", "critical"):
        return f"{m['level']}: {event}"
    if " rows in " in event or "load task(s)" in event:
        return f"  {event}"
    return None


def run_dags_test(env: dict[str, str]) -> int:
    """``airflow dags test``: full output to the log file, progress lines on the console."""
    cmd = [*airflow_cmd(), "dags", "test", DAG_ID]
    say(f"    $ airflow dags test {DAG_ID}    (full output: {DAGS_TEST_LOG.relative_to(REPO)})")
    with (
        DAGS_TEST_LOG.open("w") as log,
        subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            shown = progress_line(line)
            if shown:
                say(f"    {shown}")
        return proc.wait()


# --------------------------------------------------------------------------------------------- results
def read_run() -> dict[str, Any]:
    """The latest run of the DAG from the metadata DB: state, task instances, XComs (Airflow imported here)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc()).limit(1)
        ).first()
        if run is None:
            return {"state": None, "tasks": [], "xcoms": []}
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)
        ).all()
        tasks = sorted(
            (
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "label": ti.rendered_map_index,
                    "state": str(ti.state.value if hasattr(ti.state, "value") else ti.state),
                    "start": ti.start_date,
                    "seconds": ti.duration,
                }
                for ti in tis
            ),
            key=lambda t: (t["start"] is None, t["start"] or 0, t["map_index"]),
        )
        xcoms = [
            {
                "task_id": x.task_id,
                "map_index": x.map_index,
                "key": x.key,
                "value": XComModel.deserialize_value(x),
            }
            for x in session.scalars(
                select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id)
            ).all()
        ]
        return {
            "run_id": run.run_id,
            "state": str(run.state.value if hasattr(run.state, "value") else run.state),
            "seconds": (run.end_date - run.start_date).total_seconds()
            if run.end_date and run.start_date
            else None,
            "tasks": tasks,
            "xcoms": xcoms,
        }


def analysis_of(xcoms: list[dict[str, Any]]) -> dict[str, Any] | None:
    for x in xcoms:
        v = x["value"]
        if isinstance(v, dict) and "units" in v and "tables" in v:
            return v
    return None


def checks_of(xcoms: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Per-table verify results: the summary task's if it ran, else those of the per-table verify tasks."""
    for x in xcoms:
        v = x["value"]
        if x["key"] == "return_value" and x["task_id"].split(".")[-1] == "summary" and isinstance(v, dict):
            return list(v.get("tables") or []), list(v.get("foreign_key_problems") or [])
    checks: list[dict[str, Any]] = []
    for x in sorted(xcoms, key=lambda x: x["map_index"]):
        v = x["value"]
        if x["key"] == "return_value" and x["task_id"].endswith("verify") and isinstance(v, dict):
            checks.extend(v.get("tables") or [])
    return checks, None


def loads_of(xcoms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        x["value"] for x in sorted(xcoms, key=lambda x: x["map_index"])
        if x["key"] == "return_value" and x["task_id"].endswith("migrate") and isinstance(x["value"], dict)
    ]  # fmt: skip


def render_analysis(analysis: dict[str, Any]) -> str:
    from airflow_provider_confiture.core.planning.analyze import Analysis, TableAnalysis

    return Analysis(
        [TableAnalysis(**t) for t in analysis["tables"]], [tuple(s) for s in analysis.get("skipped") or []]
    ).render()


def render_checks(checks: list[dict[str, Any]]) -> str:
    from airflow_provider_confiture.core.verify import TableCheck, render_checks, render_verdicts

    objs = [TableCheck(**{k: v for k, v in c.items() if k != "ok"}) for c in checks]
    return "Verification:\n" + render_checks(objs) + "\n" + render_verdicts(objs)


def render_tasks(tasks: list[dict[str, Any]]) -> str:
    from airflow_provider_confiture.core.db.text_table import box_table

    rows = [
        (
            t["task_id"] + (f" [{t['label'] or t['map_index']}]" if t["map_index"] >= 0 else ""),
            t["state"],
            f"{t['seconds']:.1f}s" if t["seconds"] is not None else "-",
        )
        for t in tasks
    ]
    return "Tasks:\n" + box_table(["Task", "State", "Duration"], rows)


def report(run: dict[str, Any], timings: dict[str, float], seeded: dict[str, int]) -> bool:
    """Print the tables and the summary; True when the run succeeded and every table is equal."""
    analysis = analysis_of(run["xcoms"])
    checks, fk_problems = checks_of(run["xcoms"])
    loads = loads_of(run["xcoms"])
    say()
    say(render_analysis(analysis) if analysis else "(no analysis: the analyze task did not finish)")
    say()
    say(render_checks(checks) if checks else "(no verification results)")
    if fk_problems:
        say("✗ Foreign key problems:\n  " + "\n  ".join(fk_problems))
    elif fk_problems is not None:
        say("✓ Foreign keys in force and validated")
    say()
    say(render_tasks(run["tasks"]))
    rows = sum(int(r.get("rows") or 0) for r in loads)
    load_s = sum(float(r.get("seconds") or 0) for r in loads)
    equal = sum(1 for c in checks if c.get("ok"))
    ok = run["state"] == "success" and bool(checks) and equal == len(checks) and not fk_problems
    say()
    say("Summary:")
    say(f"  old database  : {sum(seeded.values()):,} rows seeded in {len(seeded)} tables")
    if loads:
        strategies = ", ".join(f"{r.get('table', '?').split('.')[-1]} {r.get('strategy')}" for r in loads)
        say(
            f"  migrated      : {rows:,} rows in {len(loads)} table loads, {load_s:.1f} s of loading "
            f"({rows / load_s if load_s else 0:,.0f} rows/s) [{strategies}]"
        )
    say(f"  verified      : {equal}/{len(checks)} tables equal (row counts and content checksums)")
    failed = [
        t["task_id"] + (f" [{t['label'] or t['map_index']}]" if t["map_index"] >= 0 else "")
        for t in run["tasks"]
        if t["state"] == "failed"
    ]
    if failed:
        say(f"  failed tasks  : {', '.join(failed)} (details: {DAGS_TEST_LOG.relative_to(REPO)})")
    run_s = f"{run['seconds']:.1f} s" if run.get("seconds") is not None else "?"
    say(f"  DAG run       : {run.get('run_id')} -> {run['state']} in {run_s}")
    say("  timings       : " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    say(f"  result        : {'SUCCESS' if ok else 'FAILED'}")
    return ok


def print_keep_instructions(old: PostgresCluster, new: PostgresCluster) -> None:
    env_file = ENV_FILE.relative_to(REPO)
    # `airflow standalone` starts its components as `airflow ...` found on PATH: put this venv's first.
    bin_dir = Path(sys.executable).parent
    load_env = f"cd {shlex.quote(str(REPO))} && set -a && . {env_file} && set +a"
    say()
    say("The clusters are still running (--keep):")
    say(
        f"  old: 127.0.0.1:{old.port}/{OLD_DB}   new: 127.0.0.1:{new.port}/{NEW_DB}   "
        f"(user {old.superuser}; passwords in {env_file}, mode 0600)"
    )
    say("Open the same DAG in the Airflow UI at http://localhost:8080 (no login; Ctrl-C stops it):")
    say(f'  {load_env} && PATH={shlex.quote(str(bin_dir))}:"$PATH" airflow standalone')
    say("Look at the databases:")
    say(f'  {load_env} && psql "$AIRFLOW_CONN_CONFITURE_TARGET"     (or ..._SOURCE)')
    say("Stop the clusters: run `make demo` again (it stops them first), or:")
    for cluster in (old, new):
        stop = f"{cluster.bin_dir / 'pg_ctl'} -D {cluster.data_dir} stop"
        say(f"  {'runuser -u postgres -- ' if os.geteuid() == 0 else ''}{stop}")


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the example migration DAG end to end on two local clusters."
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=seed_demo.DEFAULT_ROWS,
        help=f"rows in the largest old table (default {seed_demo.DEFAULT_ROWS:,})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the clusters running and print how to open the DAG in the Airflow UI",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    timings: dict[str, float] = {}
    stop_leftovers()
    WORK.mkdir(parents=True)
    with step("Starting two PostgreSQL clusters (old, new)", "clusters", timings):
        old, new = start_clusters()
        say(f"    old: 127.0.0.1:{old.port}   new: 127.0.0.1:{new.port}   ({PG_BASE.relative_to(REPO)})")
    keep = False
    try:
        with step(f"Creating and seeding the old database {OLD_DB!r}", "seed", timings):
            old.create_database(OLD_DB)
            with old.connect(OLD_DB) as conn:
                counts = seed_demo.seed(conn, args.rows)
            say("    " + ", ".join(f"{t} {c:,}" for t, c in counts.items()))
        settings = airflow_env(old, new)
        write_env_file(settings)
        env = process_env(settings)
        with step(
            f"Airflow home {AIRFLOW_HOME.relative_to(REPO)} (SQLite): airflow db migrate",
            "airflow db migrate",
            timings,
        ):
            migrate_metadata_db(env)
        with step(f"Running the DAG {DAG_ID!r} end to end", "airflow dags test", timings):
            rc = run_dags_test(env)

        os.environ.update(env)  # before the first Airflow import, in read_run()
        for key in [k for k in os.environ if k not in env]:
            del os.environ[key]
        run = read_run()
        timings["total"] = time.monotonic() - started
        ok = report(run, timings, counts) and rc == 0
        if rc != 0:
            say(f"airflow dags test exited with {rc}; see {DAGS_TEST_LOG.relative_to(REPO)}")
        keep = args.keep
        if keep:
            for cluster in (old, new):
                atexit.unregister(cluster.stop)  # leave them running after this process exits
            print_keep_instructions(old, new)
        return 0 if ok else 1
    finally:
        if not keep:
            new.stop()
            old.stop()
            say(
                "Clusters stopped (run with --keep to leave them running and open the DAG in the Airflow UI)."
            )


if __name__ == "__main__":
    sys.exit(main())
