"""What the target guard costs the application: an insert-heavy load on a guarded and an unguarded
table, side by side in one run, on one throwaway cluster.

    make bench-guard                                          # 20k inserts x 5 rounds, pgbench 2 x 10 s
    .venv/bin/python benchmarks/bench_guard.py --inserts 2000 --rounds 2 --pgbench-seconds 0  # smoke

Two identical tables (``plain`` and ``guarded``, bigint identity key, a text and a timestamptz
column); ``guarded`` gets the guard exactly as a load installs it (``target_guard.install_guard``).
Then, alternating the two tables round by round so drift on the machine hits both alike:

* Python: ``--inserts`` single-row ``INSERT`` statements in autocommit (one transaction each, the
  worst case for a per-statement trigger), through psycopg 3;
* server: the same number of single-row INSERTs in a server-side loop (one transaction, no client):
  the guard's own CPU cost per statement, without the round trip that hides it;
* pgbench (when installed): ``--clients`` clients running a one-line custom script (a single-row
  INSERT) for ``--pgbench-seconds`` each, prepared statements.

Reports statements per second of each and the ratio guarded/plain (1.0 = free), and checks that the
guard counted every statement. Writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from airflow_provider_confiture.core.db import target_guard  # noqa: E402
from airflow_provider_confiture.core.names import QualifiedName  # noqa: E402
from airflow_provider_confiture.testing import PostgresCluster  # noqa: E402
from airflow_provider_confiture.testing.postgres_cluster import free_port  # noqa: E402

TABLE_DDL = (
    "CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL, "
    "at timestamptz NOT NULL DEFAULT now())"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inserts", type=int, default=20_000, help="single-row autocommit INSERTs per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds per table (alternating)")
    p.add_argument("--clients", type=int, default=2, help="pgbench clients")
    p.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench run per round (0 = skip)")
    p.add_argument("--work-dir", default=str(REPO / ".work" / "bench-guard"))
    p.add_argument("--out", default="bench-guard.json")
    return p.parse_args(argv)


def backend_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a server backend (Linux /proc; None elsewhere). On a busy machine this
    is steadier than wall time: other processes slow a statement down but do not add to its CPU."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_round(conninfo: str, table: str, inserts: int, cpu: dict[str, list[float]]) -> float:
    """Statements per second of ``inserts`` single-row autocommit INSERTs (and, into ``cpu``, the
    server CPU microseconds each took)."""
    statement = f"INSERT INTO {table} (note) VALUES (%s)"  # noqa: S608 - fixed benchmark table names
    with psycopg.connect(conninfo, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute(statement, ("warm-up",))
        cpu_before = backend_cpu_seconds(pid)
        started = time.perf_counter()
        for i in range(inserts):
            conn.execute(statement, (f"row {i}",), prepare=True)
        rate = inserts / (time.perf_counter() - started)
        cpu_after = backend_cpu_seconds(pid)
        if cpu_before is not None and cpu_after is not None:
            cpu.setdefault(table, []).append((cpu_after - cpu_before) / inserts * 1e6)
        return rate


def server_round(conninfo: str, table: str, inserts: int) -> float:
    """Statements per second of ``inserts`` single-row INSERTs run by the server itself (a DO loop, one
    transaction): no client or network time, so the guard's own cost stands out most."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{int(inserts)} LOOP "  # noqa: S608 - fixed benchmark table names
            f"INSERT INTO {table} (note) VALUES ('server'); END LOOP; END $$"
        )
        return inserts / (time.perf_counter() - started)


def pgbench_round(cluster: PostgresCluster, dbname: str, table: str, clients: int, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(f"INSERT INTO {table} (note) VALUES ('pgbench');\n")  # noqa: S608 - fixed benchmark table names
    result = subprocess.run(
        [
            "pgbench",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "-f",
            script.name,
            "-h",
            str(cluster.host),
            "-p",
            str(cluster.port),
            "-U",
            cluster.superuser,
            dbname,
        ],
        capture_output=True,
        text=True,
        env={"PGPASSWORD": cluster.password, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        timeout=seconds + 60,
        check=True,
    )
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"pgbench printed no tps:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cluster = PostgresCluster(f"guard-{secrets.token_hex(3)}", work, port=free_port()).start()
    try:
        dbname = cluster.create_database("guard_bench")
        conninfo = cluster.conninfo(dbname)
        with psycopg.connect(conninfo) as conn:
            for table in ("plain", "guarded"):
                conn.execute(TABLE_DDL.format(t=table))
            conn.commit()
            target_guard.install_guard(conn, QualifiedName("public", "guarded"))
        results: dict[str, Any] = {
            "python": {"plain": [], "guarded": []},
            "server": {"plain": [], "guarded": []},
            "pgbench": {"plain": [], "guarded": []},
        }
        cpu: dict[str, list[float]] = {}
        use_pgbench = args.pgbench_seconds > 0 and shutil.which("pgbench") is not None
        for round_no in range(args.rounds):
            order = ("plain", "guarded") if round_no % 2 == 0 else ("guarded", "plain")
            for table in order:
                results["python"][table].append(python_round(conninfo, table, args.inserts, cpu))
                results["server"][table].append(server_round(conninfo, table, args.inserts))
                if use_pgbench:
                    results["pgbench"][table].append(
                        pgbench_round(cluster, dbname, table, args.clients, args.pgbench_seconds)
                    )
        with psycopg.connect(conninfo) as conn:
            reading = target_guard.guard_state(conn, QualifiedName("public", "guarded"))
            counted = reading.counter if reading else 0
            rows = conn.execute("SELECT count(*) FROM guarded").fetchone()
        summary: dict[str, Any] = {"settings": vars(args), "server": cluster.execute("SHOW server_version")}
        for kind, by_table in results.items():
            if not by_table["plain"]:
                continue
            plain, guarded = statistics.median(by_table["plain"]), statistics.median(by_table["guarded"])
            summary[kind] = {
                "plain_per_s": round(plain, 1),
                "guarded_per_s": round(guarded, 1),
                "ratio": round(guarded / plain, 3),
                "rounds": by_table,
            }
            print(
                f"{kind:8s} plain {plain:10,.0f}/s  guarded {guarded:10,.0f}/s  ratio {guarded / plain:.3f}"
            )
        if cpu.get("plain") and cpu.get("guarded"):
            plain_cpu, guarded_cpu = statistics.median(cpu["plain"]), statistics.median(cpu["guarded"])
            summary["python_server_cpu_us"] = {"plain": plain_cpu, "guarded": guarded_cpu, "rounds": cpu}
            print(
                f"python   server CPU per autocommit INSERT: plain {plain_cpu:.1f} us, guarded "
                f"{guarded_cpu:.1f} us (+{guarded_cpu - plain_cpu:.1f} us)"
            )
        # Every application statement counted (pgbench's too, when it ran): the guard did its job.
        expected = rows[0] if rows else 0
        summary["guard_counted"] = counted
        summary["guarded_rows"] = expected
        print(f"guard counted {counted:,} statements for {expected:,} rows inserted into 'guarded'")
        if counted != expected:
            print("ERROR: the guard did not count every statement", file=sys.stderr)
            return 1
        Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
        return 0
    finally:
        cluster.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
