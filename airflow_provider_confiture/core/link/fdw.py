"""The postgres_fdw link from the target database to the source: extension, server, user mapping and
imported foreign tables, for exactly the tables a plan needs (:func:`setup_link`; database creation and
DDL, :mod:`target_database`, come first, because which source tables are needed depends on which
target tables exist). Setting it up is idempotent and brings a stale link up to date: a re-run pointed at another source
updates the server's options, so analyze and the loads never read different databases.

The link is read-only by construction: the foreign server's sessions run with
``default_transaction_read_only=on``, so even a hand-written statement through it cannot write to
the source. Its transport security (TLS settings carried over from the Airflow connections, checked
against the target server's postgres_fdw, and a first connection at setup) is :mod:`transport`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import catalog, dbapi, state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import SetupError
from airflow_provider_confiture.core.link import transport
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning.plan import PlanOptions, TablePlan

DEFAULT_SERVER = "confiture_source"
DEFAULT_FETCH_SIZE = 10_000


READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"


@dataclass(frozen=True)
class FdwLink:
    """How the *target server* reaches the source (not how the worker does).

    ``extra_options`` are server options on top of setup's (the transport-security settings and
    ``fdw_server_options``, see :func:`transport.plan_link_security`); ``mapping_extra`` are user
    mapping options beside the login (the client certificate); ``origins`` says where each came from
    and ``target`` names the target server, for messages."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    server: str = DEFAULT_SERVER
    fetch_size: int = DEFAULT_FETCH_SIZE
    extra_options: dict[str, str] = field(default_factory=dict)
    mapping_extra: dict[str, str] = field(default_factory=dict, repr=False)
    origins: dict[str, str] = field(default_factory=dict, repr=False)
    target: str = "the target server"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    def security(self) -> transport.LinkSecurity:
        return transport.LinkSecurity(
            server=dict(self.extra_options), mapping=dict(self.mapping_extra), origins=dict(self.origins)
        )

    def server_options(self) -> dict[str, str]:
        opts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "fetch_size": str(self.fetch_size),
            "options": READ_ONLY_OPTIONS,
            "keepalives": "1",
            "keepalives_idle": "30",
            "keepalives_interval": "10",
            "keepalives_count": "3",
            "connect_timeout": "10",
            "application_name": "confiture_fdw",
        }
        opts.update({k: str(v) for k, v in self.extra_options.items()})
        if "options" in self.extra_options:  # the user's session settings, read-only last so it wins
            opts["options"] = f"{self.extra_options['options']} {READ_ONLY_OPTIONS}"
        return opts

    def mapping_options(self) -> dict[str, str]:
        opts = {"user": self.user}
        if self.password:
            opts["password"] = self.password
        opts.update(self.mapping_extra)
        return opts


def _options_clause(
    current: dict[str, str], wanted: dict[str, str], drop: tuple[str, ...] = ()
) -> sql.Composable | None:
    """``OPTIONS (ADD k 'v', SET k 'v', DROP k)`` bringing ``current`` to ``wanted`` (dropping the
    ``drop`` options ``wanted`` lacks); None when nothing changes."""
    items = [sql.SQL("DROP {}").format(sql.Identifier(k)) for k in current if k in drop and k not in wanted]
    for key, value in wanted.items():
        if key not in current:
            items.append(sql.SQL("ADD {} {}").format(sql.Identifier(key), sql.Literal(value)))
        elif current[key] != value:
            items.append(sql.SQL("SET {} {}").format(sql.Identifier(key), sql.Literal(value)))
    if not items:
        return None
    return sql.SQL("OPTIONS ({})").format(sql.SQL(", ").join(items))


def _create_options(wanted: dict[str, str]) -> sql.Composable:
    return sql.SQL("OPTIONS ({})").format(
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in wanted.items()
        )
    )


def _parse_options(options: list[str] | None) -> dict[str, str]:
    out = {}
    for item in options or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def ensure_extension(conn: Connection) -> bool:
    """Create postgres_fdw if missing; True when this call created it. Explains missing privileges."""
    if dbapi.fetch_value(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'"):
        return False
    if not dbapi.fetch_value(
        conn, "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'"
    ):
        raise SetupError(
            "postgres_fdw is not available on the target server: install PostgreSQL's contrib package "
            "there (Debian/Ubuntu: postgresql-contrib; RHEL: postgresql-contrib)"
        )
    try:
        dbapi.execute(conn, "CREATE EXTENSION postgres_fdw")
    except dbapi.DB_ERRORS as exc:
        dbapi.safe_rollback(conn)
        role = dbapi.fetch_value(conn, "SELECT current_user")
        db = dbapi.fetch_value(conn, "SELECT current_database()")
        raise SetupError(
            f"role {role!r} cannot create extension postgres_fdw in database {db!r} "
            f"({dbapi.error_text(exc)}): ask a superuser to run, in that database, "
            f"CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role};"
        ) from exc
    return True


def ensure_server(conn: Connection, link: FdwLink) -> str:
    """Create the foreign server, or bring its options up to date. Returns "created"/"updated"/"unchanged"."""
    row = dbapi.fetch_one(
        conn,
        "SELECT w.fdwname, s.srvoptions FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w "
        "ON w.oid = s.srvfdw WHERE s.srvname = %s",
        (link.server,),
    )
    wanted = link.server_options()
    try:
        if row is None:
            dbapi.execute(
                conn,
                sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw {}").format(
                    sql.Identifier(link.server), _create_options(wanted)
                ),
            )
            return "created"
        if row[0] != "postgres_fdw":
            raise SetupError(
                f"a foreign server named {link.server!r} already exists for wrapper {row[0]!r}: choose another "
                "fdw_server_name"
            )
        current = _parse_options(row[1])
        # Setup owns the server: an option it no longer wants (a stale sslmode, a CA path from an
        # earlier run) is dropped, not left to weaken or misdirect the link.
        clause = _options_clause(current, wanted, drop=tuple(current))
        if clause is None:
            return "unchanged"
        dbapi.execute(conn, sql.SQL("ALTER SERVER {} {}").format(sql.Identifier(link.server), clause))
        return "updated"
    except dbapi.DB_ERRORS as exc:
        dbapi.safe_rollback(conn)
        role = dbapi.fetch_value(conn, "SELECT current_user")
        raise SetupError(
            f"could not create or update foreign server {link.server!r} as role {role!r}: "
            f"{dbapi.error_text(exc)}. A non-superuser needs: GRANT USAGE ON FOREIGN DATA WRAPPER "
            f"postgres_fdw TO {role}; and must own the server"
        ) from exc


def ensure_user_mapping(conn: Connection, link: FdwLink) -> str:
    """Create or update the user mapping for the current role (credentials never logged)."""
    if not link.password and not catalog.is_superuser(conn):
        role = dbapi.fetch_value(conn, "SELECT current_user")
        raise SetupError(
            f"target role {role!r} is not a superuser, so postgres_fdw requires a password in the user "
            "mapping and the source server must ask for it: set a password on the source connection "
            "(or on the connection given as fdw_conn_id)"
        )
    wanted = link.mapping_options()
    row = dbapi.fetch_one(
        conn,
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = %s AND usename = current_user",
        (link.server,),
    )
    if row is None:
        dbapi.execute(
            conn,
            sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} {}").format(
                sql.Identifier(link.server), _create_options(wanted)
            ),
        )
        return "created"
    current = _parse_options(row[0])
    if not link.password and "password" in current:
        dbapi.execute(
            conn,
            sql.SQL("ALTER USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS (DROP password)").format(
                sql.Identifier(link.server)
            ),
        )
        del current["password"]
    clause = _options_clause(current, wanted, drop=transport.INHERITED_MAPPING)
    if clause is None:
        return "unchanged"
    dbapi.execute(
        conn,
        sql.SQL("ALTER USER MAPPING FOR CURRENT_USER SERVER {} {}").format(
            sql.Identifier(link.server), clause
        ),
    )
    return "updated"


def _foreign_tables(conn: Connection, local_schema: str, server: str) -> dict[str, list[tuple[str, str]]]:
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_foreign_table f
        JOIN pg_class c ON c.oid = f.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_foreign_server s ON s.oid = f.ftserver
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = %s AND s.srvname = %s
        ORDER BY c.relname, a.attnum
        """,
        (local_schema, server),
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, col, typ in rows:
        out.setdefault(table, []).append((col, typ))
    return out


def import_tables(
    conn: Connection,
    link: FdwLink,
    source_schema: str,
    local_schema: str,
    tables: list[catalog.Table],
) -> dict[str, list[str]]:
    """Import ``tables`` of ``source_schema`` into ``local_schema``; re-import ones whose columns changed."""
    if not catalog.schema_exists(conn, local_schema):
        dbapi.execute(conn, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(local_schema)))
        state.set_setting(conn, f"created_schema:{local_schema}", "true")
    existing = _foreign_tables(conn, local_schema, link.server)
    to_import, refreshed, kept = [], [], []
    for table in tables:
        name = table.name.name
        wanted = [(c.name, c.type_name) for c in table.columns]
        if name in existing:
            if existing[name] == wanted:
                kept.append(name)
                continue
            try:
                dbapi.execute(
                    conn,
                    sql.SQL("DROP FOREIGN TABLE {}").format(sql.Identifier(local_schema, name)),
                )
            except dbapi.DB_ERRORS as exc:
                dbapi.safe_rollback(conn)
                raise SetupError(
                    f"foreign table {local_schema}.{name} no longer matches source table "
                    f"{source_schema}.{name} and cannot be refreshed because other objects depend on it "
                    f"({dbapi.error_text(exc)}): drop those objects, then re-run setup"
                ) from exc
            refreshed.append(name)
        elif catalog.table_oid(conn, QualifiedName(local_schema, name)) is not None:
            raise SetupError(
                f"{local_schema}.{name} exists on the target and is not a foreign table of server "
                f"{link.server!r}: choose another foreign_schema"
            )
        to_import.append(name)
    if to_import:
        try:
            dbapi.execute(
                conn,
                sql.SQL("IMPORT FOREIGN SCHEMA {} LIMIT TO ({}) FROM SERVER {} INTO {}").format(
                    sql.Identifier(source_schema),
                    sql.SQL(", ").join(sql.Identifier(n) for n in to_import),
                    sql.Identifier(link.server),
                    sql.Identifier(local_schema),
                ),
            )
        except dbapi.DB_ERRORS as exc:
            dbapi.safe_rollback(conn)
            raise SetupError(
                f"the target server could not import {source_schema} tables {', '.join(to_import)} from the "
                f"source at {link.host}:{link.port}/{link.dbname} as {link.user!r}: {dbapi.error_text(exc)}. "
                "Check that the target server can reach that address (fdw_host/fdw_port override it), "
                "the credentials, the source's pg_hba.conf, and that types used by those tables exist on "
                "the target"
            ) from exc
    return {
        "imported": [n for n in to_import if n not in refreshed],
        "refreshed": refreshed,
        "unchanged": kept,
    }


# --------------------------------------------------------------------------- the setup step's link
def source_tables_by_schema(
    plans: list[TablePlan], source_catalog: catalog.Catalog
) -> dict[str, list[catalog.Table]]:
    """Every source relation a plan reads (its main table or view, and its joined tables), by schema,
    each once. IMPORT FOREIGN SCHEMA imports views and materialized views like tables."""
    out: dict[str, list[catalog.Table]] = {}
    for plan in plans:
        for name in plan.source_tables:
            table = source_catalog.get(name)
            if table is not None and table not in out.setdefault(name.schema or "", []):
                out[name.schema or ""].append(table)
    return out


def ensure_extension_recorded(target_conn: Connection) -> bool:
    """Create postgres_fdw if missing (remembering that setup created it, so cleanup drops it only
    then). Run before the DDL: a target that cannot have the extension fails before anything is
    built. Commits. True when this call created it."""
    state.ensure_state_schema(target_conn)
    created = ensure_extension(target_conn)
    if created:
        state.set_setting(target_conn, "created_extension", "true")
    target_conn.commit()
    return created


def check_link(conn: Connection, link: FdwLink) -> tuple[FdwLink, dict[str, Any]]:
    """The link as the target server's postgres_fdw accepts it (inherited options it lacks and that do
    not weaken the link left out), after checking the files its settings name on that server. Needs
    postgres_fdw installed; changes nothing. Raises SetupError."""
    server, mapping = dict(link.extra_options), dict(link.mapping_extra)
    notes = transport.check_link_options(conn, server, mapping, link.origins)
    files = transport.check_link_files(conn, {**server, **mapping}, link.origins, link.target)
    checked = replace(link, extra_options=server, mapping_extra=mapping)
    return checked, {"settings": checked.security().described(), "files": files, "notes": notes}


def precheck_link(conn: Connection, link: FdwLink) -> None:
    """The whole link tried before setup changes anything: :func:`check_link`, then the server and
    user mapping made and opened once (:func:`open_link`), in a transaction that is rolled back
    (postgres_fdw created for the try if it is not installed yet). So a wrong CA or a file missing on
    the target server fails setup before the DDL runs. Starts by rolling back: call it with no work
    pending. When the role cannot create postgres_fdw, the try is left to :func:`setup_link` (after
    :func:`ensure_extension_recorded` explains)."""
    dbapi.safe_rollback(conn)
    try:
        if not dbapi.fetch_value(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'"):
            try:
                dbapi.execute(conn, "CREATE EXTENSION postgres_fdw")
            except dbapi.DB_ERRORS:
                return
        checked, _ = check_link(conn, link)
        ensure_server(conn, checked)
        ensure_user_mapping(conn, checked)
        open_link(conn, checked)
    finally:
        dbapi.safe_rollback(conn)


def open_link(conn: Connection, link: FdwLink) -> None:
    """Connect through the link once (:func:`transport.probe_link`); a failure is explained."""
    try:
        transport.probe_link(conn, link.server)
    except dbapi.DB_ERRORS as exc:
        text = dbapi.error_text(exc)
        dbapi.safe_rollback(conn)
        transient = any(s in text for s in ("timeout expired", "Connection refused", "could not translate"))
        raise SetupError(
            transport.explain_link_failure(
                text,
                options={**link.extra_options, **link.mapping_extra},
                origins=link.origins,
                address=link.address,
                target=link.target,
            ),
            retryable=transient,
        ) from exc


def setup_link(
    target_conn: Connection,
    link: FdwLink,
    plans: list[TablePlan],
    source_catalog: catalog.Catalog,
    options: PlanOptions,
) -> dict[str, Any]:
    """Create or refresh extension, server and user mapping, open the link once, then the foreign
    tables. Commits (nothing of the server and mapping stays when the link cannot connect)."""
    created_extension = ensure_extension_recorded(target_conn)
    link, security = check_link(target_conn, link)
    server = ensure_server(target_conn, link)
    mapping = ensure_user_mapping(target_conn, link)
    open_link(target_conn, link)
    state.set_setting(target_conn, "fdw_server", link.server)
    imports: dict[str, Any] = {}
    for source_schema, tables in source_tables_by_schema(plans, source_catalog).items():
        local = options.foreign_schema_for(source_schema)
        imports[local] = import_tables(target_conn, link, source_schema, local, tables)
        state.set_setting(target_conn, f"foreign_schema:{local}", source_schema)
    target_conn.commit()
    return {
        "extension": "created" if created_extension else "present",
        "server": server,
        "user_mapping": mapping,
        "foreign_tables": imports,
        "fdw_target": link.address,
        "link_security": security,
    }
