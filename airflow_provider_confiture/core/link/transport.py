"""The link's transport security: which libpq settings the *target server* uses when postgres_fdw
connects to the source, where each one comes from, and the checks that refuse a link weaker than the
Airflow connections it is built from.

The workers reach the source with the libpq settings of the Airflow connection's extras
(``sslmode=verify-full``, ``sslrootcert=...``). The link is a different client on a different machine:
the target server's PostgreSQL process. So:

* the transport-security settings of the connections' extras are carried over to the link
  (:data:`INHERITED_SERVER` as options of the foreign server, :data:`INHERITED_MAPPING`, the client
  certificate, in the user mapping next to the other credentials), and ``fdw_server_options`` sets or
  overrides server options (:func:`check_fdw_server_options` says which are refused and why);
* no ranked setting (:data:`RANKS`) of the link may be weaker than the strongest value any of those
  connections declares (libpq's default counting for a connection that sets nothing), a verifying
  ``sslmode`` needs a root certificate named explicitly, and ``sslmode=require`` with a root
  certificate becomes ``verify-ca`` (what libpq does when the file exists, made explicit so that a
  file missing on the target server fails instead of silently skipping verification):
  :func:`plan_link_security`;
* the target server's own postgres_fdw decides which options it accepts (its libpq may differ from the
  worker's): :func:`check_link_options` asks it, before anything is created, and also checks that the
  files the settings name exist *on the target server* when the target role may look;
* setup opens the link once (:func:`probe_link`), so a certificate that does not verify, a file the
  server cannot read or a source that refuses the encryption fails setup with a message naming the
  setting, the file and the machine (:func:`explain_link_failure`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi, state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import SetupError, did_you_mean

#: libpq transport-security settings carried from the connections' extras to the foreign server.
INHERITED_SERVER: tuple[str, ...] = (
    "sslmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcompression",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "sslnegotiation",
    "sslcertmode",
    "requirepeer",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "channel_binding",
    "require_auth",
)
#: The client certificate: a credential of the role, so it goes in the user mapping, and it is taken
#: from the connection whose login the mapping uses (``fdw_conn_id`` when given).
INHERITED_MAPPING: tuple[str, ...] = ("sslcert", "sslkey", "sslpassword")
#: Inherited settings whose absence would leave the link weaker than the connection: a target server
#: whose postgres_fdw does not accept one of them is refused. The others (e.g. ``sslnegotiation``,
#: a faster handshake, on a PostgreSQL 17 source) are left out with a note.
REQUIRED: frozenset[str] = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "ssl_min_protocol_version",
        "sslcertmode",
        "requirepeer",
        "gssencmode",
        "channel_binding",
        "require_auth",
        *INHERITED_MAPPING,
    }
)
#: Settings naming a file (or directory) that the target server's PostgreSQL process reads.
FILE_SETTINGS: dict[str, str] = {
    "sslrootcert": "file",
    "sslcrl": "file",
    "sslcrldir": "directory",
    "sslcert": "file",
    "sslkey": "file",
}
#: Settings with an order of strength, weakest first, and libpq's default for each.
RANKS: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
}
LIBPQ_DEFAULTS: dict[str, str] = {
    "sslmode": "prefer",
    "gssencmode": "prefer",
    "channel_binding": "prefer",
    "ssl_min_protocol_version": "TLSv1.2",
}
VERIFYING_SSLMODES = ("verify-ca", "verify-full")

#: Options refused in ``fdw_server_options``, with what to do instead.
REFUSED: dict[str, str] = {
    "user": "the user mapping's login comes from the connection (fdw_conn_id, else source_conn_id)",
    "password": "the user mapping's password comes from the connection (fdw_conn_id, else source_conn_id)",
    "sslpassword": "it is a secret: set it in the extras of the connection whose login the link uses",
    "password_required": "it would let the link connect without a password; only a superuser may set it",
    "passfile": "it makes the target server read a password file: put the password in the connection",
    "service": "it pulls settings from pg_service.conf on the target server, where setup cannot check "
    "them: set the options themselves",
    "host": "use fdw_host",
    "port": "use fdw_port",
    "dbname": "use fdw_dbname",
    "fetch_size": "use fetch_size",
}
#: Server options of postgres_fdw in PostgreSQL 13 to 18 (libpq's settings and the wrapper's own),
#: for a typo to be caught when the DAG is parsed; the target server's postgres_fdw has the last
#: word (:func:`check_link_options`).
KNOWN_SERVER_OPTIONS: frozenset[str] = frozenset(
    {
        *INHERITED_SERVER,
        "sslcert",
        "sslkey",
        "hostaddr",
        "options",
        "application_name",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "target_session_attrs",
        "load_balance_hosts",
        "min_protocol_version",
        "max_protocol_version",
        "gssdelegation",
        "oauth_issuer",
        "oauth_client_id",
        "oauth_scope",
        "use_remote_estimate",
        "fdw_startup_cost",
        "fdw_tuple_cost",
        "extensions",
        "updatable",
        "truncatable",
        "batch_size",
        "async_capable",
        "parallel_commit",
        "parallel_abort",
        "keep_connections",
        "analyze_sampling",
        "use_scram_passthrough",
    }
)
ACCEPTED_OVERRIDES: tuple[str, ...] = tuple(sorted(KNOWN_SERVER_OPTIONS - set(REFUSED)))
OVERRIDES = "fdw_server_options"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class ConnectionSecurity:
    """An Airflow connection's id and the extras its libpq sessions use (only settings are read)."""

    conn_id: str
    extras: Mapping[str, Any] = field(repr=False)

    def setting(self, name: str) -> str | None:
        value = self.extras.get(name)
        return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class LinkSecurity:
    """What the link's connection carries, and where each option comes from (for messages)."""

    server: dict[str, str]
    mapping: dict[str, str] = field(repr=False)
    origins: dict[str, str]

    def described(self) -> dict[str, str]:
        """The settings to show in a log or report: server options and the mapping's file paths (a
        path is not a secret; ``sslpassword`` is, and is only named)."""
        shown = {k: v for k, v in self.server.items() if k in INHERITED_SERVER}
        for key, value in self.mapping.items():
            shown[f"user mapping {key}"] = "(set)" if key == "sslpassword" else value
        return shown


def check_fdw_server_options(overrides: Mapping[str, Any] | None) -> dict[str, str]:
    """``fdw_server_options`` as text, refusing (before anything happens) names that are not server
    options of postgres_fdw, credentials and settings with a dedicated argument. Raises SetupError."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise SetupError(f"{OVERRIDES} must be a dict of option name to value, not {overrides!r}")
    out: dict[str, str] = {}
    for name, value in overrides.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SetupError(f"{OVERRIDES}: {name!r} is not an option name (lower-case letters, digits, _)")
        if name in REFUSED:
            raise SetupError(f"{OVERRIDES} cannot set {name!r}: {REFUSED[name]}")
        if name not in KNOWN_SERVER_OPTIONS:
            raise SetupError(
                f"{OVERRIDES}: {name!r} is not a server option of postgres_fdw{did_you_mean(name, ACCEPTED_OVERRIDES)}"
                f" Accepted: {', '.join(ACCEPTED_OVERRIDES)}"
            )
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SetupError(
                f"{OVERRIDES}[{name!r}] must be text or an integer, not {type(value).__name__} (libpq "
                "options are text: write '1' or 'true' as the option expects)"
            )
        out[name] = str(value)
    return out


def plan_link_security(
    source: ConnectionSecurity,
    credentials: ConnectionSecurity | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LinkSecurity:
    """The link's security settings from the source connection, the credentials' connection
    (``fdw_conn_id``; its settings win over the source's) and ``fdw_server_options`` (win over both).
    Raises SetupError, before anything is changed, when the link would be weaker than a connection."""
    wanted = check_fdw_server_options(overrides)
    connections = [source] if credentials is None else [source, credentials]
    identity = credentials or source
    server: dict[str, str] = {}
    mapping: dict[str, str] = {}
    origins: dict[str, str] = {}
    for conn in connections:
        for name in INHERITED_SERVER:
            value = conn.setting(name)
            if value is not None:
                server[name], origins[name] = value, f"the extras of connection {conn.conn_id!r}"
    for name in INHERITED_MAPPING:
        value = identity.setting(name)
        if value is not None:
            mapping[name], origins[name] = value, f"the extras of connection {identity.conn_id!r}"
    for name, value in wanted.items():
        (mapping if name in ("sslcert", "sslkey") else server)[name] = value
        origins[name] = OVERRIDES
    _refuse_weaker(server, origins, connections)
    if server.get("sslmode") == "require" and server.get("sslrootcert"):
        server["sslmode"] = "verify-ca"
        origins["sslmode"] = (
            f"{origins['sslmode']}: 'require' with an sslrootcert, made 'verify-ca' (what libpq does when "
            "the file exists; explicit on the link, so that a file missing on the target server fails "
            "instead of skipping verification)"
        )
    if server.get("sslmode") in VERIFYING_SSLMODES and not server.get("sslrootcert"):
        raise SetupError(
            f"the link would run with sslmode {server['sslmode']!r} (from {origins['sslmode']}) but no "
            "sslrootcert: the target server would verify the source's certificate against "
            "~/.postgresql/root.crt of the OS user running PostgreSQL there, a file nobody configured. Set "
            f"sslrootcert (a CA file on the target server, readable by that user) in {OVERRIDES} or in the "
            "connection's extras"
        )
    return LinkSecurity(server=server, mapping=mapping, origins=origins)


def _rank(name: str, value: str) -> int:
    order = RANKS[name]
    return order.index(value) if value in order else -1


def _refuse_weaker(
    server: Mapping[str, str], origins: Mapping[str, str], connections: Sequence[ConnectionSecurity]
) -> None:
    for name, order in RANKS.items():
        for conn in connections:
            declared = conn.setting(name) or LIBPQ_DEFAULTS[name]
            value = server.get(name, LIBPQ_DEFAULTS[name])
            if value not in order:
                raise SetupError(
                    f"{name} {value!r} (from {origins.get(name, 'libpq default')}) is not a value of {name}: "
                    f"use one of {', '.join(order)}"
                )
            if _rank(name, value) < _rank(name, declared):
                source = (
                    f"connection {conn.conn_id!r} sets {declared!r}"
                    if conn.setting(name)
                    else f"connection {conn.conn_id!r} uses libpq's default {declared!r}"
                )
                raise SetupError(
                    f"the link would be weaker than its connections: {name} {value!r} (from "
                    f"{origins.get(name, 'libpq default')}) is weaker than {declared!r} ({source}). A link is "
                    f"never weaker than the connections it is built from: raise {name} in {OVERRIDES}, or "
                    "lower it in the connection itself if that is really intended"
                )


# --------------------------------------------------------------------------- on the target server
def _invalid_option(conn: Connection, name: str, value: str, context: str) -> str | None:
    """The target server's postgres_fdw's refusal of one option (None when it accepts it)."""
    dbapi.execute(conn, "SAVEPOINT confiture_option_check")
    try:
        dbapi.execute(
            conn,
            "SELECT postgres_fdw_validator(ARRAY[%s], %s::regclass::oid)",
            (f"{name}={value}", context),
        )
    except dbapi.DB_ERRORS as exc:
        dbapi.execute(conn, "ROLLBACK TO SAVEPOINT confiture_option_check")
        return dbapi.error_text(exc)
    dbapi.execute(conn, "RELEASE SAVEPOINT confiture_option_check")
    return None


def check_link_options(
    conn: Connection, server: dict[str, str], mapping: dict[str, str], origins: Mapping[str, str]
) -> list[str]:
    """Ask the target server's postgres_fdw (which must be installed) whether it accepts each option
    in its place (server or user mapping). An option from ``fdw_server_options`` it refuses, or a
    :data:`REQUIRED` one from a connection, raises SetupError; another inherited one is removed from
    ``server``/``mapping`` and named in the returned notes. Changes nothing on the server."""
    version = dbapi.fetch_value(conn, "SELECT current_setting('server_version')")
    notes = []
    for options, context, place in (
        (server, "pg_foreign_server", "server option"),
        (mapping, "pg_user_mapping", "user mapping option"),
    ):
        for name in list(options):
            refusal = _invalid_option(conn, name, options[name], context)
            if refusal is None:
                continue
            origin = origins.get(name, "setup's defaults")
            if origin == OVERRIDES:
                raise SetupError(
                    f"the target server's postgres_fdw (PostgreSQL {version}) refuses {place} {name!r} "
                    f"from {OVERRIDES}: {refusal}"
                )
            if name in REQUIRED:
                raise SetupError(
                    f"{origin} set {name!r}, which the target server's postgres_fdw (PostgreSQL {version}) "
                    f"does not accept as a {place} ({refusal}): the link would be weaker than the "
                    "connection. Upgrade the target server, or change the connection's extras"
                )
            del options[name]
            notes.append(
                f"{name} (from {origin}) left out of the link: the target server's postgres_fdw "
                f"(PostgreSQL {version}) does not accept it, and the link is not weaker without it"
            )
    return notes


def _can_read_server_files(conn: Connection) -> bool:
    return bool(
        dbapi.fetch_value(
            conn,
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
            "OR (pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') "
            "AND has_function_privilege('pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE') "
            "AND has_function_privilege('pg_stat_file(text, boolean)', 'EXECUTE'))",
        )
    )


def on_the_target_server(target: str) -> str:
    return (
        f"on the target server ({target}), where the PostgreSQL server process reads it for postgres_fdw "
        "(as the OS user running PostgreSQL there), not on the Airflow worker"
    )


def check_link_files(
    conn: Connection, options: Mapping[str, str], origins: Mapping[str, str], target: str
) -> str:
    """Check that each file a setting names exists and is readable on the target server (the server's
    own process looks, through ``pg_stat_file``/``pg_read_binary_file``, which reads zero bytes), when
    the target role may (superuser, or pg_read_server_files with EXECUTE on those functions).
    Returns "checked" or "not checked: ..."; raises SetupError naming the setting, file and machine."""
    files = {k: v for k, v in options.items() if k in FILE_SETTINGS and v and v != "system"}
    if not files:
        return "no files"
    if not _can_read_server_files(conn):
        return (
            "not checked: the target role may not look at server files (superuser or "
            "pg_read_server_files); the link's first connection checks the certificate files"
        )
    for name, path in files.items():
        kind = FILE_SETTINGS[name]
        dbapi.execute(conn, "SAVEPOINT confiture_file_check")
        try:
            if kind == "directory":
                found = dbapi.fetch_value(conn, "SELECT (pg_stat_file(%s, true)).isdir", (path,))
                problem = None if found else "does not exist" if found is None else "is not a directory"
            else:
                found = dbapi.fetch_value(
                    conn, "SELECT pg_read_binary_file(%s, 0, 0, true) IS NOT NULL", (path,)
                )
                problem = None if found else "does not exist"
        except dbapi.DB_ERRORS as exc:
            problem = f"cannot be read ({dbapi.error_text(exc)})"
        dbapi.execute(conn, "ROLLBACK TO SAVEPOINT confiture_file_check")
        if problem:
            raise SetupError(
                f"{name} {path!r} (from {origins.get(name, OVERRIDES)}) {problem} {on_the_target_server(target)}. "
                f"Put the {kind} there, readable by that OS user, or set {name} in {OVERRIDES} to its path "
                "on the target server"
            )
    return "checked"


_PROBE = "confiture_link_probe"


def probe_link(conn: Connection, server: str) -> None:
    """Open the link once through a throwaway foreign table on the source's ``pg_namespace`` (readable
    by any role) in the bookkeeping schema (made if missing), dropped again in the same transaction.
    No savepoint: postgres_fdw would mirror it on the source, where only reads should arrive. Raises
    the driver's error (the transaction is then aborted: the caller rolls back)."""
    probe = sql.Identifier(state.STATE_SCHEMA, _PROBE)
    dbapi.execute(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(state.STATE_SCHEMA)))
    dbapi.execute(
        conn,
        sql.SQL(
            "CREATE FOREIGN TABLE {} (nspname name) SERVER {} "
            "OPTIONS (schema_name 'pg_catalog', table_name 'pg_namespace')"
        ).format(probe, sql.Identifier(server)),
    )
    dbapi.fetch_value(conn, sql.SQL("SELECT count(*) FROM {}").format(probe))
    dbapi.execute(conn, sql.SQL("DROP FOREIGN TABLE {}").format(probe))


def explain_link_failure(
    error: str,
    *,
    options: Mapping[str, str],
    origins: Mapping[str, str],
    address: str,
    target: str,
) -> str:
    """What a failed first connection of the link means, naming the setting, file and machine."""
    for name, path in options.items():
        if name in FILE_SETTINGS and path and f'"{path}"' in error:
            return (
                f"the target server could not use {name} {path!r} (from {origins.get(name, OVERRIDES)}) for "
                f"the link to the source at {address}: {error}. That {FILE_SETTINGS[name]} must exist "
                f"{on_the_target_server(target)}; put it there, or set {name} in {OVERRIDES} to its path on "
                "the target server"
            )
    if 'root certificate file "' in error:
        return (
            f"the target server has no root certificate for the link to the source at {address}: {error}. "
            f"Set sslrootcert to a CA file {on_the_target_server(target)}"
        )
    if "certificate verify failed" in error:
        used = ", ".join(
            f"{name} {options[name]!r} (from {origins.get(name, OVERRIDES)})"
            for name in ("sslrootcert", "sslcrl", "sslcrldir")
            if options.get(name)
        )
        return (
            f"the source's server certificate at {address} did not verify on the target server against "
            f"{used or 'its default root certificate'}: {error}. That CA file is not the one that signed the "
            "source's certificate (or a CRL revokes it, or sslcrldir names a directory that does not exist). "
            f"Give sslrootcert the CA that issued the source's certificate, as a file {on_the_target_server(target)}"
        )
    if "does not match host name" in error:
        return (
            f"the source's server certificate does not name the address the target server connects to "
            f"({address}): {error}. Point fdw_host at a name the certificate holds, or use "
            "sslmode 'verify-ca' if the name cannot match"
        )
    if "no encryption" in error:
        return (
            f"the source at {address} refuses unencrypted connections from the target server: {error}. Set "
            "sslmode (verify-full with an sslrootcert on the target server is the safe choice) in the "
            f"source connection's extras or in {OVERRIDES}"
        )
    return f"the target server could not open the link to the source at {address}: {error}"
