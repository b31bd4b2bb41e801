"""The link keeps the connection's transport security, against a source that accepts TCP over TLS only
(``pg_source_tls``: the suite's own throwaway CA, ``hostssl``-only pg_hba.conf).

* ``verify-full`` in the source connection's extras works end to end through both strategies: the
  copy path on the worker's own connections, the fdw path on the target server, whose foreign server
  carries the same settings (and opens TLS 1.3 sessions on the source); cleanup removes the server
  and its options; no password and no key material reaches a log, a file under AIRFLOW_HOME or XCom.
* a wrong CA, a CA file missing on the target server, a link weaker than the connection and a plain
  connection each fail at setup, before anything stays, with a message naming setting, file, machine.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pendulum
import pytest
from psycopg import sql

from airflow_provider_confiture.core.errors import ConnectionFailedError, SetupError
from airflow_provider_confiture.operators import AnalyzeOperator, CleanupOperator, FdwSetupOperator
from tests.support.steps import raises_step

SOURCE = """
CREATE TYPE account_kind AS ENUM ('personal', 'business');
CREATE DOMAIN cents AS bigint CHECK (VALUE >= 0);
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind account_kind NOT NULL, balance cents
);
INSERT INTO accounts (kind, balance)
SELECT (ARRAY['personal', 'business'])[1 + g % 2]::account_kind, g * 10 FROM generate_series(1, 1500) g;
CREATE TABLE "Audit Log" (id int PRIMARY KEY, account_id bigint REFERENCES accounts, note text);
INSERT INTO "Audit Log" SELECT g, 1 + g % 1500, 'n' || g FROM generate_series(1, 800) g;
ANALYZE;
"""
DDL = """
CREATE TYPE account_kind AS ENUM ('personal', 'business');
CREATE DOMAIN cents AS bigint CHECK (VALUE >= 0);
CREATE TABLE accounts (id bigint PRIMARY KEY, kind account_kind NOT NULL, balance numeric(14, 2));
CREATE TABLE "Audit Log" (id int PRIMARY KEY, account_id bigint REFERENCES accounts, note text);
"""
MAPPING = """
accounts:
  strategy: copy
  columns:
    balance:
      transform: "balance::numeric / 100"
Audit Log:
  strategy: fdw
"""


def srvoptions(db, server: str = "confiture_source") -> dict[str, str] | None:
    got = db.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", (server,))
    return dict(o.split("=", 1) for o in got[0][0]) if got else None


@pytest.fixture
def tls_migration(source_tls_db, target_db, make_role, airflow_conn, ca, tmp_path):
    """A least-privilege migration from the TLS-only source: a read-only source role, a non-superuser
    target owner, both connections verifying the source with the suite's CA."""
    source_tls_db.execute(SOURCE)
    reader, reader_pw = make_role(
        source_tls_db,
        "GRANT CONNECT ON DATABASE " + source_tls_db.dbname + " TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        prefix="tlsreader",
    )
    owner, owner_pw = make_role(
        target_db, "ALTER DATABASE " + target_db.dbname + " OWNER TO {role}", prefix="tlsowner"
    )
    target_db.execute(
        sql.SQL(
            "CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {}"
        ).format(sql.Identifier(owner))
    )
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01.sql").write_text(DDL)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    tag = target_db.dbname[-8:]
    return {
        "source_conn_id": airflow_conn(
            f"tls_src_{tag}", source_tls_db, user=reader, password=reader_pw, extra=ca.extras("verify-full")
        ),
        "target_conn_id": airflow_conn(f"tls_tgt_{tag}", target_db, user=owner, password=owner_pw),
        "mapping_path": str(tmp_path / "mapping.yaml"),
        "ddl_path": str(tmp_path / "ddl"),
        "tag": tag,
        "owner": (owner, owner_pw),
        "secrets": {
            "source password": reader_pw,
            "target password": owner_pw,
            "source superuser password": source_tls_db.cluster.password,
            "server key": b"".join(ca.server_key_pem.splitlines()[1:-1]).decode(),
            "server key line": ca.server_key_pem.splitlines()[1].decode(),
        },
    }


def _leaks(secrets: dict[str, str], where: str, text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [f"{who} in {where}" for who, secret in secrets.items() if secret in text]


def test_verify_full_end_to_end_through_both_strategies_then_cleanup(
    tls_migration, source_tls_db, target_db, ca, run_dag, caplog, capfd
):
    from airflow_provider_confiture import cleanup_dag_of, create_schema_to_schema_dag
    from airflow_provider_confiture.hooks import connections

    m = tls_migration
    caplog.set_level(logging.DEBUG)
    dag = create_schema_to_schema_dag(
        f"tls_e2e_{m['tag']}",
        **{k: m[k] for k in ("source_conn_id", "target_conn_id", "mapping_path", "ddl_path")},
        start_date=pendulum.datetime(2026, 1, 1),
    )
    run = run_dag(dag)
    assert run.state == "success", run.state
    assert target_db.execute("SELECT count(*), sum(balance)::text FROM accounts") == [(1500, "112575.00")]
    assert target_db.execute('SELECT count(*) FROM "Audit Log"') == [(800,)]

    # The fdw path: the target server's foreign server has the connection's settings...
    options = srvoptions(target_db)
    assert options["sslmode"] == "verify-full" and options["sslrootcert"] == str(ca.root)
    assert "password" not in options and "user" not in options
    # ...and its sessions on the source are TLS (a plain one could not exist: hostssl only).
    owner, owner_pw = m["owner"]
    with target_db.connect(user=owner, password=owner_pw) as conn:
        assert conn.execute('SELECT count(*) FROM old_schema."Audit Log"').fetchone() == (800,)
        ssl = source_tls_db.execute(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'confiture_fdw' AND a.datname = %s",
            (source_tls_db.dbname,),
        )
        assert ssl and all(row == (True, "TLSv1.3") for row in ssl), ssl
    # The copy path: the worker's own connection uses the extras (verifies the source with the CA).
    with connections.connect(m["source_conn_id"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True,)

    run = run_dag(cleanup_dag_of(dag))
    assert run.state == "success", run.state
    assert srvoptions(target_db) is None
    assert target_db.execute("SELECT count(*) FROM pg_user_mappings") == [(0,)]

    leaks = _leaks(m["secrets"], "caplog", "\n".join(r.getMessage() + repr(r.args) for r in caplog.records))
    out, err = capfd.readouterr()
    leaks += _leaks(m["secrets"], "stdout/stderr", out + err)
    assert "sslmode" in out + err + caplog.text  # the link's settings are logged (no secrets in them)
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in (p for p in home.rglob("*") if p.is_file()):
        leaks += _leaks(m["secrets"], str(path.relative_to(home)), path.read_bytes())
    with sqlite3.connect(
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    ) as meta:
        xcoms = meta.execute("SELECT value FROM xcom WHERE dag_id = ?", (dag.dag_id,)).fetchall()
    assert xcoms
    leaks += _leaks(m["secrets"], "XCom", repr(xcoms))
    assert leaks == []


def _setup(m, **kwargs):
    ids = {k: m[k] for k in ("source_conn_id", "target_conn_id", "mapping_path")}
    return FdwSetupOperator(task_id="setup", ddl_path=m["ddl_path"], create_database=False, **ids, **kwargs)


def test_a_wrong_ca_fails_setup_naming_the_setting_the_file_and_the_machine(tls_migration, target_db, ca):
    with raises_step(SetupError) as info:
        _setup(tls_migration, fdw_server_options={"sslrootcert": str(ca.wrong_root)}).execute({})
    message = str(info.value)
    assert (
        f"did not verify on the target server against sslrootcert '{ca.wrong_root}' (from fdw_server_options)"
        in message
    )
    assert "certificate verify failed" in message and "not on the Airflow worker" in message
    assert srvoptions(target_db) is None  # nothing of the link stays
    assert target_db.execute("SELECT count(*) FROM pg_user_mappings") == [(0,)]

    # the same CA file path, missing on the target server (a non-superuser target cannot look at server
    # files: the link's first connection finds it)
    with raises_step(SetupError) as info:
        _setup(tls_migration, fdw_server_options={"sslrootcert": "/etc/confiture-missing/ca.crt"}).execute({})
    message = str(info.value)
    assert "could not use sslrootcert '/etc/confiture-missing/ca.crt' (from fdw_server_options)" in message
    assert "must exist on the target server" in message and "not on the Airflow worker" in message
    assert srvoptions(target_db) is None


def test_a_superuser_target_checks_the_files_before_anything_changes(
    source_tls_db, target_db, airflow_conn, ca
):
    source_tls_db.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    target_db.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    ids = {
        "source_conn_id": airflow_conn("tls_su_src", source_tls_db, extra=ca.extras("verify-full")),
        "target_conn_id": airflow_conn("tls_su_tgt", target_db),
    }
    with raises_step(
        SetupError,
        match=r"sslcrl '/nowhere/source.crl' \(from fdw_server_options\) does not exist on the target server",
    ):
        FdwSetupOperator(
            task_id="s", create_database=False, fdw_server_options={"sslcrl": "/nowhere/source.crl"}, **ids
        ).execute({})
    assert target_db.execute("SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'") == [(0,)]
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = '_confiture'") == [(0,)]
    report = FdwSetupOperator(task_id="s", create_database=False, **ids).execute({})
    assert report["link_security"]["settings"] == {"sslmode": "verify-full", "sslrootcert": str(ca.root)}
    assert report["link_security"]["files"] == "checked"


def test_a_link_weaker_than_the_connection_is_refused_before_anything_changes(tls_migration, target_db, ca):
    with raises_step(
        SetupError, match=r"sslmode 'require' \(from fdw_server_options\) is weaker than 'verify-full'"
    ):
        _setup(tls_migration, fdw_server_options={"sslmode": "require"}).execute({})
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = '_confiture'") == [(0,)]
    assert target_db.execute("SELECT count(*) FROM pg_class WHERE relname = 'accounts'") == [(0,)]  # no DDL


def test_a_plain_connection_to_the_tls_only_source_fails_clearly(source_tls_db, target_db, airflow_conn):
    source_tls_db.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    ids = {
        "source_conn_id": airflow_conn("tls_plain_src", source_tls_db, extra={"sslmode": "disable"}),
        "target_conn_id": airflow_conn("tls_plain_tgt", target_db),
    }
    with raises_step(ConnectionFailedError) as info:
        AnalyzeOperator(task_id="a", **ids).execute({})
    assert "no encryption" in str(info.value)
    assert "accepts only encrypted connections: set sslmode in the connection's extras" in str(info.value)
    CleanupOperator(task_id="c", target_conn_id=ids["target_conn_id"]).execute({})  # nothing to remove: fine


def test_the_client_certificate_goes_to_the_user_mapping(source_tls_db, target_db, airflow_conn, ca):
    """sslcert/sslkey identify the link's role: they are stored with its credentials (pg_user_mapping,
    superusers and that role only), never in the server's options that every role can read."""
    import shutil

    client = _client_certificate(ca)
    source_tls_db.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    target_db.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    ids = {
        "source_conn_id": airflow_conn("tls_cert_src", source_tls_db, extra=ca.extras("verify-full")),
        "target_conn_id": airflow_conn("tls_cert_tgt", target_db),
    }
    try:
        report = FdwSetupOperator(
            task_id="s",
            create_database=False,
            fdw_server_options={"sslcert": str(client / "fdw.crt"), "sslkey": str(client / "fdw.key")},
            **ids,
        ).execute({})
        assert report["link_security"]["files"] == "checked"
        mapping = target_db.execute(
            "SELECT umoptions FROM pg_user_mappings WHERE srvname = 'confiture_source'"
        )
        mapping_options = dict(o.split("=", 1) for o in mapping[0][0])
        assert mapping_options["sslcert"] == str(client / "fdw.crt")
        assert mapping_options["sslkey"] == str(client / "fdw.key")
        assert "sslcert" not in srvoptions(target_db) and "sslkey" not in srvoptions(target_db)
        # the next run without them drops them from the mapping
        FdwSetupOperator(task_id="s", create_database=False, **ids).execute({})
        mapping = target_db.execute(
            "SELECT umoptions FROM pg_user_mappings WHERE srvname = 'confiture_source'"
        )
        assert not any(o.startswith(("sslcert=", "sslkey=")) for o in mapping[0][0])
    finally:
        shutil.rmtree(client, ignore_errors=True)


def _client_certificate(ca) -> Path:  # noqa: N802 - a helper, not a fixture
    """A client certificate and key (0600, owned by the OS user running the target server)."""
    import secrets

    from airflow_provider_confiture.testing import new_certificate_authority

    directory = ca.root.parent.parent / f"tls-client-{secrets.token_hex(3)}"
    directory.mkdir(mode=0o755)
    issued = new_certificate_authority("client issuer").issue_server(("confiture-fdw",))
    cert, key = directory / "fdw.crt", directory / "fdw.key"
    cert.write_bytes(issued.cert_pem)
    cert.chmod(0o644)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    if os.geteuid() == 0:
        import shutil

        for path in (directory, cert, key):
            shutil.chown(path, "postgres", "postgres")
    return directory
