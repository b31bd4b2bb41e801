"""Loading one table (core.load.load_table) on the two real clusters, with both drivers and strategies.

Each behaviour promised for a load is checked on real data: exact content (NULLs, unicode, jsonb,
numeric, timestamptz, bytea, arrays, a user-defined enum), binary vs text COPY, one transaction
(a failure leaves the previous content exactly as it was), no duplicates on re-run, identity/serial/
generated columns, user triggers, sequences, foreign keys across parallel loads, rebuilt indexes.
"""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_confiture.core import verify
from airflow_provider_confiture.core.errors import MigrationError, VerificationError
from airflow_provider_confiture.core.loading import foreign_keys, load
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning import ranges
from tests.support.engine import DRIVERS, RICH_DATA, RICH_DDL, link_up, plan_for, rows, table_rows

STRATEGIES = ("copy", "fdw")


@pytest.fixture
def rich(source_db, target_db):
    source_db.execute(RICH_DDL)
    source_db.execute(RICH_DATA)
    target_db.execute(RICH_DDL)
    return source_db, target_db


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("source_driver,target_driver", [(s, t) for s in DRIVERS for t in DRIVERS])
def test_load_exact_content_every_driver_pair(rich, connect, strategy, source_driver, target_driver):
    source_db, target_db = rich
    src, tgt = connect(source_db, source_driver), connect(target_db, target_driver)
    link_up(src, tgt, source_db)
    for table, expected_format in (("rich", "binary"), ("moods", "text")):
        plan = plan_for(src, tgt, table)
        result = load.load_table(src, tgt, plan, strategy)
        assert result.rows == len(table_rows(source_db, table)), table
        assert table_rows(target_db, table) == table_rows(source_db, table), table
        if strategy == "copy":
            # Binary only when every column has a built-in type; the enum travels as text.
            assert result.copy_format == expected_format, table
        check = verify.verify_table(src, tgt, plan)
        assert check.status == verify.MATCH and check.ok, check
    # NULLs really arrived as NULLs (not as the text 'NULL' or '\N')
    assert rows(
        target_db,
        "SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE j IS NULL), "
        "count(*) FILTER (WHERE b IS NULL), count(*) FILTER (WHERE a IS NULL) FROM rich",
    ) == [(42, 50, 75, 30)]
    assert rows(target_db, "SELECT count(*) FROM moods WHERE m IS NULL") == [(40,)]


def test_binary_copy_is_what_the_target_receives(rich, connect):
    """The COPY into the target really uses FORMAT binary (seen in pg_stat_activity while it runs)."""
    source_db, target_db = rich
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "rich")
    statements = load.statements_for(plan, "copy")
    assert "FORMAT binary" in statements[0] and "FORMAT binary" in statements[1]
    text_plan = plan_for(src, tgt, "moods")
    assert all("FORMAT text" in s for s in load.statements_for(text_plan, "copy"))
    # the source side runs COPY (SELECT ...) on the source table itself, not through the foreign table
    assert "old_schema" not in statements[0] and '"public"."rich"' in statements[0]


SIMPLE_DDL = """
CREATE TABLE things (id int PRIMARY KEY, v int NOT NULL, label text);
"""


def _simple(source_db, target_db, n=200):
    source_db.execute(SIMPLE_DDL)
    source_db.execute("INSERT INTO things SELECT g, g, 'src ' || g FROM generate_series(1, %s) g", (n,))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("driver", DRIVERS)
def test_failed_load_leaves_previous_content_exactly(source_db, target_db, connect, strategy, driver):
    """A constraint violation in the second half of the rows rolls the whole load back."""
    _simple(source_db, target_db)
    target_db.execute(
        "CREATE TABLE things (id int PRIMARY KEY, v int NOT NULL CONSTRAINT v_small CHECK (v < 150), label text);"
        "CREATE INDEX things_label_idx ON things (label);"
        "CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
        "CREATE TRIGGER things_keep BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION keep();"
        "INSERT INTO things SELECT g, g - 999, 'old ' || g FROM generate_series(1000, 1004) g;"
    )
    before = table_rows(target_db, "things")
    indexes_before = rows(
        target_db, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'things' ORDER BY 1"
    )
    src, tgt = connect(source_db, driver), connect(target_db, driver)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "things")
    with pytest.raises(MigrationError) as info:
        load.load_table(src, tgt, plan, strategy)
    message = str(info.value)
    assert "public.things" in message and "v_small" in message and "rolled back" in message
    assert table_rows(target_db, "things") == before
    assert rows(
        target_db, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'things' ORDER BY 1"
    ) == (indexes_before)
    assert rows(target_db, "SELECT tgenabled FROM pg_trigger WHERE tgname = 'things_keep'") == [("O",)]
    # the connections are usable afterwards: fixing the data and retrying succeeds
    source_db.execute("UPDATE things SET v = 1 WHERE v >= 150")
    result = load.load_table(src, tgt, plan, strategy)
    assert result.rows == 200 and len(table_rows(target_db, "things")) == 200


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rerun_replaces_content_without_duplicates(source_db, target_db, connect, strategy):
    _simple(source_db, target_db)
    target_db.execute(SIMPLE_DDL)
    target_db.execute("INSERT INTO things VALUES (5000, 1, 'stale target row')")
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "things")
    for _ in range(2):
        result = load.load_table(src, tgt, plan, strategy)
        assert result.rows == 200
        assert table_rows(target_db, "things") == table_rows(source_db, "things")


ITEMS_SOURCE = """
CREATE TABLE items (id bigint PRIMARY KEY, code int, price numeric, qty int, total numeric, label text);
INSERT INTO items SELECT g * 10, 100 + g, g + 0.25, g % 4, 0, 'item ' || g FROM generate_series(1, 60) g;
"""
ITEMS_TARGET = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code serial UNIQUE,
                    price numeric(10,2), qty int,
                    total numeric GENERATED ALWAYS AS (price * qty) STORED, label text);
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("driver", DRIVERS)
def test_identity_serial_generated_and_sequences_ahead(source_db, target_db, connect, strategy, driver):
    source_db.execute(ITEMS_SOURCE)
    target_db.execute(ITEMS_TARGET)
    src, tgt = connect(source_db, driver), connect(target_db, driver)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "items")
    assert [c.target for c in plan.columns] == ["id", "code", "price", "qty", "label"]
    assert "total" in plan.unmapped_source_columns  # the target computes it
    result = load.load_table(src, tgt, plan, strategy)
    assert result.rows == 60 and len(result.sequences) == 2
    assert rows(target_db, "SELECT min(id), max(id), min(code), max(code) FROM items") == [
        (10, 600, 101, 160)
    ]
    # the generated column is computed by the target (the source's stale 0 is not copied)
    assert rows(target_db, "SELECT total::text FROM items WHERE id = 70") == [("21.75",)]
    assert rows(target_db, "SELECT count(*) FROM items WHERE total IS DISTINCT FROM price * qty") == [(0,)]
    # the application's first insert after cutover: no duplicate key on either sequence
    new = rows(
        target_db, "INSERT INTO items (price, qty, label) VALUES (1, 2, 'app') RETURNING id, code, total"
    )
    assert new[0][0] > 600 and new[0][1] > 160 and str(new[0][2]) == "2.00"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_user_triggers_do_not_rewrite_rows_and_stay_enabled(source_db, target_db, connect, strategy):
    _simple(source_db, target_db)
    target_db.execute(SIMPLE_DDL)
    target_db.execute(
        "CREATE TABLE audit (n int);"
        "CREATE FUNCTION rewrite() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.label := 'rewritten'; RETURN NEW; END $$;"
        "CREATE FUNCTION audit_it() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NULL; END $$;"
        "CREATE TRIGGER a_rewrite BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION rewrite();"
        "CREATE TRIGGER b_audit AFTER INSERT ON things FOR EACH ROW EXECUTE FUNCTION audit_it();"
        "CREATE TRIGGER c_always BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION rewrite();"
        "ALTER TABLE things ENABLE ALWAYS TRIGGER c_always;"
        "CREATE TRIGGER d_off BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION rewrite();"
        "ALTER TABLE things DISABLE TRIGGER d_off;"
    )
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    load.load_table(src, tgt, plan_for(src, tgt, "things"), strategy)
    assert table_rows(target_db, "things") == table_rows(source_db, "things")
    assert rows(target_db, "SELECT count(*) FROM audit") == [(0,)]
    assert rows(target_db, "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1") == [
        ("a_rewrite", "O"),
        ("b_audit", "O"),
        ("c_always", "A"),
        ("confiture_guard", "A"),  # the target guard, installed by the load (core/db/target_guard.py)
        ("d_off", "D"),
    ]
    # still in force for the application
    assert rows(target_db, "INSERT INTO things VALUES (9999, 1, 'app') RETURNING label") == [("rewritten",)]
    assert rows(target_db, "SELECT count(*) FROM audit") == [(1,)]


INDEXED = """
CREATE TABLE things (id int CONSTRAINT things_pkey_custom PRIMARY KEY, v int NOT NULL, label text,
                     CONSTRAINT things_v_label_key UNIQUE (v, label));
CREATE INDEX things_label_lower ON things (lower(label));
CREATE INDEX things_partial ON things (v) WHERE v > 100;
CREATE INDEX things_desc ON things USING btree (v DESC NULLS LAST) INCLUDE (label);
CREATE INDEX things_hash ON things USING hash (label);
CREATE UNIQUE INDEX things_v_key ON things (v) WITH (fillfactor = 70);
ALTER TABLE things REPLICA IDENTITY USING INDEX things_v_key;
ALTER TABLE things CLUSTER ON things_pkey_custom;
COMMENT ON INDEX things_label_lower IS 'case-insensitive search';
COMMENT ON CONSTRAINT things_v_label_key ON things IS 'one label per value';
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_secondary_indexes_rebuilt_with_same_names_and_definitions(source_db, target_db, connect, strategy):
    _simple(source_db, target_db)
    target_db.execute(INDEXED)
    catalog_query = (
        "SELECT i.indexname, i.indexdef, x.indisvalid, x.indisready, x.indisreplident, x.indisclustered, "
        "obj_description(c.oid, 'pg_class') FROM pg_indexes i "
        "JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid "
        "WHERE i.tablename = 'things' ORDER BY 1"
    )
    before = rows(target_db, catalog_query)
    constraints_query = (
        "SELECT conname, pg_get_constraintdef(oid), obj_description(oid, 'pg_constraint') "
        "FROM pg_constraint WHERE conrelid = 'things'::regclass ORDER BY 1"
    )
    constraints = rows(target_db, constraints_query)
    assert sum(1 for r in before if r[4]) == 1 and sum(1 for r in before if r[5]) == 1
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    result = load.load_table(src, tgt, plan_for(src, tgt, "things"), strategy)
    assert result.set_aside["indexes"] == 7
    # same names, definitions, comments; still the replica identity (logical replication) and CLUSTER index
    assert rows(target_db, catalog_query) == before
    assert all(valid and ready for _, _, valid, ready, _, _, _ in before)
    assert rows(target_db, constraints_query) == constraints
    assert rows(target_db, "SELECT relreplident FROM pg_class WHERE oid = 'public.things'::regclass") == [
        ("i",)
    ]
    # and they are used and correct
    assert rows(target_db, "SELECT count(*) FROM things WHERE lower(label) = 'src 7'") == [(1,)]


FK_DDL = """
CREATE TABLE parents (id int PRIMARY KEY, name text);
CREATE TABLE children (id int PRIMARY KEY, parent_id int CONSTRAINT children_parent_fk REFERENCES parents (id),
                       note text);
"""


def _family(source_db, target_db, orphan: bool = False):
    source_db.execute(
        "CREATE TABLE parents (id int PRIMARY KEY, name text);"
        "CREATE TABLE children (id int PRIMARY KEY, parent_id int, note text);"
        "INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 100) g;"
        "INSERT INTO children SELECT g, 1 + g % 100, 'c' || g FROM generate_series(1, 300) g;"
    )
    if orphan:
        source_db.execute("UPDATE children SET parent_id = 999 WHERE id = 42")
    target_db.execute(FK_DDL)
    # a previous run left content in both tables (children referencing parents)
    target_db.execute("INSERT INTO parents VALUES (1, 'old'); INSERT INTO children VALUES (1, 1, 'old');")


def _targets(*names):
    return [QualifiedName("public", n) for n in names]


def test_foreign_keys_any_order_and_parallel_after_prepare(source_db, target_db, connect):
    _family(source_db, target_db)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    deferred = foreign_keys.defer_foreign_keys(tgt, _targets("parents", "children"))
    assert deferred == ["public.children.children_parent_fk"]
    # children first, then parents: the order does not matter
    for table, strategy in (("children", "copy"), ("parents", "fdw")):
        load.load_table(src, tgt, plan_for(src, tgt, table), strategy)

    # both at the same time, each on its own connections
    errors: list[BaseException] = []

    def run(table: str, strategy: str) -> None:
        try:
            s, t = connect(source_db), connect(target_db)
            load.load_table(s, t, plan_for(s, t, table), strategy)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=a) for a in (("children", "fdw"), ("parents", "copy"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert rows(target_db, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == [(0,)]
    report = foreign_keys.restore_foreign_keys(tgt, _targets("parents", "children"))
    assert report["restored"] == ["public.children.children_parent_fk"]
    assert rows(target_db, "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f'") == [
        ("children_parent_fk", True)
    ]
    assert table_rows(target_db, "children") == table_rows(source_db, "children")
    assert verify.foreign_key_problems(tgt, _targets("parents", "children")) == []


def test_load_without_prepare_sets_keys_aside_and_finalize_validates(source_db, target_db, connect):
    """Without the prepare step a load still succeeds: its foreign keys come back NOT VALID, and
    verify says so until finalize validates them."""
    _family(source_db, target_db)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    load.load_table(src, tgt, plan_for(src, tgt, "parents"), "copy")
    load.load_table(src, tgt, plan_for(src, tgt, "children"), "copy")
    assert rows(target_db, "SELECT convalidated FROM pg_constraint WHERE contype = 'f'") == [(False,)]
    problems = verify.foreign_key_problems(tgt, _targets("parents", "children"))
    assert len(problems) == 1 and "children_parent_fk" in problems[0] and "NOT VALID" in problems[0]
    foreign_keys.restore_foreign_keys(tgt, _targets("parents", "children"))
    assert rows(target_db, "SELECT convalidated FROM pg_constraint WHERE contype = 'f'") == [(True,)]


def test_finalize_names_constraint_and_offending_key(source_db, target_db, connect):
    _family(source_db, target_db, orphan=True)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    foreign_keys.defer_foreign_keys(tgt, _targets("parents", "children"))
    for table in ("children", "parents"):
        load.load_table(src, tgt, plan_for(src, tgt, table), "copy")
    with pytest.raises(VerificationError) as info:
        foreign_keys.restore_foreign_keys(tgt, _targets("parents", "children"))
    message = str(info.value)
    assert "children_parent_fk" in message and "(parent_id)=(999)" in message, message
    # the key is back in force for new rows, but not validated; verify reports it
    assert rows(target_db, "SELECT convalidated FROM pg_constraint WHERE contype = 'f'") == [(False,)]
    problems = verify.foreign_key_problems(tgt, _targets("parents", "children"))
    assert problems and "children_parent_fk" in problems[0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mapping_where_transform_and_rename_are_applied(source_db, target_db, connect, strategy):
    source_db.execute(
        "CREATE TABLE old_users (id int PRIMARY KEY, full_name text, email text, price_cents int, "
        "settings_json text, deleted_at timestamptz, legacy int);"
        "INSERT INTO old_users SELECT g, 'name ' || g, 'e' || g || '@x', g * 101, "
        "'{\"theme\": \"t' || g || '\"}', CASE WHEN g % 10 = 0 THEN now() END, g FROM generate_series(1, 100) g;"
    )
    target_db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, display_name text NOT NULL, email text, price numeric(12,2), "
        "metadata jsonb, status text NOT NULL DEFAULT 'active', deleted_at timestamptz);"
    )
    mapping = """
users:
  source_table: old_users
  target_table: users
  where: "deleted_at IS NULL"
  columns:
    full_name: display_name
    price:
      transform: "price_cents::numeric / 100"
    metadata:
      source_column: settings_json
      transform: "settings_json::jsonb"
"""
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, mapping)
    plan = plan_for(src, tgt, "users", mapping)
    assert plan.defaulted_target_columns == ["status"] and plan.unmapped_source_columns == ["legacy"]
    result = load.load_table(src, tgt, plan, strategy)
    assert result.rows == 90
    assert rows(
        target_db,
        "SELECT display_name, email, price::text, metadata->>'theme', status FROM users WHERE id = 7",
    ) == [("name 7", "e7@x", "7.07", "t7", "active")]
    assert rows(target_db, "SELECT count(*) FROM users WHERE id % 10 = 0") == [(0,)]
    assert verify.verify_table(src, tgt, plan).ok


def test_source_is_read_in_one_snapshot_while_it_is_written(source_db, target_db, connect):
    """Rows written to the source during a copy never produce a torn result: every pair of rows
    committed together is either complete or absent, and the count matches the loaded rows."""
    source_db.execute(
        "CREATE TABLE pairs (id bigserial PRIMARY KEY, pair int NOT NULL, side int NOT NULL, pad text);"
        "INSERT INTO pairs (pair, side, pad) SELECT g / 2, g % 2, repeat('x', 50) FROM generate_series(0, 19999) g;"
    )
    target_db.execute(
        "CREATE TABLE pairs (id bigint PRIMARY KEY, pair int NOT NULL, side int NOT NULL, pad text);"
    )
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "pairs")
    stop, writing = threading.Event(), threading.Event()
    written = []

    def writer() -> None:
        with source_db.connect(autocommit=False) as conn:
            n = 100000
            while not stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO pairs (pair, side) VALUES (%s, 0), (%s, 1)", (n, n))
                conn.commit()
                written.append(n)
                writing.set()
                n += 1

    th = threading.Thread(target=writer)
    th.start()
    assert writing.wait(30), "the writer never ran"
    try:
        result = load.load_table(src, tgt, plan, "copy")
    finally:
        stop.set()
        th.join(30)
    assert written, "the writer never ran"
    assert rows(
        target_db, "SELECT count(*) FROM (SELECT pair FROM pairs GROUP BY pair HAVING count(*) <> 2) x"
    ) == [(0,)]
    assert rows(target_db, "SELECT count(*) FROM pairs")[0][0] == result.rows >= 20000


def test_key_ranges_of_one_table_load_in_parallel(source_db, target_db, connect):
    """The parts of a split table are separate tasks that run at the same time: they must not wait for
    each other, while a second run of the same part is still kept out (with a message naming it)."""
    source_db.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v int);"
        "INSERT INTO big SELECT g, g FROM generate_series(1, 1000) g;"
    )
    target_db.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v int);"
        "INSERT INTO big SELECT g, -g FROM generate_series(1, 1000) g;"
    )  # an earlier load
    # the first part's copy is slow (3 s on its first row)
    mapping = (
        'big:\n  columns:\n    v:\n      transform: "v + (SELECT 0 FROM pg_sleep('
        'CASE WHEN id = 1 THEN 3 ELSE 0 END))"\n'
    )
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, mapping)
    plan = plan_for(src, tgt, "big", mapping)
    parts = ranges.compute_ranges(src, plan, 2)
    assert [p.label for p in parts] == ["[1/2]", "[2/2]"]
    results: dict[str, object] = {}

    def run(name: str, part, delay: float) -> None:
        time.sleep(delay)
        s, t = connect(source_db), connect(target_db)
        try:
            results[name] = load.load_table(
                s, t, plan, "copy", key_range=part, options=load.LoadOptions(lock_timeout="1s")
            )
        except Exception as exc:  # noqa: BLE001 - checked below
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=a)
        for a in (("first", parts[0], 0), ("second", parts[1], 0), ("first again", parts[0], 0))
    ]
    threads[0].start()
    deadline = time.monotonic() + 30  # the others start once the first part holds its lock
    while rows(target_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") != [(1,)]:
        assert time.monotonic() < deadline, "the first part never started"
        time.sleep(0.02)
    for th in threads[1:]:
        th.start()
    for th in threads:
        th.join(60)
    assert isinstance(results["first"], load.LoadResult) and results["first"].rows == 500
    assert isinstance(results["second"], load.LoadResult) and results["second"].rows == 500
    assert results["second"].seconds < 2, "the second part waited for the first one"
    assert isinstance(results["first again"], MigrationError)
    assert "public.big [1/2]: another run of this migration is loading it" in str(results["first again"])
    assert table_rows(target_db, "big") == table_rows(source_db, "big")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_partitioned_target_keeps_valid_indexes_on_every_partition(source_db, target_db, connect, strategy):
    source_db.execute(
        "CREATE TABLE events (id int, kind int, v text, PRIMARY KEY (id, kind));"
        "INSERT INTO events SELECT g, g % 4, 'v' || g FROM generate_series(1, 400) g;"
    )
    target_db.execute(
        "CREATE TABLE events (id int, kind int, v text, PRIMARY KEY (id, kind)) PARTITION BY LIST (kind);"
        "CREATE TABLE events_low PARTITION OF events FOR VALUES IN (0, 1);"
        "CREATE TABLE events_high PARTITION OF events FOR VALUES IN (2, 3);"
        "CREATE INDEX events_v ON events (v);"
        "CREATE INDEX events_high_custom ON events_high (kind, v);"
    )
    query = (
        "SELECT c.relname, x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1"
    )
    before = rows(target_db, query)
    assert len(before) == 7 and all(valid for _, valid, _ in before)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "events")
    for _ in range(2):
        assert load.load_table(src, tgt, plan, strategy).rows == 400
        assert rows(target_db, query) == before
    assert rows(target_db, "SELECT count(*) FROM events_low") == [(200,)]
    assert verify.verify_table(src, tgt, plan).ok


def test_every_sequence_feeding_a_column_ends_ahead(source_db, target_db, connect):
    """Not only serial/identity: a DEFAULT nextval() of a sequence the table does not own (hand-written
    DDL), shared by two tables, must end ahead of both; a descending identity below its data; and a
    sequence is never moved back."""
    source_db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, code text);"
        "INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 300) g;"
        "CREATE TABLE refunds (id int PRIMARY KEY, code text);"
        "INSERT INTO refunds SELECT g, 'r' || g FROM generate_series(1, 40) g;"
        "CREATE TABLE countdown (id int PRIMARY KEY); INSERT INTO countdown SELECT -g FROM generate_series(1, 20) g;"
        "CREATE TABLE sentinel (id int PRIMARY KEY); INSERT INTO sentinel VALUES (0), (-1);"
    )
    target_db.execute(
        "CREATE SEQUENCE shared_seq;"
        "CREATE TABLE orders (id int PRIMARY KEY DEFAULT nextval('shared_seq'), "
        "                     code text DEFAULT 'INV-' || nextval('shared_seq'));"
        "CREATE TABLE refunds (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), code text);"
        "CREATE TABLE countdown (id int GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY -1 MAXVALUE -1 START -1) "
        "                        PRIMARY KEY);"
        "CREATE TABLE sentinel (id serial PRIMARY KEY);"
    )
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    for table in ("orders", "refunds", "countdown", "sentinel"):  # refunds after orders: must not go back
        plan = plan_for(src, tgt, table)
        result = load.load_table(src, tgt, plan, "copy")
        assert result.sequences, table
        assert verify.verify_table(src, tgt, plan).ok, table
    assert rows(target_db, "INSERT INTO orders DEFAULT VALUES RETURNING id") == [(301,)]
    assert rows(target_db, "INSERT INTO refunds (code) VALUES ('app') RETURNING id") == [(303,)]
    assert rows(target_db, "INSERT INTO countdown DEFAULT VALUES RETURNING id") == [(-21,)]
    assert rows(target_db, "INSERT INTO sentinel DEFAULT VALUES RETURNING id") == [(1,)]
    # verify notices a sequence that is not ahead, also when it is not owned by the table
    target_db.execute("SELECT setval('shared_seq', 5)")
    check = verify.verify_table(src, tgt, plan_for(src, tgt, "orders"))
    assert not check.ok and check.sequence_problems == [
        "public.shared_seq next value 6 is not beyond id = 301"
    ]
