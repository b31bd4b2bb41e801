"""Resolving the mapping against the two real catalogs, checking it with EXPLAIN, and analyze.

Covers both mapping forms end to end (they load and migrate correctly), the column rules (same-name
auto-mapping, explicit overrides, defaults, unmapped source columns), skipped tables, schema-qualified
source tables, every "bad input" error before any data moves, and analyze's strategy choice, overrides,
rendered table and load units.
"""

from __future__ import annotations

import pytest

from airflow_provider_confiture.core import planning, verify
from airflow_provider_confiture.core.errors import MappingError, PlanError
from airflow_provider_confiture.core.loading import load
from airflow_provider_confiture.core.planning.mapping import parse_mapping_text
from airflow_provider_confiture.core.planning.plan import DEFAULT_COPY_THRESHOLD_ROWS, PlanOptions
from airflow_provider_confiture.core.planning.validate import validate_table
from tests.support.engine import link_up, plan_for, plans, rows, table_rows

SOURCE = """
CREATE TABLE old_users (id int PRIMARY KEY, full_name text, email text, contact_email text, price_cents int,
                        settings_json text, deleted_at timestamptz, legacy_flag bool);
INSERT INTO old_users
SELECT g, 'name ' || g, 'e' || g || '@old', 'c' || g || '@new', g * 101, '{"theme": "t' || g || '"}',
       CASE WHEN g % 10 = 0 THEN '2020-01-01'::timestamptz END, g % 2 = 0
FROM generate_series(1, 100) g;
CREATE TABLE tb_user (id int PRIMARY KEY, username text NOT NULL, age int);
INSERT INTO tb_user SELECT g, 'user' || g, 20 + g FROM generate_series(1, 50) g;
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 30) g;
"""

TARGET = """
CREATE TABLE users (id int PRIMARY KEY, display_name text NOT NULL, email text, price numeric(12,2),
                    metadata jsonb, status text NOT NULL DEFAULT 'active', created_at timestamptz DEFAULT now());
CREATE TABLE tb_user (id int PRIMARY KEY, login_name text NOT NULL, age int);
CREATE TABLE tags (id int PRIMARY KEY, name text);
CREATE TABLE audit_log (id int PRIMARY KEY, what text);
"""

MAPPING = """
users:
  source_table: old_users
  target_table: users
  strategy: copy
  where: "deleted_at IS NULL"
  columns:
    full_name: display_name
    contact_email: email
    price:
      transform: "price_cents::numeric / 100"
    metadata:
      source_column: settings_json
      transform: "settings_json::jsonb"
tb_user:
  username: login_name
"""


@pytest.fixture
def shop(source_db, target_db, connect):
    source_db.execute(SOURCE)
    source_db.execute("ANALYZE")
    target_db.execute(TARGET)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, MAPPING)
    return src, tgt


def test_both_mapping_forms_resolve_against_the_catalogs(shop):
    src, tgt = shop
    result = plans(src, tgt, MAPPING)
    by_target = {p.target.name: p for p in result.plans}
    assert sorted(by_target) == ["tags", "tb_user", "users"]
    assert result.skipped == [
        ("audit_log", "no source table public.audit_log: add a mapping entry with 'source_table'")
    ]

    users = by_target["users"]
    assert str(users.source) == "public.old_users" and users.where == "deleted_at IS NULL"
    assert users.requested_strategy == "copy"
    cols = {c.target: (c.source, c.transform) for c in users.columns}
    assert cols == {
        "id": ("id", None),  # same name on both sides: mapped automatically
        "display_name": ("full_name", None),
        "email": ("contact_email", None),  # explicit entry overrides the same-name column
        "price": (None, "price_cents::numeric / 100"),
        "metadata": (None, "settings_json::jsonb"),
    }
    assert users.defaulted_target_columns == ["status", "created_at"]
    # email (overridden), legacy_flag are not copied; the transform/where columns count as used
    assert users.unmapped_source_columns == ["email", "legacy_flag"]
    assert any("source columns not copied: email, legacy_flag" in w for w in users.warnings)

    tb_user = by_target["tb_user"]  # short form: the entry is its columns section
    assert str(tb_user.source) == "public.tb_user"
    assert {c.target: c.source for c in tb_user.columns} == {
        "id": "id",
        "login_name": "username",
        "age": "age",
    }
    assert by_target["tags"].key == "tags" and {c.target for c in by_target["tags"].columns} == {"id", "name"}


@pytest.mark.parametrize("strategy", ["copy", "fdw"])
def test_both_mapping_forms_migrate_correctly(shop, source_db, target_db, strategy):
    src, tgt = shop
    for table in ("users", "tb_user", "tags"):
        plan = plan_for(src, tgt, table, MAPPING)
        load.load_table(src, tgt, plan, strategy)
        assert verify.verify_table(src, tgt, plan).ok, table
    assert rows(
        target_db,
        "SELECT display_name, email, price::text, metadata, status, created_at IS NOT NULL FROM users WHERE id = 7",
    ) == [("name 7", "c7@new", "7.07", {"theme": "t7"}, "active", True)]
    assert rows(target_db, "SELECT count(*), count(*) FILTER (WHERE id % 10 = 0) FROM users") == [(90, 0)]
    assert rows(target_db, "SELECT login_name, age FROM tb_user WHERE id = 3") == [("user3", 23)]
    assert table_rows(target_db, "tags") == table_rows(source_db, "tags")
    assert rows(target_db, "SELECT count(*) FROM audit_log") == [(0,)]


def test_analyze_reports_unmapped_columns_and_skipped_tables(shop):
    src, tgt = shop
    analysis = planning.analyze(src, tgt, parse_mapping_text(MAPPING, "mapping.yaml"), PlanOptions())
    users = next(t for t in analysis.tables if t.label == "users")
    assert any("email, legacy_flag" in w for w in users.warnings)
    assert any("left to their default: status, created_at" in w for w in users.warnings)
    assert [s[0] for s in analysis.skipped] == ["audit_log"]
    text = analysis.render()
    assert "audit_log: skipped" in text and "users: source columns not copied: email, legacy_flag" in text
    assert {u["table"] for u in analysis.units()} == {"users", "tb_user", "tags"}  # audit_log: no task


def test_schema_qualified_source_gets_its_own_foreign_schema(source_db, target_db, connect):
    source_db.execute(
        "CREATE SCHEMA legacy;"
        "CREATE TABLE legacy.old_users (id int PRIMARY KEY, full_name text);"
        "INSERT INTO legacy.old_users SELECT g, 'n' || g FROM generate_series(1, 40) g;"
        "CREATE TABLE old_users (id int PRIMARY KEY, full_name text);"  # same name in public: not used
        "INSERT INTO old_users VALUES (1, 'WRONG public table');"
        "CREATE TABLE tags (id int PRIMARY KEY, name text); INSERT INTO tags VALUES (1, 'a');"
    )
    target_db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, display_name text);"
        "CREATE TABLE tags (id int PRIMARY KEY, name text);"
    )
    mapping = "users:\n  source_table: legacy.old_users\n  columns:\n    full_name: display_name\n"
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, mapping)
    foreign = rows(
        target_db,
        "SELECT n.nspname, c.relname FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2",
    )
    assert foreign == [("old_schema", "tags"), ("old_schema_legacy", "old_users")]
    plan = plan_for(src, tgt, "users", mapping)
    assert str(plan.source) == "legacy.old_users" and str(plan.foreign) == "old_schema_legacy.old_users"
    for strategy in ("fdw", "copy"):  # the second load replaces the first's rows
        assert load.load_table(src, tgt, plan, strategy).rows == 40
        assert rows(target_db, "SELECT count(*), min(display_name) FROM users") == [(40, "n1")]
        assert verify.verify_table(src, tgt, plan).ok
        assert verify.verify_table(src, tgt, plan, via_foreign_table=True).ok


# ------------------------------------------------------------------------------------------ errors
ERRORS = {
    "unknown source table": (
        "users:\n  source_table: old_userz\n",
        PlanError,
        ["entry 'users'", "source table public.old_userz does not exist", "did you mean 'old_users'"],
    ),
    "unknown target table": (
        "userz:\n  source_table: old_users\n",
        PlanError,
        ["entry 'userz'", "target table public.userz does not exist"],
    ),
    "unknown source column": (
        "users:\n  source_table: old_users\n  columns:\n    full_nam: display_name\n",
        PlanError,
        ["entry 'users'", "column 'full_nam'", "public.old_users has no column", "'full_name'"],
    ),
    "unknown target column": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_nam\n",
        PlanError,
        ["entry 'users'", "column 'display_nam'", "public.users has no column", "'display_name'"],
    ),
    "transform does not parse": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n"
        '    price:\n      transform: "price_cents::numeric /"\n',
        PlanError,
        ["entry 'users'", "column 'price'", "price_cents::numeric /", "syntax error"],
    ),
    "transform references a missing column": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n"
        '    price:\n      transform: "price_cent / 100"\n',
        PlanError,
        ["entry 'users'", "column 'price'", "price_cent", "does not exist"],
    ),
    "transform type cannot be assigned": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n"
        "    age:\n      transform: \"full_name || '!'\"\n",
        PlanError,
        ["entry 'users'", "column 'age'", "public.users.age (integer)", "type text"],
    ),
    "NOT NULL target column without source or default": (
        "users:\n  source_table: old_users\n",
        PlanError,
        ["entry 'users'", "column 'display_name'", "NOT NULL", "no default"],
    ),
    "invalid strategy": (
        "users:\n  source_table: old_users\n  strategy: fastest\n  columns:\n    full_name: display_name\n",
        MappingError,
        ["entry 'users'", "strategy 'fastest'", "auto, fdw, copy"],
    ),
    "bad where filter": (
        'users:\n  source_table: old_users\n  where: "deleted_att IS NULL"\n  columns:\n    full_name: display_name\n',
        PlanError,
        ["entry 'users'", "'where'", "deleted_att"],
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_mapping_fails_before_any_data_moves(source_db, target_db, connect, case):
    text, error, fragments = ERRORS[case]
    source_db.execute(
        "CREATE TABLE old_users (id int PRIMARY KEY, full_name text, price_cents int, deleted_at timestamptz);"
        "INSERT INTO old_users SELECT g, 'n' || g, g, NULL FROM generate_series(1, 20) g;"
    )
    target_db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, display_name text NOT NULL, price numeric(12,2), age int);"
        "INSERT INTO users VALUES (999, 'existing row', 1, 1);"
    )
    src, tgt = connect(source_db), connect(target_db)
    good = "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n"
    link_up(src, tgt, source_db, good)
    with pytest.raises(error) as info:
        mapping = parse_mapping_text(text, "mapping.yaml")
        planning.analyze(src, tgt, mapping, PlanOptions())
    message = str(info.value)
    assert "mapping.yaml" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert rows(target_db, "SELECT id, display_name FROM users") == [(999, "existing row")]


def test_invalid_global_strategy_is_refused():
    with pytest.raises(PlanError, match="strategy 'turbo' is not valid: use one of auto, fdw, copy"):
        PlanOptions(strategy="turbo")


def test_validate_requires_setup_first(source_db, target_db, connect):
    source_db.execute("CREATE TABLE tags (id int PRIMARY KEY)")
    target_db.execute("CREATE TABLE tags (id int PRIMARY KEY)")
    src, tgt = connect(source_db), connect(target_db)
    plan = plan_for(src, tgt, "tags")
    with pytest.raises(
        PlanError, match="foreign table old_schema.tags is missing on the target: run the setup"
    ):
        validate_table(src, tgt, plan)


def test_transform_valid_only_on_target_uses_fdw(source_db, target_db, connect):
    """A transform calling a function that exists only on the target cannot run in the source's COPY:
    auto picks FDW for it, and an explicit 'copy' is refused before any data moves."""
    source_db.execute(
        "CREATE TABLE tags (id int PRIMARY KEY, name text);"
        "INSERT INTO tags SELECT g, 't' || g FROM generate_series(1, 10) g;"
    )
    target_db.execute(
        "CREATE TABLE tags (id int PRIMARY KEY, name text);"
        "CREATE FUNCTION shout(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper($1) $$;"
    )
    mapping = 'tags:\n  columns:\n    name:\n      transform: "shout(name)"\n'
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, mapping)
    analysis = planning.analyze(src, tgt, parse_mapping_text(mapping), PlanOptions(copy_threshold_rows=0))
    assert analysis.tables[0].strategy == "fdw"
    assert any("only valid on the target" in w for w in analysis.tables[0].warnings)
    plan = plan_for(src, tgt, "tags", mapping)
    load.load_table(src, tgt, plan, "fdw")
    assert rows(target_db, "SELECT name FROM tags WHERE id = 3") == [("T3",)]
    assert verify.verify_table(src, tgt, plan, via_foreign_table=True).ok
    with pytest.raises(PlanError, match="strategy 'copy' runs the mapping's expressions on the source"):
        planning.analyze(src, tgt, parse_mapping_text(mapping), PlanOptions(strategy="copy"))


# ------------------------------------------------------------------------------------------ analyze
@pytest.fixture
def sized(source_db, target_db, connect):
    source_db.execute(
        "CREATE TABLE small (id int PRIMARY KEY, v text); INSERT INTO small SELECT g, 'v' FROM generate_series(1, 99) g;"
        "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, 'v' FROM generate_series(1, 100) g;"
        "ANALYZE small; ANALYZE big;"
    )
    target_db.execute(
        "CREATE TABLE small (id int PRIMARY KEY, v text); CREATE TABLE big (id int PRIMARY KEY, v text);"
    )
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    return src, tgt


def _strategies(analysis):
    return {t.label: t.strategy for t in analysis.tables}


def test_auto_strategy_uses_copy_from_the_threshold_up(sized):
    src, tgt = sized
    analysis = planning.analyze(
        src, tgt, parse_mapping_text("big:\nsmall:\n"), PlanOptions(copy_threshold_rows=100)
    )
    assert _strategies(analysis) == {"big": "copy", "small": "fdw"}
    assert {t.label: t.rows for t in analysis.tables} == {"big": 100, "small": 99}
    assert DEFAULT_COPY_THRESHOLD_ROWS == PlanOptions().copy_threshold_rows
    # default threshold: both small
    assert set(
        _strategies(planning.analyze(src, tgt, parse_mapping_text("big:\n"), PlanOptions())).values()
    ) == {"fdw"}


def test_per_table_and_global_strategy_overrides(sized):
    src, tgt = sized
    mapping = parse_mapping_text("big:\n  strategy: fdw\nsmall:\n  strategy: copy\n")
    analysis = planning.analyze(src, tgt, mapping, PlanOptions(copy_threshold_rows=100))
    assert _strategies(analysis) == {"big": "fdw", "small": "copy"}
    forced = planning.analyze(src, tgt, mapping, PlanOptions(strategy="copy", copy_threshold_rows=100))
    assert _strategies(forced) == {"big": "copy", "small": "copy"}
    big = next(t for t in forced.tables if t.label == "big")
    assert any("global strategy 'copy' overrides the entry's 'fdw'" in w for w in big.warnings)
    assert set(_strategies(planning.analyze(src, tgt, mapping, PlanOptions(strategy="fdw"))).values()) == {
        "fdw"
    }


def test_analysis_table_and_units(sized):
    src, tgt = sized
    analysis = planning.analyze(
        src,
        tgt,
        parse_mapping_text("big:\nsmall:\n"),
        PlanOptions(copy_threshold_rows=100),
        split_threshold_rows=100,
        rows_per_part=40,
    )
    text = analysis.render()
    lines = text.splitlines()
    assert lines[0] == "Table Analysis:"
    assert lines[1].startswith("┌") and lines[-1].startswith("└")
    header = [c.strip() for c in lines[2].strip("│").split("│")]
    assert header == ["Table", "Rows", "Size", "Strategy", "Tasks", "Est. Time", "Target writes"]
    body = {
        line.split("│")[1].strip(): [c.strip() for c in line.strip("│").split("│")] for line in lines[4:-1]
    }
    assert body["big"][1] == "100" and body["big"][3] == "copy ⚡" and body["big"][4] == "3 parts"
    assert body["small"][1] == "99" and body["small"][3] == "fdw" and body["small"][4] == "1"
    assert body["small"][5].endswith("s")
    assert body["big"][6] == body["small"][6] == "none"  # nothing but the migration wrote to them

    data = analysis.to_dict()
    units = data["units"]
    assert [u["label"] for u in units] == ["big [1/3]", "big [2/3]", "big [3/3]", "small"]
    assert all(u["table"] == "big" and u["strategy"] == "copy" for u in units[:3])
    assert units[3] == {"table": "small", "label": "small", "strategy": "fdw", "key_range": None}
    ranges = [(u["key_range"]["lower"], u["key_range"]["upper"]) for u in units[:3]]
    assert ranges == [(None, 35), (35, 69), (69, None)]
    small = next(t for t in data["tables"] if t["label"] == "small")
    assert small["rows"] == 99 and small["estimated_seconds"] > 0 and small["copy_format"] == "binary"
    import json

    json.dumps(data)  # an XCom must be JSON-serialisable
