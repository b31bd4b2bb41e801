"""The mapping file model and its error messages (pure: no database, no Airflow)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from airflow_provider_confiture.core.errors import MappingError
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning.mapping import (
    ENTRY_KEYS,
    STRATEGIES,
    ColumnRule,
    Mapping,
    TableMapping,
    load_mapping,
    one_table_mapping,
    parse_column_string,
    parse_mapping,
    parse_mapping_text,
)

REFERENCE = """\
users:                       # entry key; source_table/target_table default to the key
  source_table: old_users    # may be schema-qualified: legacy.old_users
  target_table: users
  strategy: copy             # optional: auto | fdw | copy
  where: "deleted_at IS NULL"
  columns:
    full_name: display_name  # string value: SOURCE column -> TARGET column (rename)
    price:                   # dict value: the KEY is the TARGET column, computed by a SQL expression
      transform: "price_cents::numeric / 100"
    metadata:
      source_column: settings_json
      transform: "settings_json::jsonb"
    legacy_flag: null        # null value: source column deliberately not copied (target None)
tb_user:                     # short form: the entry is the columns section itself
  username: login_name
  display_name:
    transform: "COALESCE(display_name, name)"
empty_one: {}
null_one:
"""


def q(text: str) -> QualifiedName:
    return QualifiedName.parse(text)


def load(text: str, origin: str = "column_mapping.yaml") -> Mapping:
    return parse_mapping_text(textwrap.dedent(text), origin)


def error_of(text: str, origin: str = "column_mapping.yaml") -> str:
    with pytest.raises(MappingError) as info:
        load(text, origin)
    return str(info.value)


# ----------------------------------------------------------------------------------------- model


def test_reference_file_loads_into_the_expected_model():
    m = load(REFERENCE)
    assert m.origin == "column_mapping.yaml"
    assert [t.key for t in m.tables] == ["users", "tb_user", "empty_one", "null_one"]

    users = m.entry("users")
    assert users == TableMapping(
        key="users",
        source_table=QualifiedName(None, "old_users"),
        target_table=QualifiedName(None, "users"),
        columns=(
            ColumnRule(target="display_name", source="full_name", transform=None),
            ColumnRule(target="price", source=None, transform="price_cents::numeric / 100"),
            ColumnRule(target="metadata", source="settings_json", transform="settings_json::jsonb"),
            ColumnRule(target=None, source="legacy_flag", transform=None),
        ),
        strategy="copy",
        where="deleted_at IS NULL",
        split_by=None,
    )
    assert users.rule_for_target("display_name").source == "full_name"
    assert users.rule_for_target("full_name") is None  # lookups are by TARGET column
    assert users.rule_for_target("price").expression_is_source_column() is False
    assert users.rule_for_target("display_name").expression_is_source_column() is True
    assert users.ignored_sources() == frozenset({"legacy_flag"})

    tb_user = m.entry("tb_user")
    assert tb_user.source_table == tb_user.target_table == QualifiedName(None, "tb_user")
    assert tb_user.columns == (
        ColumnRule("login_name", "username", None),
        ColumnRule("display_name", None, "COALESCE(display_name, name)"),
    )
    assert tb_user.strategy is None and tb_user.where is None
    assert tb_user.ignored_sources() == frozenset()

    for key in ("empty_one", "null_one"):
        entry = m.entry(key)
        assert entry == TableMapping(key, QualifiedName(None, key), QualifiedName(None, key), ())
    assert m.entry("missing") is None


def test_guide_example_with_table_split_and_identity_columns():
    # From the Confiture guide: two entries read the same source table (a split) - allowed.
    m = load(
        """
        orders:
          source_table: orders
          target_table: orders
          columns: {id: id, user_id: user_id, total: total}
        order_items:
          source_table: orders
          target_table: order_items
          columns:
            id: order_id
        """
    )
    assert [t.source_table for t in m.tables] == [q("orders"), q("orders")]
    assert m.entry("orders").columns[0] == ColumnRule("id", "id", None)
    assert m.entry("orders").columns[0].expression_is_source_column()
    assert m.entry("order_items").columns == (ColumnRule("order_id", "id", None),)


def test_source_column_without_transform_is_a_rename_and_one_source_may_feed_many_targets():
    m = load(
        """
        t:
          a: x
          y: {source_column: a}
          z:
            source_column: a
            transform: "upper(a)"
        """
    )
    assert m.entry("t").columns == (
        ColumnRule("x", "a", None),
        ColumnRule("y", "a", None),
        ColumnRule("z", "a", "upper(a)"),
    )
    assert m.entry("t").rule_for_target("y").expression_is_source_column()


def test_schema_qualified_and_quoted_table_names_are_exact():
    m = load(
        """
        users:
          source_table: legacy.Old_Users
          target_table: '"new.schema"."odd""name"'
        "sales.Orders": {}
        plain:
          target_table: app.plain
        """
    )
    users = m.entry("users")
    assert users.source_table == QualifiedName("legacy", "Old_Users")  # case kept
    assert users.target_table == QualifiedName("new.schema", 'odd"name')
    orders = m.entry("sales.Orders")
    assert orders.source_table == orders.target_table == QualifiedName("sales", "Orders")
    plain = m.entry("plain")
    assert plain.source_table == QualifiedName(None, "plain")  # default from the key
    assert plain.target_table == QualifiedName("app", "plain")


def test_entry_key_need_not_be_a_table_name_when_both_tables_are_given():
    m = load(
        """
        "users: the big one":
          source_table: old_users
          target_table: users
        """
    )
    assert m.tables[0].key == "users: the big one"
    assert m.tables[0].source_table == q("old_users")


def test_yaml_order_is_preserved():
    names = [f"t{i}" for i in (5, 1, 9, 3, 7, 2)]
    m = load("\n".join(f"{n}:\n  c{n}: d{n}\n  b{n}: a{n}" for n in names))
    assert [t.key for t in m.tables] == names
    assert [r.target for r in m.entry("t9").columns] == ["dt9", "at9"]


def test_strategy_where_split_by_and_sql_kept_verbatim():
    m = load(
        """
        events:
          strategy: " FDW "
          where: "  kind <> 'debug'  AND  created_at >= '2024-01-01'  "
          split_by: id
          columns:
            payload:
              transform: "  payload::jsonb ->> 'X'  "
        a:
          strategy: auto
        b:
          strategy: null
          split_by: null
        """
    )
    events = m.entry("events")
    assert events.strategy == "fdw"
    assert events.where == "kind <> 'debug'  AND  created_at >= '2024-01-01'"
    assert events.split_by == "id"
    assert events.columns[0].transform == "payload::jsonb ->> 'X'"
    assert m.entry("a").strategy == "auto"
    assert m.entry("b").strategy is None and m.entry("b").split_by is None


def test_column_names_are_exact_and_double_quotes_are_unquoted():
    m = load(
        """
        t:
          Full Name: DisplayName
          '"odd""col"': '"a.b"'
          "dot.ted": x
        """
    )
    assert m.entry("t").columns == (
        ColumnRule("DisplayName", "Full Name", None),
        ColumnRule("a.b", 'odd"col', None),
        ColumnRule("x", "dot.ted", None),
    )


def test_for_target_applies_the_default_schema_on_both_sides():
    m = load(
        """
        users: {source_table: old_users}
        audit: {target_table: logs.audit}
        """
    )
    assert m.for_target(QualifiedName("public", "users"), "public").key == "users"
    assert m.for_target(QualifiedName(None, "users"), "public").key == "users"
    assert m.for_target(QualifiedName("other", "users"), "public") is None
    assert m.for_target(QualifiedName("logs", "audit"), "public").key == "audit"
    assert m.for_target(QualifiedName(None, "audit"), "public") is None
    assert m.for_target(QualifiedName(None, "audit"), "logs").key == "audit"
    assert Mapping(()).for_target(q("users"), "public") is None


def test_for_target_refuses_two_entries_that_meet_under_the_default_schema():
    m = load(
        """
        a: {target_table: users}
        b: {target_table: public.users}
        """
    )  # different as written (None vs 'public'), so parsing accepts them
    with pytest.raises(MappingError) as info:
        m.for_target(q("users"), "public")
    assert "'a'" in str(info.value) and "'b'" in str(info.value) and "public.users" in str(info.value)
    assert m.for_target(q("users"), "app").key == "a"


# ------------------------------------------------------------------------------------- loading


def test_load_mapping_none_is_the_empty_mapping():
    m = load_mapping(None)
    assert m.tables == () and m.origin is None
    assert m.entry("users") is None


def test_load_mapping_reads_a_file_and_names_it_in_errors(tmp_path):
    good = tmp_path / "column_mapping.yaml"
    good.write_text(REFERENCE, encoding="utf-8")
    m = load_mapping(good)
    assert m.origin == str(good)
    assert m == parse_mapping_text(REFERENCE, str(good))
    assert load_mapping(str(good)).entry("users").strategy == "copy"

    bad = tmp_path / "broken.yaml"
    bad.write_text("users:\n  columns:\n    full_name: display_name\n    price: {transform: 3}\n")
    with pytest.raises(MappingError) as info:
        load_mapping(bad)
    text = str(info.value)
    assert str(bad) in text and "'users'" in text and "columns.price.transform" in text
    assert info.value.source == str(bad) and info.value.entry == "users"


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param("", ["the mapping is empty", "pass no mapping"], id="empty-file"),
        pytest.param("# only a comment\n", ["the mapping is empty"], id="comment-only"),
        pytest.param("{}\n", ["the mapping is empty"], id="empty-mapping"),
        pytest.param(
            "users:\n  columns: [\n", ["invalid YAML at line 3", "fix the syntax"], id="yaml-syntax"
        ),
        pytest.param("users:\n\tcolumns: {}\n", ["invalid YAML at line 2, column 1", "tabs"], id="yaml-tab"),
        pytest.param(b"users: \xff\n", ["not UTF-8", "save it as UTF-8"], id="not-utf8"),
    ],
)
def test_load_mapping_file_errors(tmp_path, content, fragments):
    path = tmp_path / "m.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    text = str(info.value)
    assert text.startswith(str(path))
    for fragment in fragments:
        assert fragment in text


def test_load_mapping_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MappingError) as info:
        load_mapping(missing)
    assert "not found" in str(info.value) and str(missing) in str(info.value)
    assert "current directory" in str(info.value)
    with pytest.raises(MappingError, match="directory"):
        load_mapping(tmp_path)
    with pytest.raises(MappingError, match="path is empty"):
        load_mapping("")


def test_yaml_error_reports_line_and_column():
    text = error_of("users:\n  columns:\n    a: b\n   c: d\n")
    assert "column_mapping.yaml" in text
    assert "line 4" in text


def test_parse_mapping_accepts_safe_load_output():
    data = yaml.safe_load(REFERENCE)
    assert parse_mapping(data, "x.yaml") == load(REFERENCE, "x.yaml")
    assert parse_mapping(data).origin == "<mapping>"
    assert parse_mapping_text("t: {}").origin == "<string>"


def test_yaml_tags_are_not_executed():
    with pytest.raises(MappingError, match="invalid YAML"):
        load("t: !!python/object/apply:os.system ['true']\n")


def test_duplicate_yaml_keys_are_refused_instead_of_silently_dropped():
    text = error_of(
        """
        users:
          full_name: display_name
          email: email
          full_name: name
        """
    )
    assert "duplicate key 'full_name'" in text and "line 5" in text and "first at line 3" in text
    text = error_of("a: {}\nb: {}\na: {x: y}\n")
    assert "duplicate key 'a'" in text and "line 3" in text


# -------------------------------------------------------------------------------------- errors

BAD = [
    # (id, yaml, [fragments that must all appear in the message])
    ("top-level-list", "- users: {}\n", ["top level must be a mapping", "a list", "remove the leading '- '"]),
    ("top-level-scalar", "hello\n", ["top level must be a mapping", "'hello'"]),
    ("entry-not-mapping", "users: [a, b]\n", ["entry 'users'", "must be a mapping", "a list"]),
    (
        "entry-is-a-string",
        "users: old_users\n",
        ["entry 'users'", "must be a mapping", "{source_table: old_users}"],
    ),
    (
        "entry-missing-its-key",
        "source_table: old_users\ntarget_table: users\n",
        ["entry 'source_table'", "without its key", "indent"],
    ),
    ("entry-key-bool", "yes: {}\n", ["entry 'True'", "boolean", "quotes"]),
    ("entry-key-int", "2024: {}\n", ["entry '2024'", "number", "quotes"]),
    ("entry-key-not-a-table", "a.b.c: {}\n", ["entry 'a.b.c'", "not a table name", "source_table"]),
    (
        "long-form-unknown-key",
        "users:\n  source_table: old_users\n  colums: {a: b}\n",
        [
            "entry 'users'",
            "key 'colums'",
            "unknown key 'colums'",
            "expected one of source_table",
            "did you mean 'columns'?",
        ],
    ),
    (
        "long-form-column-at-top",
        "users:\n  target_table: users\n  full_name: display_name\n",
        ["key 'full_name'", "unknown key", "go under 'columns:'"],
    ),
    (
        "long-form-near-strategy",
        "users:\n  strategy: copy\n  stratgy: fdw\n",
        ["key 'stratgy'", "did you mean 'strategy'?"],
    ),
    (
        "short-form-typo-columns",
        "users:\n  colums:\n    full_name: display_name\n",
        ["entry 'users'", "key 'colums'", "misspelt 'columns'", "did you mean 'columns'?"],
    ),
    (
        "short-form-typo-columns-empty",
        "users:\n  column: {}\n",
        ["key 'column'", "misspelt 'columns'"],
    ),
    ("source-table-int", "users:\n  source_table: 12\n", ["key 'source_table'", "number", "quotes"]),
    ("source-table-null", "users:\n  source_table:\n", ["key 'source_table'", "null", "remove the key"]),
    (
        "target-table-bad",
        "users:\n  target_table: a.b.c\n",
        ["key 'target_table'", "not a table name", "schema.table"],
    ),
    (
        "target-table-unterminated-quote",
        "users:\n  target_table: '\"abc'\n",
        ["key 'target_table'", "unterminated", "double"],
    ),
    ("strategy-bad", "users:\n  strategy: fast\n", ["key 'strategy'", "'fast'", "auto, fdw, copy"]),
    ("strategy-near", "users:\n  strategy: cpy\n", ["key 'strategy'", "did you mean 'copy'?"]),
    ("strategy-not-str", "users:\n  strategy: 3\n", ["key 'strategy'", "auto, fdw, copy"]),
    ("where-empty", "users:\n  where: '  '\n", ["key 'where'", "non-empty SQL condition", "remove the key"]),
    ("where-null", "users:\n  where:\n", ["key 'where'", "non-empty SQL condition", "null"]),
    ("where-not-str", "users:\n  where: [a]\n", ["key 'where'", "a list"]),
    ("split-by-not-str", "users:\n  split_by: 1\n", ["key 'split_by'", "number", "quotes"]),
    ("split-by-empty", "users:\n  split_by: ''\n", ["key 'split_by'", "empty"]),
    (
        "columns-list",
        "users:\n  columns:\n    - a: b\n",
        ["key 'columns'", "must be a mapping", "without '- '"],
    ),
    ("columns-string", "users:\n  columns: 'a:b'\n", ["key 'columns'", "must be a mapping", "not a string"]),
    (
        "column-key-bool",
        "users:\n  columns:\n    on: enabled\n",
        ["entry 'users'", "key 'columns.True'", "boolean", "quotes"],
    ),
    ("column-key-int-short", "users:\n  1: one\n", ["key '1'", "number", "quotes"]),
    ("column-key-empty", "users:\n  '': x\n", ["key ''", "empty"]),
    ("column-target-bool", "users:\n  active: yes\n", ["key 'active'", "boolean", "quotes"]),
    ("column-target-int", "users:\n  columns:\n    a: 5\n", ["key 'columns.a'", "number", "quotes"]),
    ("column-target-empty", "users:\n  a: ' '\n", ["key 'a'", "empty"]),
    ("column-value-list", "users:\n  a: [b, c]\n", ["key 'a'", "a list", "target column name", "null"]),
    (
        "rule-unknown-key",
        "users:\n  columns:\n    price: {tranform: x}\n",
        ["key 'columns.price.tranform'", "unknown key 'tranform'", "did you mean 'transform'?"],
    ),
    (
        "rule-unknown-key-source",
        "users:\n  price: {source: x}\n",
        ["key 'price.source'", "did you mean 'source_column'?"],
    ),
    ("rule-empty", "users:\n  columns:\n    price: {}\n", ["key 'columns.price'", "empty", "transform"]),
    (
        "rule-transform-empty",
        "users:\n  price: {transform: ''}\n",
        ["key 'price.transform'", "non-empty SQL"],
    ),
    ("rule-transform-null", "users:\n  price: {transform: null}\n", ["key 'price.transform'", "null"]),
    (
        "rule-transform-number",
        "users:\n  price: {transform: 100}\n",
        ["key 'price.transform'", "number", "quote"],
    ),
    (
        "rule-source-null",
        "users:\n  m: {source_column: null, transform: x}\n",
        ["key 'm.source_column'", "null", "remove the key"],
    ),
    ("rule-source-int", "users:\n  m: {source_column: 7}\n", ["key 'm.source_column'", "number"]),
    (
        "two-renames-one-target",
        "users:\n  columns:\n    a: x\n    b: x\n",
        ["key 'columns.b'", "target column 'x' is written twice", "source column 'a'", "source column 'b'"],
    ),
    (
        "rename-and-transform-one-target",
        "users:\n  a: x\n  x: {transform: 'upper(a)'}\n",
        ["key 'x'", "target column 'x' is written twice", "source column 'a'", "transform 'upper(a)'"],
    ),
    (
        "source-column-rule-and-rename-one-target",
        "users:\n  x: x\n  x2: {source_column: a}\n  b: x2\n",
        ["key 'b'", "target column 'x2' is written twice", "source column 'a'", "source column 'b'"],
    ),
    (
        "ignored-then-read",
        "users:\n  legacy: null\n  flag: {source_column: legacy}\n",
        ["key 'flag'", "source column 'legacy'", "not copied", "target column 'flag'", "remove one"],
    ),
    (
        "read-then-ignored",
        "users:\n  flag: {source_column: legacy, transform: 'legacy::bool'}\n  legacy:\n",
        ["key 'legacy'", "source column 'legacy'", "not copied", "target column 'flag'"],
    ),
    (
        "two-entries-one-target",
        "users: {}\nold_users:\n  target_table: users\n",
        [
            "entry 'old_users'",
            "entries 'users' and 'old_users'",
            "target table 'users'",
            "one entry per target",
        ],
    ),
    (
        "two-entries-one-qualified-target",
        'a: {target_table: app.users}\nb: {target_table: \'"app"."users"\'}\n',
        ["entries 'a' and 'b'", "'app.users'"],
    ),
]


@pytest.mark.parametrize(("content", "fragments"), [pytest.param(c, f, id=i) for i, c, f in BAD])
def test_bad_mapping_messages(content, fragments):
    text = error_of(content, origin="db/migration/column_mapping.yaml")
    assert text.startswith("db/migration/column_mapping.yaml"), text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


def test_error_carries_structured_fields():
    with pytest.raises(MappingError) as info:
        load("users:\n  columns:\n    a: x\n    b: x\n", origin="f.yaml")
    assert (info.value.source, info.value.entry, info.value.key) == ("f.yaml", "users", "columns.b")


def test_short_form_near_entry_key_with_a_real_column_rule_is_a_column():
    # 'strategy_id' is close to 'strategy' but holds a valid rule: it is a computed column, not a typo.
    m = load("t:\n  strategy_id: {transform: '1'}\n  source_table_id: src_id\n")
    assert m.entry("t").columns == (
        ColumnRule("strategy_id", None, "1"),
        ColumnRule("src_id", "source_table_id", None),
    )


def test_a_column_named_like_an_entry_key_needs_the_long_form():
    m = load("t:\n  columns:\n    where: where_clause\n    strategy: {transform: \"'x'\"}\n")
    assert m.entry("t").columns == (
        ColumnRule("where_clause", "where", None),
        ColumnRule("strategy", None, "'x'"),
    )
    assert m.entry("t").where is None and m.entry("t").strategy is None


def test_constants():
    assert STRATEGIES == ("auto", "fdw", "copy")
    assert ENTRY_KEYS == (
        "source_table",
        "target_table",
        "columns",
        "strategy",
        "where",
        "split_by",
        "alias",
        "joins",
    )


# ------------------------------------------------------------------------------- column strings


def test_parse_column_string():
    assert parse_column_string("full_name:display_name,email:email") == (
        ColumnRule("display_name", "full_name", None),
        ColumnRule("email", "email", None),
    )
    assert parse_column_string("  a : b ,  id , c:a") == (
        ColumnRule("b", "a", None),
        ColumnRule("id", "id", None),
        ColumnRule("a", "c", None),  # 'a' as a target is distinct from 'a' as a source
    )
    assert parse_column_string('"x,y":"a:b", "Q""t"') == (
        ColumnRule("a:b", "x,y", None),
        ColumnRule('Q"t', 'Q"t', None),
    )
    assert parse_column_string("a:x,a:y") == (ColumnRule("x", "a", None), ColumnRule("y", "a", None))
    assert parse_column_string("CamelCase:lower") == (ColumnRule("lower", "CamelCase", None),)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        pytest.param("", ["column string is empty", "full_name:display_name"], id="empty"),
        pytest.param("   ", ["column string is empty"], id="blank"),
        pytest.param("a:b,,c", ["item 2", "empty", "remove it"], id="double-comma"),
        pytest.param("a:b,", ["item 2", "empty"], id="trailing-comma"),
        pytest.param("a:", ["item 1 'a:'", "no target column"], id="no-target"),
        pytest.param("a:b, :c", ["item 2 ':c'", "no source column"], id="no-source"),
        pytest.param("price:price::numeric", ["item 1", "more than one ':'", "transform"], id="cast"),
        pytest.param(
            "a:x,b:x", ["target column 'x' appears twice", "item 1 'a:x'", "item 2 'b:x'"], id="dup"
        ),
        pytest.param("a,a", ["target column 'a' appears twice"], id="dup-bare"),
        pytest.param('"abc:d', ["unterminated double quote"], id="quote"),
        pytest.param('a:"b".c', ["item 1", "no schema or table part", "one pair of quotes"], id="qualified"),
    ],
)
def test_parse_column_string_errors(spec, fragments):
    with pytest.raises(MappingError) as info:
        parse_column_string(spec, key="users")
    text = str(info.value)
    assert "entry 'users'" in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


# ------------------------------------------------------------------------------- one-table mapping


def test_one_table_mapping_with_a_column_string():
    m = one_table_mapping("legacy.old_users", "users", "full_name:display_name,email")
    assert len(m.tables) == 1
    t = m.tables[0]
    assert t.key == "users"
    assert (t.source_table, t.target_table) == (
        QualifiedName("legacy", "old_users"),
        QualifiedName(None, "users"),
    )
    assert t.columns == (ColumnRule("display_name", "full_name", None), ColumnRule("email", "email", None))
    assert m.for_target(q("public.users"), "public") is t


def test_one_table_mapping_with_a_dict_none_or_blank_and_options():
    m = one_table_mapping(
        "old_users",
        "users",
        {"full_name": "display_name", "price": {"transform": "p / 100"}, "junk": None},
        strategy="copy",
        where="id > 0",
        split_by="id",
    )
    t = m.tables[0]
    assert t.columns == (
        ColumnRule("display_name", "full_name", None),
        ColumnRule("price", None, "p / 100"),
        ColumnRule(None, "junk", None),
    )
    assert (t.strategy, t.where, t.split_by) == ("copy", "id > 0", "id")
    for columns in (None, "", "  "):
        assert one_table_mapping("a", "b", columns).tables[0].columns == ()


@pytest.mark.parametrize(
    ("args", "kwargs", "fragments"),
    [
        (("a.b.c", "users", None), {}, ["key 'source_table'", "not a table name"]),
        (("old", None, None), {}, ["key 'target_table'", "null"]),
        (("old", "users", {"a": "x", "b": "x"}), {}, ["key 'columns.b'", "written twice"]),
        (("old", "users", ["a"]), {}, ["key 'columns'", "must be a mapping"]),
        (("old", "users", "a:x,b:x"), {}, ["entry 'users'", "appears twice"]),
        (("old", "users", None), {"strategy": "turbo"}, ["key 'strategy'", "auto, fdw, copy"]),
    ],
)
def test_one_table_mapping_errors(args, kwargs, fragments):
    with pytest.raises(MappingError) as info:
        one_table_mapping(*args, **kwargs)
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
