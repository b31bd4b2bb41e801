"""Passwords never reach task logs, XComs, exceptions or rendered templates.

A full migration DAG runs (dag.test) with three distinctive passwords: the source role's (read only),
the target role's (not a superuser) and the FDW role's (the user mapping's, via ``fdw_conn_id``).
Then every place a password could leak is searched for them: everything logged at DEBUG (caplog), all
process output (capfd), every file under AIRFLOW_HOME (task logs), and the metadata database file
itself (XComs, rendered template fields, serialized DAG, task instances). Failing steps (a wrong
password, a wrong FDW password, a load that fails) are searched too: message, repr and full
traceback of the whole exception chain.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import traceback
from pathlib import Path

import pendulum
import pytest
from psycopg import sql

SOURCE = """
CREATE TABLE accounts (id bigserial PRIMARY KEY, owner text NOT NULL, balance_cents bigint);
INSERT INTO accounts (owner, balance_cents) SELECT 'owner ' || g, g * 100 FROM generate_series(1, 2000) g;
CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint REFERENCES accounts (id), kind text);
INSERT INTO events (account_id, kind) SELECT 1 + g % 2000, 'k' || (g % 7) FROM generate_series(1, 3000) g;
"""
DDL = """
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(14,2));
CREATE TABLE events (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id), kind text);
"""
MAPPING = """
accounts:
  strategy: copy
  columns:
    balance:
      transform: "balance_cents::numeric / 100"
events:
  strategy: fdw
"""


@pytest.fixture
def least_privilege(source_db, target_db, make_role, airflow_conn, tmp_path):
    source_db.execute(SOURCE)
    grants = (
        "GRANT CONNECT ON DATABASE " + source_db.dbname + " TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
    )
    reader, reader_pw = make_role(source_db, *grants, prefix="reader")
    fdw_role, fdw_pw = make_role(source_db, *grants, prefix="fdwlink")
    owner, owner_pw = make_role(
        target_db, "ALTER DATABASE " + target_db.dbname + " OWNER TO {role}", prefix="owner"
    )
    target_db.execute(
        sql.SQL(
            "CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {}"
        ).format(sql.Identifier(owner))
    )
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01.sql").write_text(DDL)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    return {
        "common": {
            "source_conn_id": airflow_conn("sec_src", source_db, user=reader, password=reader_pw),
            "target_conn_id": airflow_conn("sec_tgt", target_db, user=owner, password=owner_pw),
            "mapping_path": str(tmp_path / "mapping.yaml"),
        },
        "fdw_conn_id": airflow_conn("sec_fdw", source_db, user=fdw_role, password=fdw_pw),
        "ddl_path": str(tmp_path / "ddl"),
        "passwords": {
            "source": reader_pw,
            "target": owner_pw,
            "fdw": fdw_pw,
            "source superuser": source_db.cluster.password,
            "target superuser": target_db.cluster.password,
        },
        "roles": {"reader": reader, "fdw": fdw_role},
    }


@pytest.fixture
def debug_logging(monkeypatch):
    """Airflow's logging at DEBUG for this test (configured from the environment), INFO again after."""
    from airflow import logging_config

    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    logging_config.configure_logging()
    yield
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    logging_config.configure_logging()


def _leaks(passwords: dict[str, str], where: str, text: str | bytes) -> list[str]:
    """One line per password found in ``text``, with its surroundings (the password itself masked)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out = []
    for who, pw in passwords.items():
        at = text.find(pw)
        if at >= 0:
            context = text[max(0, at - 150) : at + len(pw) + 60].replace(pw, "<PASSWORD>")
            out.append(f"{who} password in {where}: ...{context}...")
    return out


def _metadata_db() -> Path:
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def test_passwords_never_reach_logs_xcoms_templates_or_exceptions(
    least_privilege, source_db, target_db, run_dag, airflow_conn, debug_logging, caplog, capfd
):
    from airflow.sdk import DAG

    from airflow_provider_confiture.operators import (
        AnalyzeOperator,
        CleanupOperator,
        FdwSetupOperator,
        FinalizeLoadOperator,
        PrepareLoadOperator,
        TableMigrateOperator,
        VerifyOperator,
    )

    w = least_privilege
    common, passwords = w["common"], w["passwords"]
    caplog.set_level(logging.DEBUG)
    dag_id = "secrets_chain"
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        setup = FdwSetupOperator(
            task_id="setup",
            ddl_path=w["ddl_path"],
            create_database=False,
            fdw_conn_id=w["fdw_conn_id"],
            **common,
        )
        analyze = AnalyzeOperator(task_id="analyze", **common)
        prepare = PrepareLoadOperator(task_id="prepare", **common)
        accounts = TableMigrateOperator(task_id="accounts", table="accounts", **common)
        events = TableMigrateOperator(task_id="events", table="events", **common)
        finalize = FinalizeLoadOperator(task_id="finalize", **common)
        verify = VerifyOperator(task_id="verify", **common)
        cleanup = CleanupOperator(task_id="cleanup", target_conn_id=common["target_conn_id"])
        setup >> analyze >> prepare >> [accounts, events] >> finalize >> verify >> cleanup
    run = run_dag(dag)
    assert run.state == "success", run.state
    assert target_db.execute("SELECT count(*), sum(balance)::text FROM accounts") == [(2000, "2001000.00")]
    assert target_db.execute("SELECT count(*) FROM events") == [(3000,)]

    # Failing steps: wrong passwords (worker side, FDW side) and a load failing on the server.
    failures = []
    airflow_conn(
        "sec_wrong", source_db, user=w["roles"]["reader"], password="Wr0ng-" + passwords["source"][::-1]
    )
    passwords["wrong"] = "Wr0ng-" + passwords["source"][::-1]
    bad_fdw = airflow_conn(
        "sec_fdw_wrong", source_db, user=w["roles"]["fdw"], password="Wr0ng-" + passwords["fdw"][::-1]
    )
    passwords["wrong fdw"] = "Wr0ng-" + passwords["fdw"][::-1]
    FdwSetupOperator(task_id="relink", fdw_conn_id=w["fdw_conn_id"], create_database=False, **common).execute(
        {}
    )
    for op in (
        AnalyzeOperator(task_id="a", **{**common, "source_conn_id": "sec_wrong"}),
        FdwSetupOperator(
            task_id="s",
            fdw_conn_id=bad_fdw,
            foreign_schema="other_link",
            fdw_server_name="other_srv",
            create_database=False,
            **common,
        ),
        TableMigrateOperator(
            task_id="t",
            source_table="accounts",
            target_table="accounts",
            columns="id,owner",
            where="balance_cents / 0 > 1",
            **common,
        ),
    ):
        with pytest.raises(Exception) as caught:  # noqa: B017 - any failure; its text is what is checked
            op.execute({})
        failures.append(caught.value)
    assert "password authentication failed" in str(failures[0])
    assert "password authentication failed" in str(failures[1])
    assert "division by zero" in str(failures[2])

    leaks = []
    for exc in failures:
        leaks += _leaks(passwords, f"{type(exc).__name__} message", str(exc) + repr(exc))
        leaks += _leaks(
            passwords, f"{type(exc).__name__} traceback", "".join(traceback.format_exception(exc))
        )
    leaks += _leaks(passwords, "caplog", "\n".join(r.getMessage() + repr(r.args) for r in caplog.records))
    out, err = capfd.readouterr()
    # Airflow itself (not this provider): at DEBUG, dag.test()'s in-process supervisor logs each
    # secret it is asked to mask ("Sending request ... msg=MaskSecret(value='...')", supervisor.py).
    # Those lines are left out of the search, and only those: any other occurrence is a leak.
    airflow_own = [line for line in (out + err).splitlines() if "msg=MaskSecret(value=" in line]
    assert airflow_own, "expected Airflow's own MaskSecret debug lines (is the log really at DEBUG?)"
    leaks += _leaks(
        passwords,
        "stdout/stderr",
        "\n".join(line for line in (out + err).splitlines() if "msg=MaskSecret(value=" not in line),
    )
    assert "Loading public.accounts" in out + err + caplog.text  # the task output was really captured
    home = Path(os.environ["AIRFLOW_HOME"])
    files = [p for p in home.rglob("*") if p.is_file()]
    for path in files:
        leaks += _leaks(passwords, str(path.relative_to(home)), path.read_bytes())
    db = _metadata_db()
    with sqlite3.connect(db) as meta:
        xcoms = meta.execute("SELECT task_id, value FROM xcom WHERE dag_id = ?", (dag_id,)).fetchall()
        rendered = meta.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?", (dag_id,)
        ).fetchall()
    assert {t for t, _ in xcoms} >= {"setup", "analyze", "accounts", "events", "verify", "cleanup"}
    assert len(rendered) == 8
    leaks += _leaks(passwords, "XCom", repr(xcoms))
    leaks += _leaks(passwords, "rendered template fields", repr(rendered))
    assert any(p.name == db.name for p in files)  # the whole metadata DB file was searched above
    assert leaks == []
