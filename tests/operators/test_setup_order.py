"""Setup checks the one thing it cannot fix itself (postgres_fdw) before building anything."""

from __future__ import annotations

import secrets

from tests.support.steps import raises_step


def test_setup_without_postgres_fdw_fails_before_applying_ddl(source_db, target_db, airflow_conn, tmp_path):
    from airflow_provider_confiture.core.errors import SetupError
    from airflow_provider_confiture.operators import FdwSetupOperator

    source_db.execute("CREATE TABLE users (id int PRIMARY KEY);")
    role, password = f"app_{secrets.token_hex(3)}", secrets.token_hex(8)
    target_db.execute(
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}';"
        f"GRANT CREATE ON DATABASE {target_db.dbname} TO {role}; GRANT ALL ON SCHEMA public TO {role};"
    )
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01.sql").write_text("CREATE TABLE users (id int PRIMARY KEY);")
    op = FdwSetupOperator(
        task_id="setup",
        ddl_path=str(tmp_path / "ddl"),
        source_conn_id=airflow_conn("order_src", source_db),
        target_conn_id=airflow_conn("order_tgt", target_db, user=role, password=password),
    )
    with raises_step(SetupError) as caught:
        op.execute({})
    message = str(caught.value)
    assert "CREATE EXTENSION postgres_fdw" in message and role in message
    assert password not in message
    assert target_db.execute("SELECT count(*) FROM pg_class WHERE relname = 'users'") == [(0,)]
    target_db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
