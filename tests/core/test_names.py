"""Qualified table names as written in mapping files: exact, with optional double quotes."""

from __future__ import annotations

import pytest

from airflow_provider_confiture.core.db.text_table import box_table, display_width
from airflow_provider_confiture.core.names import QualifiedName, split_qualified


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("users", QualifiedName(None, "users")),
        ("legacy.old_users", QualifiedName("legacy", "old_users")),
        ("Legacy.Old Users", QualifiedName("Legacy", "Old Users")),
        ('"my.schema"."odd""name"', QualifiedName("my.schema", 'odd"name')),
        ("Robert'); DROP TABLE students;--", QualifiedName(None, "Robert'); DROP TABLE students;--")),
        ("ünïcødé.tåble", QualifiedName("ünïcødé", "tåble")),
    ],
)
def test_parse(text, expected):
    assert QualifiedName.parse(text) == expected


def test_default_schema_applies_only_when_missing():
    assert QualifiedName.parse("t", "public") == QualifiedName("public", "t")
    assert QualifiedName.parse("s.t", "public") == QualifiedName("s", "t")


@pytest.mark.parametrize("bad", ["", "a.b.c", "a.", ".a", '"unterminated', 'a"b', '"a"b'])
def test_malformed_names_are_rejected(bad):
    with pytest.raises(ValueError):
        QualifiedName.parse(bad)


def test_str_round_trips_through_parse():
    for name in [QualifiedName("s", "t"), QualifiedName("my.schema", 'odd"name'), QualifiedName(None, " x")]:
        assert QualifiedName.parse(str(name)) == name
    assert split_qualified('"a.b".c') == ["a.b", "c"]


def test_identifier_is_quoted_by_psycopg():
    ident = QualifiedName("s", 'we"ird').identifier().as_string(None)
    assert ident == '"s"."we""ird"'


def test_box_table_aligns_wide_characters():
    text = box_table(["Table", "Strategy"], [["users", "copy ⚡"], ["posts", "fdw"]])
    widths = {display_width(line) for line in text.splitlines()}
    assert len(widths) == 1, text
