"""The link's transport security (core.link.transport): what is carried over from the connections'
extras and where it goes, what ``fdw_server_options`` may set, the refusal of a link weaker than its
connections, and the target server's postgres_fdw deciding which options it accepts."""

from __future__ import annotations

import os

import pytest

from airflow_provider_confiture.core.db import catalog
from airflow_provider_confiture.core.errors import SetupError
from airflow_provider_confiture.core.link import fdw, transport
from airflow_provider_confiture.core.link.transport import ConnectionSecurity, plan_link_security
from tests.support.engine import link_to

CA = "/etc/postgresql/source-ca.crt"


def test_the_connections_tls_settings_reach_the_server_and_the_client_certificate_the_user_mapping():
    source = ConnectionSecurity(
        "old_db",
        {
            "sslmode": "verify-full",
            "sslrootcert": CA,
            "sslcrl": "/etc/postgresql/source.crl",
            "sslcert": "/home/airflow/reader.crt",  # the source role's: not the link's identity
            "connect_timeout": 5,  # not a security setting: the link has its own
            "application_name": "x",
        },
    )
    reader = ConnectionSecurity(
        "old_db_fdw", {"sslcert": "/var/lib/postgresql/fdw.crt", "sslkey": "/var/lib/postgresql/fdw.key"}
    )
    security = plan_link_security(source, reader)
    assert security.server == {
        "sslmode": "verify-full",
        "sslrootcert": CA,
        "sslcrl": "/etc/postgresql/source.crl",
    }
    assert security.mapping == {
        "sslcert": "/var/lib/postgresql/fdw.crt",
        "sslkey": "/var/lib/postgresql/fdw.key",
    }
    assert security.origins["sslmode"] == "the extras of connection 'old_db'"
    assert security.origins["sslkey"] == "the extras of connection 'old_db_fdw'"

    # fdw_server_options override (a CA at another path on the target server) and add options
    moved = plan_link_security(source, reader, {"sslrootcert": "/srv/ca.pem", "sslkey": "/srv/fdw.key"})
    assert (
        moved.server["sslrootcert"] == "/srv/ca.pem" and moved.origins["sslrootcert"] == "fdw_server_options"
    )
    assert moved.mapping["sslkey"] == "/srv/fdw.key"
    # a secret is only named when described for logs
    secret = plan_link_security(ConnectionSecurity("c", {"sslpassword": "k3y-pass", "sslkey": "/k"}))
    assert secret.mapping["sslpassword"] == "k3y-pass"
    assert "k3y-pass" not in repr(secret) and "k3y-pass" not in repr(secret.described())


def test_require_with_a_root_certificate_becomes_verify_ca_on_the_link():
    security = plan_link_security(ConnectionSecurity("c", {"sslmode": "require", "sslrootcert": CA}))
    assert security.server["sslmode"] == "verify-ca"
    assert "made 'verify-ca'" in security.origins["sslmode"]
    assert plan_link_security(ConnectionSecurity("c", {"sslmode": "require"})).server == {
        "sslmode": "require"
    }


@pytest.mark.parametrize(
    ("extras", "overrides", "message"),
    [
        (
            {"sslmode": "verify-full", "sslrootcert": CA},
            {"sslmode": "require"},
            r"sslmode 'require' \(from fdw_server_options\) is weaker than 'verify-full' \(connection 'src' sets",
        ),
        ({}, {"sslmode": "disable"}, r"weaker than 'prefer' \(connection 'src' uses libpq's default"),
        (
            {},
            {"ssl_min_protocol_version": "TLSv1"},
            r"ssl_min_protocol_version 'TLSv1' .* weaker than 'TLSv1.2'",
        ),
        ({"channel_binding": "require"}, {"channel_binding": "prefer"}, "channel_binding 'prefer'"),
        ({"gssencmode": "require"}, {"gssencmode": "disable"}, "gssencmode 'disable'"),
        ({}, {"sslmode": "verify-all"}, "sslmode 'verify-all' .* is not a value of sslmode: use one of"),
        (
            {"sslmode": "verify-full"},
            None,
            r"sslmode 'verify-full' \(from the extras of connection 'src'\) but no sslrootcert: .*"
            r"~/.postgresql/root.crt of the OS user running PostgreSQL there",
        ),
    ],
)
def test_a_link_weaker_than_its_connections_is_refused(extras, overrides, message):
    with pytest.raises(SetupError, match=message):
        plan_link_security(ConnectionSecurity("src", extras), None, overrides)


def test_the_credentials_connection_cannot_weaken_the_source_connections_policy():
    source = ConnectionSecurity("src", {"sslmode": "verify-full", "sslrootcert": CA})
    with pytest.raises(SetupError, match=r"'verify-ca' \(from the extras of connection 'fdw'\).*'src' sets"):
        plan_link_security(source, ConnectionSecurity("fdw", {"sslmode": "verify-ca"}))
    # the credentials' connection may be stricter; it wins
    stricter = plan_link_security(
        ConnectionSecurity("src", {"sslmode": "require"}),
        ConnectionSecurity("fdw", {"sslmode": "verify-full", "sslrootcert": CA}),
    )
    assert stricter.server == {"sslmode": "verify-full", "sslrootcert": CA}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password": "x"}, "cannot set 'password': the user mapping's password comes from the connection"),
        ({"user": "x"}, "cannot set 'user'"),
        ({"sslpassword": "x"}, "cannot set 'sslpassword': it is a secret"),
        ({"passfile": "/x"}, "cannot set 'passfile'"),
        ({"service": "old"}, "cannot set 'service'"),
        ({"host": "10.0.0.1"}, "cannot set 'host': use fdw_host"),
        ({"fetch_size": 5}, "cannot set 'fetch_size': use fetch_size"),
        (
            {"sslmdoe": "verify-full"},
            r"'sslmdoe' is not a server option of postgres_fdw; did you mean 'sslmode'\? Accepted: .*sslrootcert",
        ),
        ({"sslsni": True}, "must be text or an integer, not bool"),
        ({"SSLMODE": "require"}, "is not an option name"),
    ],
)
def test_fdw_server_options_are_checked_before_anything_happens(overrides, message):
    with pytest.raises(SetupError, match=message):
        transport.check_fdw_server_options(overrides)


def test_the_user_s_session_options_are_kept_and_the_link_stays_read_only():
    link = fdw.FdwLink("h", 5432, "db", "u", extra_options={"options": "-c search_path=legacy"})
    assert link.server_options()["options"] == "-c search_path=legacy -c default_transaction_read_only=on"


def _checked(target_conn, security):
    target_conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    server, mapping = dict(security.server), dict(security.mapping)
    notes = transport.check_link_options(target_conn, server, mapping, security.origins)
    return server, mapping, notes


def test_the_target_servers_postgres_fdw_decides_which_options_it_accepts(target_db, connect):
    conn = connect(target_db)
    version = catalog.server_version_num(conn)
    # sslnegotiation (PostgreSQL 17) only speeds up the handshake: left out, with a note, where the
    # target server does not have it; kept where it does.
    security = plan_link_security(
        ConnectionSecurity("src", {"sslmode": "verify-full", "sslrootcert": CA, "sslnegotiation": "direct"})
    )
    server, _, notes = _checked(conn, security)
    if version >= 170000:
        assert server["sslnegotiation"] == "direct" and notes == []
    else:
        assert "sslnegotiation" not in server and server["sslrootcert"] == CA
        assert (
            notes and "sslnegotiation (from the extras of connection 'src') left out of the link" in notes[0]
        )
    # a setting whose absence weakens the link is not left out: require_auth (PostgreSQL 16)
    strict = plan_link_security(ConnectionSecurity("src", {"require_auth": "scram-sha-256"}))
    if version < 160000:
        with pytest.raises(
            SetupError,
            match=r"set 'require_auth', which the target server's postgres_fdw "
            r"\(PostgreSQL .*\) does not accept .* the link would be weaker",
        ):
            _checked(conn, strict)
    else:
        assert _checked(conn, strict)[0] == {"require_auth": "scram-sha-256"}
    # an explicit option the server refuses names it and lists what the server accepts
    bad = plan_link_security(ConnectionSecurity("src", {}), None, {"batch_size": "lots"})
    with pytest.raises(
        SetupError, match=r"refuses server option 'batch_size' from fdw_server_options: .*batch_size"
    ):
        _checked(conn, bad)
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the checks left the transaction usable


def test_files_the_settings_name_must_exist_on_the_target_server(target_db, connect, ca, tmp_path):
    conn = connect(target_db)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    origins = {"sslrootcert": "the extras of connection 'src'"}
    assert transport.check_link_files(conn, {"sslrootcert": str(ca.root)}, origins, "tgt:5432") == "checked"
    with pytest.raises(SetupError) as caught:
        transport.check_link_files(conn, {"sslrootcert": "/nowhere/ca.crt"}, origins, "tgt:5432")
    message = str(caught.value)
    assert "sslrootcert '/nowhere/ca.crt' (from the extras of connection 'src') does not exist" in message
    assert "on the target server (tgt:5432)" in message and "not on the Airflow worker" in message
    with pytest.raises(SetupError, match="sslcrldir '/nowhere' .* does not exist on the target server"):
        transport.check_link_files(conn, {"sslcrldir": "/nowhere"}, {}, "tgt:5432")
    if os.geteuid() == 0:  # the server runs as another OS user (postgres): a file only we can read
        private = tmp_path / "ca.crt"
        private.write_bytes(ca.root.read_bytes())
        private.chmod(0o600)
        with pytest.raises(
            SetupError, match=r"sslcert '.*ca.crt' \(from fdw_server_options\) cannot be read"
        ):
            transport.check_link_files(conn, {"sslcert": str(private)}, {}, "tgt:5432")
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_stale_option_is_dropped_when_setup_runs_again(source_db, target_db, connect):
    conn = connect(target_db)
    fdw.ensure_extension_recorded(conn)
    fdw.ensure_server(conn, link_to(source_db, extra_options={"sslmode": "disable", "sslcrl": "/old.crl"}))
    assert fdw.ensure_server(conn, link_to(source_db, extra_options={"sslmode": "require"})) == "updated"
    options = dict(
        o.split("=", 1) for o in conn.execute("SELECT srvoptions FROM pg_foreign_server").fetchone()[0]
    )
    assert options["sslmode"] == "require" and "sslcrl" not in options
