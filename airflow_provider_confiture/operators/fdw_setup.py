"""FdwSetupOperator: create the target database, build it from DDL, link it to the source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confiture.core import fdw, setup, target_database
from airflow_provider_confiture.core.analyze import plan_migration
from airflow_provider_confiture.operators import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, as_tables


class FdwSetupOperator(ConfitureBaseOperator):
    """Prepare the new database beside the old one (idempotent; re-running refreshes the link).

    1. Creates the target database if it does not exist (connecting to ``maintenance_database``).
    2. Applies the DDL files under ``ddl_path`` (sorted, recursive), once.
    3. Creates postgres_fdw, the foreign server (large fetch_size, read-only sessions), the user
       mapping, and imports the source tables the mapping needs into ``foreign_schema``.

    :param ddl_path: directory (or file) of ``.sql`` files building the new schema.
    :param create_database: create the target database when missing.
    :param maintenance_database: database to connect to for CREATE DATABASE.
    :param fdw_conn_id: connection whose login/password the user mapping uses (e.g. a read-only
        role); defaults to the source connection's.
    :param fdw_host: address the *target server* uses to reach the source (defaults to the source
        connection's host); also ``fdw_port``, ``fdw_dbname``.
    :param fdw_server_name: name of the foreign server.
    :param fetch_size: rows postgres_fdw fetches per round trip (the default of 100 is slow).
    :param dry_run: log what would be done, change nothing.
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "ddl_path",
        "fdw_conn_id",
        "fdw_host",
        "fdw_port",
        "fdw_dbname",
        "dry_run",
        "tables",
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
        fdw_server_name: str = fdw.DEFAULT_SERVER,
        fetch_size: int = fdw.DEFAULT_FETCH_SIZE,
        tables: list[str] | str | None = None,
        dry_run: bool | str = False,
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
        self.tables = tables
        self.dry_run = dry_run

    def fdw_link(self) -> fdw.FdwLink:
        source = connections.connection_target(self.source_conn_id)
        creds = connections.connection_target(self.fdw_conn_id) if self.fdw_conn_id else source
        return fdw.FdwLink(
            host=self.fdw_host or source["host"],
            port=int(self.fdw_port or source["port"]),
            dbname=self.fdw_dbname or source["dbname"],
            user=creds["user"],
            password=creds["password"],
            server=self.fdw_server_name,
            fetch_size=int(self.fetch_size),
        )

    def execute(self, context: Any) -> dict[str, Any]:
        mapping = self.load_mapping()  # bad mapping: fail before touching anything
        options = self.plan_options()
        link = self.fdw_link()
        target = connections.connection_target(self.target_conn_id)
        report: dict[str, Any] = {"target_database": target["dbname"]}
        if as_bool(self.dry_run):
            self.log.info(
                "Dry run: would ensure database %r, apply DDL from %s, and link it to %s:%s/%s as %r "
                "(server %r, foreign schema %r). Nothing changed.",
                target["dbname"],
                self.ddl_path,
                link.host,
                link.port,
                link.dbname,
                link.user,
                link.server,
                options.foreign_schema,
            )
            return {**report, "dry_run": True}
        if self.create_database:
            with self.target_connection(database=self.maintenance_database, autocommit=True) as admin:
                created = target_database.ensure_database(admin, target["dbname"])
            report["database"] = "created" if created else "exists"
            self.log.info("Target database %r %s", target["dbname"], report["database"])
        with self.both() as (source_conn, target_conn):
            created_extension = setup.ensure_extension_recorded(target_conn)
            if self.ddl_path:
                report["ddl"] = target_database.apply_ddl(target_conn, self.ddl_path)
                self.log.info(
                    "DDL applied: %s; already applied: %s",
                    report["ddl"]["applied"] or "none",
                    report["ddl"]["already_applied"] or "none",
                )
            result, source_catalog = plan_migration(
                source_conn, target_conn, mapping, options, as_tables(self.tables)
            )
            report.update(setup.setup_link(target_conn, link, result.plans, source_catalog, options))
            if created_extension:
                report["extension"] = "created"
        self.log.info(
            "postgres_fdw link to %s (server %s: %s, user mapping: %s); foreign tables: %s",
            report["fdw_target"],
            link.server,
            report["server"],
            report["user_mapping"],
            report["foreign_tables"],
        )
        return report
