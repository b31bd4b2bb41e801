"""Many small tables: the DAG factory under ``airflow dags test`` against ``pgcopydb clone``, side by side.

    .venv/bin/python benchmarks/bench_many_tables.py --tables 50,400,2000 --out many-tables.json
    .venv/bin/python benchmarks/bench_many_tables.py --tables 5 --rows 20 --out /tmp/tiny.json   # smoke

Most application databases are a few big tables and hundreds of small ones; there, what a migration
costs is per table (task start-up, catalog reads, planning), not per row. For each table count N the
script builds, on a source cluster, N tables of ``--rows`` rows in a foreign-key chain (``t0002`` refers
to ``t0001``...) and, on the target, the same tables with one column renamed (``old_name`` becomes
``new_name``, the mapping says so for every table). Then, each on a fresh target database:

* ``ours``: a DAG file calling ``create_schema_to_schema_dag`` with that mapping, run end to end with
  ``airflow dags test`` (the whole migration: setup, analyze, prepare, every table's migrate and verify,
  finalize, summary) — wall time, task instances, time per table;
* ``pgcopydb``: ``pgcopydb clone --table-jobs 2 --index-jobs 2`` of the same source (schema and data;
  its restore builds the same tables without the rename) — wall time. Skipped, saying why, when the
  ``pgcopydb`` command is missing (Debian ships it: ``apt-get install pgcopydb``).

The ratio ours / pgcopydb is the figure that matters (the issue's target: within 2x at 400 and 2,000
tables). Both use the same two clusters and the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from psycopg import sql  # noqa: E402

from airflow_provider_confiture.testing import PostgresCluster  # noqa: E402

DEFAULT_TABLES = (50, 400, 2000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tables", default=",".join(map(str, DEFAULT_TABLES)), help="comma-separated table counts"
    )
    p.add_argument("--rows", type=int, default=200, help="rows per table")
    p.add_argument("--out", default="bench-many-tables.json", help="JSON results file")
    p.add_argument("--work-dir", default=str(REPO / ".work" / "bench-many"), help="where the clusters live")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed for one run")
    p.add_argument("--no-pgcopydb", action="store_true", help="measure ours only")
    return p.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def table(i: int) -> sql.Identifier:
    return sql.Identifier(f"t{i:04d}")


def _references(i: int) -> sql.Composable:
    return sql.SQL(" REFERENCES {} (id)").format(table(i - 1)) if i > 1 else sql.SQL("")


def source_ddl(n: int, rows: int) -> sql.Composable:
    """N tables in a foreign-key chain, ``rows`` rows each, ANALYZEd."""
    parts: list[sql.Composable] = []
    for i in range(1, n + 1):
        parts.append(
            sql.SQL(
                "CREATE TABLE {t} (id int PRIMARY KEY, parent_id int{ref}, old_name text NOT NULL, v int);"
                "INSERT INTO {t} SELECT g, CASE WHEN {i} > 1 THEN g END, 'name ' || g, g * {i} "
                "FROM generate_series(1, {rows}) g;"
            ).format(t=table(i), ref=_references(i), i=sql.Literal(i), rows=sql.Literal(rows))
        )
    parts.append(sql.SQL("ANALYZE;"))
    return sql.SQL("\n").join(parts)


def target_ddl(n: int) -> str:
    """The target schema: the same chain, ``old_name`` renamed ``new_name`` (a DDL file's text)."""
    return "\n".join(
        sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, parent_id int{}, new_name text NOT NULL, v int);")
        .format(table(i), _references(i))
        .as_string(None)
        for i in range(1, n + 1)
    )


def mapping_yaml(n: int) -> str:
    return "".join(f"t{i:04d}:\n  old_name: new_name\n" for i in range(1, n + 1))


def dag_file(dag_id: str, mapping: Path, ddl: Path) -> str:
    return textwrap.dedent(
        f"""
        from airflow_provider_confiture import create_schema_to_schema_dag

        dag = create_schema_to_schema_dag(
            {dag_id!r},
            mapping_path={str(mapping)!r},
            ddl_path={str(ddl)!r},
            source_conn_id="many_source",
            target_conn_id="many_target",
            table_retries=0,
        )
        """
    )


class ManyTables:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work_dir)
        self.source = PostgresCluster("source", self.work)
        self.target = PostgresCluster("target", self.work)
        self.results: dict[str, Any] = {"rows_per_table": args.rows, "runs": []}

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.source.start()
        self.target.start()
        self.results["server_version"] = self.source.execute("SHOW server_version")[0][0]

    def stop(self) -> None:
        self.source.destroy()
        self.target.destroy()

    # ------------------------------------------------------------------------------------ ours
    def _airflow_env(self, home: Path, dags: Path, source_db: str, target_db: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PG"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            }
        )
        for conn_id, cluster, db in (
            ("many_source", self.source, source_db),
            ("many_target", self.target, target_db),
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

    def ours(self, n: int, source_db: str) -> dict[str, Any]:
        run_dir = self.work / f"ours-{n}"
        dags, home = run_dir / "dags", run_dir / "airflow"
        dags.mkdir(parents=True)
        home.mkdir()
        (run_dir / "ddl").mkdir()
        (run_dir / "ddl" / "01_tables.sql").write_text(target_ddl(n))
        (run_dir / "mapping.yaml").write_text(mapping_yaml(n))
        dag_id = f"many_{n}"
        (dags / f"{dag_id}.py").write_text(dag_file(dag_id, run_dir / "mapping.yaml", run_dir / "ddl"))
        target_db = self.target.create_database(f"ours_{n}")
        env = self._airflow_env(home, dags, source_db, target_db)
        airflow = [str(Path(sys.executable).parent / "airflow")]
        migrate = subprocess.run(
            [*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        started = time.monotonic()
        res = subprocess.run(
            [*airflow, "dags", "test", dag_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=self.args.timeout,
        )
        seconds = time.monotonic() - started
        with sqlite3.connect(home / "airflow.db") as db:
            instances = db.execute(
                "SELECT count(*) FROM task_instance WHERE dag_id = ?", (dag_id,)
            ).fetchone()[0]
            states = dict(
                db.execute(
                    "SELECT state, count(*) FROM task_instance WHERE dag_id = ? GROUP BY state", (dag_id,)
                ).fetchall()
            )
        last = self.target.execute(sql.SQL("SELECT count(*) FROM {}").format(table(n)), dbname=target_db)[0][
            0
        ]
        ok = res.returncode == 0 and states.get("success", 0) == instances and last == self.args.rows
        if not ok:
            say(res.stdout[-2000:] + res.stderr[-2000:])
        return {
            "seconds": round(seconds, 1),
            "task_instances": instances,
            "states": states,
            "ok": ok,
            "seconds_per_table": round(seconds / n, 3),
            "last_table_rows": last,
        }

    # ------------------------------------------------------------------------------------ pgcopydb
    def pgcopydb(self, n: int, source_db: str) -> dict[str, Any]:
        exe = shutil.which("pgcopydb")
        if self.args.no_pgcopydb:
            return {"skipped": "--no-pgcopydb"}
        if exe is None:
            return {"skipped": "pgcopydb is not installed (Debian: apt-get install pgcopydb)"}
        target_db = self.target.create_database(f"pgcopydb_{n}")
        run_dir = self.work / f"pgcopydb-{n}"
        run_dir.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["TMPDIR"] = str(run_dir)
        cmd = [
            exe, "clone",
            "--source", self.source.uri(source_db),
            "--target", self.target.uri(target_db),
            "--table-jobs", "2", "--index-jobs", "2",
            "--dir", str(run_dir / "work"),
            "--no-owner", "--no-acl",
        ]  # fmt: skip
        started = time.monotonic()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=self.args.timeout)
        seconds = time.monotonic() - started
        if res.returncode != 0:
            return {"error": (res.stderr or res.stdout)[-1500:], "seconds": round(seconds, 1)}
        copied = self.target.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", dbname=target_db
        )[0][0]
        return {"seconds": round(seconds, 1), "tables": copied, "seconds_per_table": round(seconds / n, 3)}

    # ------------------------------------------------------------------------------------ run
    def run(self, n: int) -> dict[str, Any]:
        source_db = self.source.create_database(f"source_{n}")
        t0 = time.monotonic()
        self.source.execute(source_ddl(n, self.args.rows), dbname=source_db)
        say(f"{n} tables of {self.args.rows} rows built in {time.monotonic() - t0:.1f} s")
        row: dict[str, Any] = {"tables": n, "pgcopydb": self.pgcopydb(n, source_db)}
        say(f"  pgcopydb: {row['pgcopydb']}")
        row["ours"] = self.ours(n, source_db)
        say(f"  ours: {row['ours']}")
        if "seconds" in row["pgcopydb"] and row["ours"]["ok"] and row["pgcopydb"].get("seconds"):
            row["ratio"] = round(row["ours"]["seconds"] / row["pgcopydb"]["seconds"], 2)
        return row


def render(results: dict[str, Any]) -> str:
    lines = [
        f"Many tables ({results['rows_per_table']} rows each, PostgreSQL {results.get('server_version')}):",
        "| tables | ours: wall s | task instances | s/table | pgcopydb clone: wall s | s/table | ours / pgcopydb |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        ours, pg = r["ours"], r["pgcopydb"]
        pg_s = pg.get("seconds", pg.get("skipped", "error"))
        lines.append(
            f"| {r['tables']:,} | {ours['seconds']} | {ours['task_instances']:,} | {ours['seconds_per_table']} | "
            f"{pg_s} | {pg.get('seconds_per_table', '-')} | {r.get('ratio', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ManyTables(args)
    started = time.monotonic()
    try:
        bench.start()
        for n in [int(x) for x in args.tables.split(",") if x.strip()]:
            bench.results["runs"].append(bench.run(n))
    finally:
        bench.stop()
    bench.results["total_seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(bench.results, indent=2) + "\n")
    say("\n" + render(bench.results))
    say(f"\nwrote {args.out} ({bench.results['total_seconds']} s in all)")
    ok = all(r["ours"]["ok"] for r in bench.results["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
