"""MigrationOptions is the one declaration of the factory's options: the public builders and the
operators agree with it (no database needed)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from airflow_provider_confiture import create_schema_to_schema_dag
from airflow_provider_confiture.dag.options import MigrationOptions, OptionsError, accepted_arguments
from airflow_provider_confiture.operators import FdwSetupOperator, TableMigrateOperator, VerifyOperator

#: Keywords of create_schema_to_schema_dag that are DAG arguments, not migration options.
DAG_ARGUMENTS = {"dag_id", "schedule", "default_args", "create_cleanup_dag", "dag_kwargs"}


def test_the_public_signature_lists_exactly_the_options_with_the_same_defaults():
    signature = inspect.signature(create_schema_to_schema_dag).parameters
    options = {f.name: f for f in dataclasses.fields(MigrationOptions) if f.init}
    assert set(signature) - DAG_ARGUMENTS == set(options), (
        "add the option to both MigrationOptions and create_schema_to_schema_dag's keywords"
    )
    for name, f in options.items():
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert signature[name].default == expected, name


def test_each_option_reaches_the_operators_that_take_it(tmp_path):
    options = MigrationOptions(
        mapping_path=None,
        source_conn_id="s",
        target_conn_id="t",
        fdw_host="10.0.0.9",
        foreign_schema="legacy",
    )
    setup = options.operator_kwargs(FdwSetupOperator)
    assert setup["fdw_host"] == "10.0.0.9" and setup["foreign_schema"] == "legacy"
    assert "table_retries" not in setup  # an option no operator takes stays in the factory
    assert "fdw_host" not in options.operator_kwargs(TableMigrateOperator)
    assert {"source_conn_id", "target_conn_id", "tables", "dry_run"} <= accepted_arguments(VerifyOperator)
    assert "retries" not in accepted_arguments(VerifyOperator)  # Airflow's own arguments are not options


def test_unknown_and_invalid_options_are_refused_with_a_suggestion():
    with pytest.raises(OptionsError, match="unknown option 'fdw_hots'; did you mean 'fdw_host'"):
        MigrationOptions.from_kwargs(
            {"mapping_path": None, "source_conn_id": "s", "target_conn_id": "t", "fdw_hots": "x"}
        )
    with pytest.raises(OptionsError, match="strategy 'cpy' is not valid.*did you mean 'copy'"):
        MigrationOptions(mapping_path=None, source_conn_id="s", target_conn_id="t", strategy="cpy")
    with pytest.raises(OptionsError, match="rows_per_part must be an integer >= 0"):
        MigrationOptions(mapping_path=None, source_conn_id="s", target_conn_id="t", rows_per_part=-1)


def test_fdw_server_options_are_checked_when_the_dag_is_parsed_and_reach_setup():
    options = MigrationOptions(
        mapping_path=None,
        source_conn_id="s",
        target_conn_id="t",
        fdw_server_options={"sslrootcert": "/etc/postgresql/source-ca.crt"},
    )
    assert options.operator_kwargs(FdwSetupOperator)["fdw_server_options"] == {
        "sslrootcert": "/etc/postgresql/source-ca.crt"
    }
    with pytest.raises(OptionsError, match="fdw_server_options cannot set 'password'"):
        MigrationOptions(
            mapping_path=None, source_conn_id="s", target_conn_id="t", fdw_server_options={"password": "x"}
        )
    with pytest.raises(
        OptionsError, match="'sslrootcrt' is not a server option of postgres_fdw; did you mean 'sslrootcert'"
    ):
        create_schema_to_schema_dag(
            "bad_link", mapping_path=None, source_conn_id="s", target_conn_id="t",
            fdw_server_options={"sslrootcrt": "/ca.crt"},
        )  # fmt: skip
