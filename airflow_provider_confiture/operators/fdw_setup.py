"""FdwSetupOperator: create the target database, build it from DDL, link it to the source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import link
from airflow_provider_confiture.hooks import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class FdwSetupOperator(ConfitureBaseOperator):
    """Prepare the new database beside the old one (idempotent; re-running refreshes the link).

    1. Creates the target database if it does not exist (connecting to ``maintenance_database``).
    2. Applies the DDL files under ``ddl_path`` (sorted, recursive), once.
    3. Creates postgres_fdw, the foreign server (large fetch_size, read-only sessions), the user
       mapping, and imports the source tables the mapping needs into ``foreign_schema``.

    :param ddl_path: directory (or file) of ``.sql`` files building the new schema. (templated)
    :param create_database: create the target database when missing.
    :param maintenance_database: database to connect to for CREATE DATABASE.
    :param fdw_conn_id: connection whose login/password the user mapping uses (e.g. a read-only
        role); defaults to the source connection's. (templated)
    :param fdw_host: address the *target server* uses to reach the source (defaults to the source
        connection's host); also ``fdw_port``, ``fdw_dbname``. (templated)
    :param fdw_server_name: name of the foreign server.
    :param fetch_size: rows postgres_fdw fetches per round trip (the default of 100 is slow).
    :param fdw_server_options: server options of the link set or overridden (e.g. ``{"sslrootcert":
        "/etc/postgresql/source-ca.crt"}``, a path on the *target server*); the transport-security
        settings of the connections' extras (``sslmode``, ``sslrootcert``...) are carried over without
        it. Refused: credentials, and a link weaker than the connections. (templated)
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "ddl_path",
        "fdw_conn_id",
        "fdw_host",
        "fdw_port",
        "fdw_dbname",
        "fdw_server_options",
    )

    def __init__(
        self,
        *,
        ddl_path: str | None = None,
        create_database: bool = True,
        maintenance_database: str = "postgres",
        fdw_conn_id: str | None = None,
        fdw_host: str | None = None,
        fdw_port: int | str | None = None,
        fdw_dbname: str | None = None,
        fdw_server_name: str = link.DEFAULT_SERVER,
        fetch_size: int = link.DEFAULT_FETCH_SIZE,
        fdw_server_options: dict[str, str | int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ddl_path = str(ddl_path) if ddl_path is not None else None
        self.create_database = create_database
        self.maintenance_database = maintenance_database
        self.fdw_conn_id = fdw_conn_id
        self.fdw_host = fdw_host
        self.fdw_port = fdw_port
        self.fdw_dbname = fdw_dbname
        self.fdw_server_name = fdw_server_name
        self.fetch_size = fetch_size
        link.check_fdw_server_options(fdw_server_options)  # a bad name is a DAG import error
        self.fdw_server_options = fdw_server_options

    def fdw_link(self) -> link.FdwLink:
        source = connections.connection_target(self.source_conn_id)
        creds = connections.connection_target(self.fdw_conn_id) if self.fdw_conn_id else source
        security = link.plan_link_security(
            connections.connection_security(self.source_conn_id),
            connections.connection_security(self.fdw_conn_id) if self.fdw_conn_id else None,
            self.fdw_server_options,
        )
        target = connections.connection_target(self.target_conn_id)
        return link.FdwLink(
            host=self.fdw_host or source["host"],
            port=int(self.fdw_port or source["port"]),
            dbname=self.fdw_dbname or source["dbname"],
            user=creds["user"],
            password=creds["password"],
            server=self.fdw_server_name,
            fetch_size=int(self.fetch_size),
            extra_options=security.server,
            mapping_extra=security.mapping,
            origins=security.origins,
            target=f"{target['host']}:{target['port']}, connection {self.target_conn_id!r}",
        )

    def execute_step(self, context: Context) -> dict[str, Any]:
        mapping = self.load_mapping()  # bad mapping: fail before touching anything
        options = self.plan_options()
        fdw_link = self.fdw_link()  # a link weaker than its connections: fail before touching anything
        target = connections.connection_target(self.target_conn_id)
        report: dict[str, Any] = {"target_database": target["dbname"]}
        if self.dry_run:
            self.log.info(
                "Dry run: would ensure database %r, apply DDL from %s, and link it to %s:%s/%s as %r "
                "(server %r, foreign schema %r). Nothing changed.",
                target["dbname"],
                self.ddl_path,
                fdw_link.host,
                fdw_link.port,
                fdw_link.dbname,
                fdw_link.user,
                fdw_link.server,
                options.foreign_schema,
            )
            self.log.info(
                "Dry run: the link's security settings would be %s", fdw_link.security().described()
            )
            return {**report, "dry_run": True}
        if self.create_database:
            with self.target_connection(database=self.maintenance_database, autocommit=True) as admin:
                created = link.ensure_database(admin, target["dbname"])
            report["database"] = "created" if created else "exists"
            self.log.info("Target database %r %s", target["dbname"], report["database"])
        with self.both() as (source_conn, target_conn):
            report.update(
                link.build_and_link(
                    source_conn,
                    target_conn,
                    mapping,
                    options,
                    fdw_link,
                    ddl_path=self.ddl_path,
                    tables=self.tables,
                )
            )
        if "ddl" in report:
            self.log.info(
                "DDL applied: %s; already applied: %s",
                report["ddl"]["applied"] or "none",
                report["ddl"]["already_applied"] or "none",
            )
        self.log.info(
            "postgres_fdw link to %s (server %s: %s, user mapping: %s); foreign tables: %s",
            report["fdw_target"],
            fdw_link.server,
            report["server"],
            report["user_mapping"],
            report["foreign_tables"],
        )
        security = report["link_security"]
        self.log.info(
            "Link security: %s; files named by them on the target server: %s",
            security["settings"] or "libpq defaults (no TLS settings in the connections' extras)",
            security["files"],
        )
        for note in security["notes"]:
            self.log.info("Link: %s", note)
        return report
