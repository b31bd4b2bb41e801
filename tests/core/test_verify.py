"""Verify (core.verify) against real data: it must catch one changed value, a missing row and an extra
row, pass on equal data of every awkward type, tell drift from corruption, and report sequences
behind their data and foreign keys that are missing or NOT VALID."""

from __future__ import annotations

import pytest

from airflow_provider_confiture.core import verify
from airflow_provider_confiture.core.loading import foreign_keys, load
from airflow_provider_confiture.core.names import QualifiedName
from tests.support.engine import (
    RICH_DATA,
    RICH_DDL,
    as_the_migration,
    link_up,
    plan_for,
    rows,
    wait_for_stats,
)


@pytest.fixture
def loaded(source_db, target_db, connect):
    """rich/moods loaded into the target; returns (src, tgt, {table: plan})."""
    source_db.execute(RICH_DDL)
    source_db.execute(RICH_DATA)
    target_db.execute(RICH_DDL)
    wait_for_stats(source_db, "rich", 300)
    wait_for_stats(source_db, "moods", 200)
    src, tgt = connect(source_db, "pg3"), connect(target_db, "pg2")
    link_up(src, tgt, source_db)
    plans = {t: plan_for(src, tgt, t) for t in ("rich", "moods")}
    for plan in plans.values():
        load.load_table(src, tgt, plan, "copy")
    return src, tgt, plans


def test_equal_data_of_every_type_passes(loaded):
    src, tgt, plans = loaded
    for plan in plans.values():
        for via_foreign_table in (False, True):
            check = verify.verify_table(src, tgt, plan, via_foreign_table=via_foreign_table)
            assert check.status == verify.MATCH and check.ok, check
            assert check.source_rows == check.target_rows > 0
            assert check.source_checksum == check.target_checksum
        count_only = verify.verify_table(src, tgt, plan, checksum=False)
        assert count_only.ok and count_only.source_checksum is None
    text = verify.render_checks([verify.verify_table(src, tgt, plans["rich"])])
    assert "rich" in text and "equal" in text and "match" in text and "✓" in text


DEFECTS = {
    "one changed text value": ("UPDATE rich SET t = t || 'x' WHERE id = 150", "content differs"),
    "NULL became empty string": ("UPDATE rich SET t = '' WHERE id = 7", "content differs"),
    "NULL array element became text": ("UPDATE rich SET ta[2] = 'NULL' WHERE id = 3", "content differs"),
    "nested jsonb value": (
        "UPDATE rich SET j = jsonb_set(j, '{nested,x}', '0') WHERE id = 11",
        "content differs",
    ),
    "numeric last digit": ("UPDATE rich SET n = n + 0.0001 WHERE id = 13", "content differs"),
    "timestamptz microsecond": (
        "UPDATE rich SET ts = ts + interval '1 microsecond' WHERE id = 17",
        "content differs",
    ),
    "one bytea byte": ("UPDATE rich SET b = set_byte(b, 0, 255) WHERE id = 19", "content differs"),
    "values swapped between rows": (
        "UPDATE rich SET t = CASE id WHEN 1 THEN (SELECT t FROM rich WHERE id = 2) "
        "ELSE (SELECT t FROM rich WHERE id = 1) END WHERE id IN (1, 2)",
        "content differs",
    ),
    "missing row": ("DELETE FROM rich WHERE id = 200", "row count differs: source 300, target 299"),
    "extra row": (
        "INSERT INTO rich (id, t) VALUES (1000, 'extra')",
        "row count differs: source 300, target 301",
    ),
    "missing and extra row": ("UPDATE rich SET id = 1000 WHERE id = 200", "content differs"),
    "enum value": ("UPDATE moods SET m = 'happy' WHERE id = 1", "content differs"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_any_difference_is_caught(loaded, target_db, defect):
    src, tgt, plans = loaded
    statement, expected = DEFECTS[defect]
    as_the_migration(target_db, statement)  # a wrong load; the application's writes: test_target_guard
    table = "moods" if "moods" in statement else "rich"
    check = verify.verify_table(src, tgt, plans[table])
    assert check.status == verify.MISMATCH and not check.ok, check
    assert expected in check.detail and "the source shows no writes since the load" in check.detail
    assert "✗" in verify.render_checks([check]) and "DIFFERS" in verify.render_checks([check])
    other = "rich" if table == "moods" else "moods"
    assert verify.verify_table(src, tgt, plans[other]).ok
    # through the foreign table too
    assert not verify.verify_table(src, tgt, plans[table], via_foreign_table=True).ok


def test_source_writes_after_the_load_are_reported_as_drift(loaded, source_db):
    src, tgt, plans = loaded
    source_db.execute("INSERT INTO rich (id, t) VALUES (5000, 'new on the source')")
    wait_for_stats(source_db, "rich", 301)
    check = verify.verify_table(src, tgt, plans["rich"])
    assert check.status == verify.DRIFT and not check.ok
    assert "drift: the source received 1 inserts, 0 updates and 0 deletes" in check.detail
    # re-running the table catches up
    load.load_table(src, tgt, plans["rich"], "fdw")
    assert verify.verify_table(src, tgt, plans["rich"]).ok


def test_sequence_behind_its_data_is_reported(source_db, target_db, connect):
    ddl = "CREATE TABLE seqd (id serial PRIMARY KEY, v text);"
    source_db.execute(ddl)
    source_db.execute("INSERT INTO seqd (v) SELECT 'v' || g FROM generate_series(1, 25) g")
    target_db.execute(ddl)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    plan = plan_for(src, tgt, "seqd")
    load.load_table(src, tgt, plan, "copy")
    assert verify.verify_table(src, tgt, plan).ok
    target_db.execute("SELECT setval('seqd_id_seq', 10)")
    check = verify.verify_table(src, tgt, plan)
    assert check.status == verify.MATCH and not check.ok and not check.sequences_ok
    assert check.sequence_problems == ["public.seqd_id_seq next value 11 is not beyond id = 25"]
    assert "sequence behind" in verify.render_checks([check])


def test_missing_and_not_valid_foreign_keys_are_reported(source_db, target_db, connect):
    ddl = (
        "CREATE TABLE parents (id int PRIMARY KEY);"
        "CREATE TABLE children (id int PRIMARY KEY, parent_id int CONSTRAINT kid_fk REFERENCES parents);"
    )
    source_db.execute(ddl)
    source_db.execute("INSERT INTO parents VALUES (1); INSERT INTO children VALUES (1, 1);")
    target_db.execute(ddl)
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db)
    tables = [QualifiedName("public", "parents"), QualifiedName("public", "children")]
    assert verify.foreign_key_problems(tgt, tables) == []
    foreign_keys.defer_foreign_keys(tgt, tables)
    assert verify.foreign_key_problems(tgt, tables) == [
        "public.children.kid_fk is still deferred (not restored): run finalize"
    ]
    foreign_keys.restore_foreign_keys(tgt, tables)
    assert verify.foreign_key_problems(tgt, tables) == []
    target_db.execute(
        "ALTER TABLE children DROP CONSTRAINT kid_fk;"
        "ALTER TABLE children ADD CONSTRAINT kid_fk FOREIGN KEY (parent_id) REFERENCES parents NOT VALID"
    )
    assert verify.foreign_key_problems(tgt, tables) == [
        "public.children.kid_fk is NOT VALID (never checked): run finalize"
    ]
    assert rows(target_db, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == [(1,)]
