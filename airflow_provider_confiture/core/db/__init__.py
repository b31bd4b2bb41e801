"""Database access beneath every step: the driver boundary, catalog reads, bookkeeping, SQLSTATEs."""

from airflow_provider_confiture.core.db import catalog, dbapi, sqlstate, state, text_table
from airflow_provider_confiture.core.db.dbapi import Connection

__all__ = ["Connection", "catalog", "dbapi", "sqlstate", "state", "text_table"]
