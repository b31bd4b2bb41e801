"""Test helpers shipped with the provider (no Airflow imports): throwaway PostgreSQL clusters."""

from __future__ import annotations

from airflow_provider_confiture.testing.postgres_cluster import (
    ClusterDatabase,
    PostgresCluster,
    PostgresClusterError,
    conninfo_quote,
    free_port,
    pg_bin_dir,
    stop_all,
)
from airflow_provider_confiture.testing.tls import CertificateAuthority, ServerTls, new_certificate_authority

__all__ = [
    "CertificateAuthority",
    "ClusterDatabase",
    "PostgresCluster",
    "PostgresClusterError",
    "ServerTls",
    "conninfo_quote",
    "free_port",
    "new_certificate_authority",
    "pg_bin_dir",
    "stop_all",
]
