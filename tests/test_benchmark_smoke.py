"""The benchmark script (``make bench``) end to end on tiny tables: it starts its own clusters, measures
every method on every table, and writes JSON with every method and table. No timing assertions: the
numbers of a tiny run mean nothing; this only proves the script works and our loads are exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: These tests start PostgreSQL servers themselves.
pytestmark = pytest.mark.db_subprocess

REPO = Path(__file__).resolve().parents[1]
METHODS = {"copy", "copy_psycopg2", "fdw", "psql_pipe", "original_fdw", "original_copy", "generic_transfer"}
TABLES = {"narrow": 2000, "events": 1500, "users": 1000}


def test_benchmark_script_runs_small_and_reports_every_method(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # the script sets its own
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench.py"),
            "--narrow-rows",
            str(TABLES["narrow"]),
            "--events-rows",
            str(TABLES["events"]),
            "--users-rows",
            str(TABLES["users"]),
            "--generic-rows",
            "700",
            "--memory-rows",
            "500",
            "--runs",
            "1",
            "--work-dir",
            str(REPO / ".work" / "bench-smoke"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())

    summary = results["summary"]
    assert set(summary) == set(TABLES)
    for table, rows in TABLES.items():
        assert set(summary[table]) == METHODS, (table, sorted(summary[table]))
        for method, entry in summary[table].items():
            assert entry["rows_per_second"] > 0 and entry["seconds"] > 0, (table, method, entry)
            assert entry["peak_rss_mb"] > 0, (table, method, entry)
            expected = 700 if method == "generic_transfer" else rows
            assert entry["rows"] == expected, (table, method, entry)
        assert summary[table]["psql_pipe"]["ratio_to_pipe"] == 1.0

    by_key = {(m["table"], m["method"]): m for m in results["measurements"]}
    for table, rows in TABLES.items():
        for method in ("copy", "copy_psycopg2", "fdw"):
            m = by_key[(table, method)]
            # our loads report exactly the rows the source holds, and the target holds exactly those
            assert m["rows"] == rows and m["target_rows"] == rows and m["rows_ok"], m
        copy = by_key[(table, "copy")]
        assert copy["copy_format"] == "binary" and copy["bytes"] > 0
        assert copy["verify_status"] == "match" and copy["verify_rows"] == [rows, rows]
        assert results["verify"][table]["status"] == ["match"]

    experiments = results["experiments"]
    assert experiments["memory_small"]["target_rows"] == 500
    for label in ("deferred", "in_place"):
        run = experiments[f"indexes_{label}"]
        assert run["same_indexes"] and len(run["indexes_after"]) == 4, run  # primary key + 3 secondary
    assert experiments["indexes_deferred"]["set_aside"]["indexes"] == 4
    assert experiments["indexes_in_place"]["set_aside"]["indexes"] == 0

    assert set(results["analyze"]) == set(TABLES)
    assert results["analyze"]["users"]["rows"] == TABLES["users"]
    settings = results["cluster_settings"]
    assert settings["source"] == settings["target"]  # every method ran against identical clusters
    assert settings["target"]["server_version"]
    names = {t["target"] for t in results["targets"]}
    assert "COPY (psycopg 3) vs psql binary pipe" in names and "verify time / copy time" in names
    # the printed report carries the same table
    assert "| ours: COPY strategy (psycopg 3) |" in proc.stdout
    # no credentials in the results
    text = out.read_text()
    assert "password=" not in text and '"password":' not in text
