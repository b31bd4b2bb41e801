"""The column-mapping file: which source table and columns feed which target table and columns.

Pure parsing and validation (no database, no Airflow). Whether the tables and columns really exist is
checked later, against the live databases, by the planner.

Two entry forms are accepted (both keep YAML order)::

    users:                       # entry key; source_table and target_table default to it
      source_table: old_users    # may be schema-qualified: legacy.old_users
      target_table: users
      strategy: copy             # optional: auto | fdw | copy
      where: "deleted_at IS NULL"
      split_by: id               # optional
      alias: u                   # optional: how SQL in this entry names source_table (default: its name)
      joins:                     # optional: more source tables joined to source_table
        - table: profiles        # may be schema-qualified
          alias: p               # optional (default: the table's name)
          type: left             # inner (default) | left
          on: "p.user_id = u.id" # SQL condition (YAML reads a bare on: as true: accepted as 'on')
      columns:
        full_name: display_name  # string value: SOURCE column -> TARGET column
        price:                   # mapping value: the KEY is the TARGET column
          transform: "price_cents::numeric / 100"
        metadata:
          source_column: settings_json
          transform: "settings_json::jsonb"
        legacy_flag: null        # null value: this source column is deliberately not copied
    tb_user:                     # short form: no entry key present, the entry is its columns section
      username: login_name
    empty_one: {}                # or null: mapped by name, every column by name

Column names are exact (case-sensitive). A column name written in double quotes is read like a table
name part in :mod:`names` (``"odd""name"`` is ``odd"name``); otherwise it is taken as written.
SQL (``transform``, ``where``, a join's ``on``) is kept verbatim except for surrounding whitespace.
Transforms, ``where`` and ``on`` may use the joined tables' columns (``p.bio``); a plain column rule
(``name: target``) always reads the main ``source_table``. Joins exist only in the long form (the short
form is nothing but column rules).

Every problem raises :class:`MappingError` naming the file, the entry, the key and what to do.
"""

from __future__ import annotations

import difflib
import os
from collections import abc
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_provider_confiture.core.errors import MappingError, did_you_mean
from airflow_provider_confiture.core.names import QualifiedName, split_qualified
from airflow_provider_confiture.core.planning.strategy import STRATEGIES

ENTRY_KEYS = ("source_table", "target_table", "columns", "strategy", "where", "split_by", "alias", "joins")
RULE_KEYS = ("transform", "source_column")
#: Keys that make an entry long form. ``alias`` alone does not: it is also a plausible column name, and
#: a short-form entry renaming a column called ``alias`` must stay short form.
_LONG_FORM_KEYS = tuple(k for k in ENTRY_KEYS if k != "alias")
JOIN_KEYS = ("table", "alias", "type", "on")
#: Join types a mapping accepts. RIGHT and FULL joins would produce rows with no main-table row (no
#: key to split by, nothing for catch-up to follow), CROSS joins multiply rows: see _parse_join_type.
JOIN_TYPES = ("inner", "left")

EMPTY_MAPPING_MESSAGE = (
    "the mapping is empty: list at least one table, or pass no mapping to migrate every table by name"
)
_COLUMN_STRING_EXAMPLE = "'full_name:display_name,email:email'"
_TYPO_CUTOFF = 0.8


@dataclass(frozen=True)
class ColumnRule:
    """One explicit column rule of a table entry.

    ``target`` None: the source column is deliberately not copied. ``source`` None: a computed column
    (``transform`` only). ``transform`` None: a plain copy or rename of ``source``.
    """

    target: str | None
    source: str | None
    transform: str | None

    def expression_is_source_column(self) -> bool:
        """True when the value is the source column itself (no SQL expression)."""
        return self.transform is None and self.source is not None


@dataclass(frozen=True)
class JoinRule:
    """One further source table joined to an entry's ``source_table``.

    ``kind`` is ``inner`` or ``left``; ``on`` is the SQL join condition (user SQL, checked like
    ``where``); ``alias`` is how the entry's SQL names the table (default: its bare name).
    """

    table: QualifiedName
    alias: str
    kind: str
    on: str


@dataclass(frozen=True)
class TableMapping:
    """One entry of the mapping: a source table feeding a target table."""

    key: str
    source_table: QualifiedName
    target_table: QualifiedName
    columns: tuple[ColumnRule, ...]
    strategy: str | None = None
    where: str | None = None
    split_by: str | None = None
    alias: str | None = None  # how SQL names source_table (None: no alias given)
    joins: tuple[JoinRule, ...] = ()

    @property
    def source_alias(self) -> str:
        """The name SQL uses for ``source_table``: its ``alias``, else its bare name."""
        return self.alias if self.alias is not None else self.source_table.name

    def rule_for_target(self, column: str) -> ColumnRule | None:
        for rule in self.columns:
            if rule.target is not None and rule.target == column:
                return rule
        return None

    def ignored_sources(self) -> frozenset[str]:
        return frozenset(r.source for r in self.columns if r.target is None and r.source is not None)


@dataclass(frozen=True)
class Mapping:
    """The whole mapping. No tables means "every table by name, every column by name"."""

    tables: tuple[TableMapping, ...]
    origin: str | None = None

    def entry(self, key: str) -> TableMapping | None:
        for table in self.tables:
            if table.key == key:
                return table
        return None

    def for_target(self, target: QualifiedName, default_schema: str) -> TableMapping | None:
        """The entry writing ``target``; a None schema (on either side) means ``default_schema``.

        Raises MappingError when two entries name the same table once the default schema is applied
        (for example ``users`` and ``public.users`` with default schema ``public``).
        """
        wanted = target.with_default_schema(default_schema)
        found = [t for t in self.tables if t.target_table.with_default_schema(default_schema) == wanted]
        if len(found) > 1:
            raise MappingError(
                f"entries {found[0].key!r} and {found[1].key!r} both write target table {str(wanted)!r} "
                f"(default schema {default_schema!r}); keep one entry per target table",
                source=self.origin,
                entry=found[1].key,
                key="target_table",
            )
        return found[0] if found else None


# --------------------------------------------------------------------------------------------- loading


def load_mapping(path: str | os.PathLike[str] | None) -> Mapping:
    """Read a mapping file. ``None`` gives the empty mapping (every table and column by name)."""
    if path is None:
        return Mapping((), None)
    origin = os.fspath(path)
    if isinstance(origin, bytes):
        origin = os.fsdecode(origin)
    if not origin.strip():
        raise MappingError("the mapping path is empty; give the path of a YAML file, or None for no mapping")
    try:
        with open(origin, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise MappingError(
            f"mapping file not found (looked for {os.path.abspath(origin)!r}); check the path: "
            f"a relative path is resolved against the worker's current directory {os.getcwd()!r}",
            source=origin,
        ) from None
    except IsADirectoryError:
        raise MappingError(
            "this is a directory; pass the path of the mapping YAML file", source=origin
        ) from None
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"the mapping file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8",
            source=origin,
        ) from None
    except OSError as exc:
        raise MappingError(
            f"cannot read the mapping file: {exc.strerror or exc}; check its permissions", source=origin
        ) from None
    return parse_mapping_text(text, origin)


def parse_mapping_text(text: str, origin: str = "<string>") -> Mapping:
    """Parse mapping YAML text (safe loader; a key repeated in one mapping is an error)."""
    if not isinstance(text, str):
        raise MappingError(f"the mapping text must be a string, not {type(text).__name__}", source=origin)
    return parse_mapping(_load_yaml(text, origin), origin)


class _DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, yaml.Mark] = {}
            for key_node, _value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise _DuplicateKeyError(
                        problem=f"duplicate key {key!r} (first at line {first.line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, origin: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKeyError as exc:
        mark = exc.problem_mark
        assert mark is not None  # set by _StrictSafeLoader
        raise MappingError(
            f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}: YAML would silently keep "
            "only the last one; merge the two into one, or rename one of them",
            source=origin,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown position"
        problem = exc.problem or exc.context or "syntax error"
        raise MappingError(
            f"invalid YAML at {position}: {problem}; fix the syntax there (indent with spaces, not tabs; "
            "quote values that contain ': ' or ' #' or start with one of { [ * & ! % @ `)",
            source=origin,
        ) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"invalid YAML: {exc}; fix the syntax", source=origin) from None


# --------------------------------------------------------------------------------------------- parsing


def parse_mapping(data: object, origin: str = "<mapping>") -> Mapping:
    """Build a :class:`Mapping` from the result of ``yaml.safe_load``."""
    if data is None:
        raise MappingError(EMPTY_MAPPING_MESSAGE, source=origin)
    if not isinstance(data, abc.Mapping):
        hint = ""
        if isinstance(data, list) and data and all(isinstance(x, abc.Mapping) for x in data):
            hint = " (remove the leading '- ': entries are keys, not list items)"
        raise MappingError(
            f"the top level must be a mapping of table entries such as 'users: {{source_table: old_users}}', "
            f"not {_kind(data)}{hint}",
            source=origin,
        )
    if not data:
        raise MappingError(EMPTY_MAPPING_MESSAGE, source=origin)

    tables: list[TableMapping] = []
    by_target: dict[QualifiedName, str] = {}
    for raw_key, value in data.items():
        table = _parse_entry(raw_key, value, origin)
        previous = by_target.get(table.target_table)
        if previous is not None:
            raise MappingError(
                f"entries {previous!r} and {table.key!r} both write target table {str(table.target_table)!r}; "
                "keep one entry per target table (to merge several source tables into one target, make one "
                "of them the entry's source_table and list the others under its 'joins:')",
                source=origin,
                entry=table.key,
                key="target_table",
            )
        by_target[table.target_table] = table.key
        tables.append(table)
    return Mapping(tuple(tables), origin)


def one_table_mapping(
    source_table: str,
    target_table: str,
    columns: str | dict[str, Any] | None,
    *,
    strategy: str | None = None,
    where: str | None = None,
    split_by: str | None = None,
    alias: str | None = None,
    joins: list[dict[str, Any]] | None = None,
) -> Mapping:
    """A mapping of a single table, for the one-table operator.

    ``columns`` is a column string (:func:`parse_column_string`), a dict shaped like a YAML ``columns:``
    section, or None / a blank string (every column by name). ``joins`` is a list shaped like a YAML
    ``joins:`` section. The entry key is ``target_table``.
    """
    origin = "<one-table mapping>"
    key = target_table if isinstance(target_table, str) else str(target_table)
    data: dict[str, object] = {"source_table": source_table, "target_table": target_table}
    for name, value in (
        ("strategy", strategy),
        ("where", where),
        ("split_by", split_by),
        ("alias", alias),
        ("joins", joins),
    ):
        if value is not None:
            data[name] = value
    column_string: str | None = None
    if isinstance(columns, str):
        column_string = columns if columns.strip() else None
    elif columns is not None:
        data["columns"] = columns
    table = _parse_entry(key, data, origin)
    if column_string is not None:
        rules = parse_column_string(column_string, key=key)
        table = TableMapping(
            key=table.key,
            source_table=table.source_table,
            target_table=table.target_table,
            columns=rules,
            strategy=table.strategy,
            where=table.where,
            split_by=table.split_by,
            alias=table.alias,
            joins=table.joins,
        )
    return Mapping((table,), origin)


class _Location:
    """Where we are in the file, to build errors."""

    def __init__(self, origin: str, entry: str | None) -> None:
        self.origin = origin
        self.entry = entry

    def error(self, message: str, key: str | None = None) -> MappingError:
        return MappingError(message, source=self.origin, entry=self.entry, key=key)


def _parse_entry(raw_key: object, value: object, origin: str) -> TableMapping:
    if not isinstance(raw_key, str) or not raw_key.strip():
        raise MappingError(
            f"an entry key must be a table name, not {_kind(raw_key)}; {_quote_hint(raw_key)}",
            source=origin,
            entry=str(raw_key),
        )
    key = raw_key
    at = _Location(origin, key)

    if value is None:
        name = _table_from_key(key, at)
        return TableMapping(key, name, name, ())
    if not isinstance(value, abc.Mapping):
        if key in ENTRY_KEYS:
            hint = (
                f"; {key!r} is an entry setting: it looks like a table entry without its key, indent it "
                "under a key such as 'users:'"
            )
        elif isinstance(value, str):
            hint = f"; to read table {value!r} into {key!r}, write '{key}: {{source_table: {value}}}'"
        else:
            hint = ""
        raise at.error(
            f"an entry must be a mapping (its settings or its column rules) or null (table copied by name), "
            f"not {_kind(value)}{hint}"
        )

    if not any(k in _LONG_FORM_KEYS for k in value):  # short form: the entry is its columns section
        name = _table_from_key(key, at)
        return TableMapping(key, name, name, _parse_columns(value, at, prefix="", short_form=True))

    for k in value:
        if k not in ENTRY_KEYS:
            raise at.error(
                f"unknown key {k!r}; expected one of {', '.join(ENTRY_KEYS)} (an entry holding any of "
                f"these is in long form: its column rules go under 'columns:'){did_you_mean(k, ENTRY_KEYS)}",
                key=str(k),
            )

    source_table = (
        _table_value(value["source_table"], "source_table", at)
        if "source_table" in value
        else _table_from_key(key, at)
    )
    target_table = (
        _table_value(value["target_table"], "target_table", at)
        if "target_table" in value
        else _table_from_key(key, at)
    )

    columns: tuple[ColumnRule, ...] = ()
    if "columns" in value:
        section = value["columns"]
        if isinstance(section, abc.Mapping):
            columns = _parse_columns(section, at, prefix="columns.", short_form=False)
        elif section is not None:
            if isinstance(section, list):
                hint = "write one 'source: target' line per column under 'columns:', without '- '"
            elif isinstance(section, str):
                hint = "write one 'source: target' line per column under 'columns:', not a string"
            else:
                hint = "write one 'source: target' line per column under 'columns:'"
            raise at.error(f"'columns' must be a mapping, not {_kind(section)}; {hint}", key="columns")

    strategy = None
    if value.get("strategy") is not None:
        raw = value["strategy"]
        choice = raw.strip().lower() if isinstance(raw, str) else None
        if choice not in STRATEGIES:
            raise at.error(
                f"strategy {raw!r} is not one of {', '.join(STRATEGIES)}"
                f"{did_you_mean(raw, STRATEGIES)} (or remove the key to use the run's strategy)",
                key="strategy",
            )
        strategy = choice

    where = None
    if "where" in value:
        raw = value["where"]
        if not isinstance(raw, str) or not raw.strip():
            raise at.error(
                f"'where' must be a non-empty SQL condition on the source table, such as "
                f'"deleted_at IS NULL", not {_kind(raw)}; remove the key to copy every row',
                key="where",
            )
        where = raw.strip()

    split_by = None
    if value.get("split_by") is not None:
        split_by = _column_name(value["split_by"], at, key="split_by", role="the split_by column")

    alias = None
    if "alias" in value:
        alias = _alias(value["alias"], at, key="alias", what="the alias of source_table")
    joins: tuple[JoinRule, ...] = ()
    if value.get("joins") is not None:
        joins = _parse_joins(value["joins"], at, alias if alias is not None else source_table.name)

    return TableMapping(
        key=key,
        source_table=source_table,
        target_table=target_table,
        columns=columns,
        strategy=strategy,
        where=where,
        split_by=split_by,
        alias=alias,
        joins=joins,
    )


def _alias(raw: object, at: _Location, *, key: str, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise at.error(
            f"{what} must be a name such as 'u', not {_kind(raw)}; {_quote_hint(raw)} "
            "(or remove the key: the table's own name is used)",
            key=key,
        )
    try:
        return _unquote_column(raw.strip())
    except ValueError as exc:
        raise at.error(f"{what} {raw!r} is not a name: {exc}", key=key) from None


_JOINS_EXAMPLE = '[{table: profiles, alias: p, type: left, on: "p.user_id = u.id"}]'


def _parse_joins(raw: object, at: _Location, main_alias: str) -> tuple[JoinRule, ...]:
    if isinstance(raw, abc.Mapping):
        raise at.error(
            "'joins' must be a list, one item per joined table (each item starts with '- '), not a "
            f"mapping; e.g. 'joins: {_JOINS_EXAMPLE}'",
            key="joins",
        )
    if not isinstance(raw, list) or not raw:
        raise at.error(
            f"'joins' must be a non-empty list of joined tables, not {_kind(raw)}; e.g. 'joins: {_JOINS_EXAMPLE}' "
            "(or remove the key)",
            key="joins",
        )
    rules: list[JoinRule] = []
    seen: dict[str, str] = {main_alias: "source_table"}
    for number, item in enumerate(raw, start=1):
        path = f"joins[{number}]"
        if not isinstance(item, abc.Mapping):
            raise at.error(
                f"join {number} must be a mapping with {', '.join(JOIN_KEYS)}, not {_kind(item)}; "
                f"e.g. 'joins: {_JOINS_EXAMPLE}'",
                key=path,
            )
        # YAML 1.1 (PyYAML) reads a bare ``on`` key as the boolean true: take it as the 'on' it is.
        fields = {("on" if k is True else k): v for k, v in item.items()}
        for k in fields:
            if k not in JOIN_KEYS:
                raise at.error(
                    f"unknown key {k!r} in join {number}; a join accepts {', '.join(JOIN_KEYS)}"
                    f"{did_you_mean(k, JOIN_KEYS) if isinstance(k, str) else ''}",
                    key=f"{path}.{k}",
                )
        if "table" not in fields:
            raise at.error(
                f"join {number} has no 'table': name the source table to join (e.g. 'table: profiles')",
                key=path,
            )
        table = _table_value(fields["table"], f"{path}.table", at)
        label = f"join {number} ({table})"
        alias = (
            _alias(fields["alias"], at, key=f"{path}.alias", what=f"the alias of {label}")
            if "alias" in fields
            else table.name
        )
        if alias in seen:
            raise at.error(
                f"{label}: alias {alias!r} is already used by {seen[alias]}; give each joined table its own "
                "'alias' (SQL in this entry names the tables by their aliases)",
                key=f"{path}.alias",
            )
        seen[alias] = f"join {number}"
        kind = _parse_join_type(fields.get("type"), at, f"{path}.type", label)
        on = fields.get("on")
        if not isinstance(on, str) or not on.strip():
            raise at.error(
                f"{label} needs 'on': a non-empty SQL join condition such as "
                f'"{alias}.user_id = {main_alias}.id", not {_kind(on)} (a join without a condition would '
                "pair every row with every row)",
                key=f"{path}.on",
            )
        rules.append(JoinRule(table=table, alias=alias, kind=kind, on=on.strip()))
    return tuple(rules)


def _parse_join_type(raw: object, at: _Location, key: str, label: str) -> str:
    if raw is None:
        return "inner"
    choice = raw.strip().lower() if isinstance(raw, str) else None
    if choice in ("left outer", "inner join", "left join", "left outer join"):
        choice = choice.split()[0]
    if choice in JOIN_TYPES:
        return choice
    why = ""
    if choice in ("right", "full", "right outer", "full outer", "cross"):
        why = (
            f"; a {choice} join is not offered: every target row must come from one row of source_table "
            "(its key splits the table into ranges, verify and catch-up follow it), so make the table "
            "that holds every row the source_table and left-join the others"
        )
    raise at.error(
        f"{label}: type {raw!r} is not one of {', '.join(JOIN_TYPES)}{did_you_mean(raw, JOIN_TYPES)}{why}",
        key=key,
    )


def _table_from_key(key: str, at: _Location) -> QualifiedName:
    try:
        return QualifiedName.parse(key)
    except ValueError as exc:
        raise at.error(
            f"the entry key is not a table name ({exc}); fix it, or set both source_table and "
            "target_table in the entry"
        ) from None


def _table_value(raw: object, key: str, at: _Location) -> QualifiedName:
    if not isinstance(raw, str):
        raise at.error(
            f"{key} must be a table name ('table' or 'schema.table'), not {_kind(raw)}; "
            f"{'remove the key to default to the entry key' if raw is None else _quote_hint(raw)}",
            key=key,
        )
    try:
        return QualifiedName.parse(raw)
    except ValueError as exc:
        raise at.error(
            f"{key} {raw!r} is not a table name ({exc}); write 'table' or 'schema.table', with double "
            "quotes around a part that holds a dot",
            key=key,
        ) from None


def _parse_columns(
    section: abc.Mapping[Any, Any], at: _Location, *, prefix: str, short_form: bool
) -> tuple[ColumnRule, ...]:
    rules: list[ColumnRule] = []
    writers: dict[str, ColumnRule] = {}  # target column -> its rule
    readers: dict[str, ColumnRule] = {}  # source column -> first copied rule reading it
    ignored: set[str] = set()

    for raw_key, value in section.items():
        path = f"{prefix}{raw_key}"
        if (
            short_form
            and isinstance(raw_key, str)
            and isinstance(value, abc.Mapping)
            and not _looks_like_rule(value)
        ):
            close = difflib.get_close_matches(raw_key, ENTRY_KEYS, n=1, cutoff=_TYPO_CUTOFF)
            if close:
                raise at.error(
                    f"{raw_key!r} looks like a misspelt {close[0]!r}: its value is not a column rule "
                    f"(a column rule holds only {' and/or '.join(RULE_KEYS)}); did you mean {close[0]!r}?",
                    key=path,
                )
        name = _column_name(raw_key, at, key=path, role="a column name")

        if value is None:
            rule = ColumnRule(target=None, source=name, transform=None)
        elif isinstance(value, str):
            target = _column_name(value, at, key=path, role=f"the target column of {name!r}")
            rule = ColumnRule(target=target, source=name, transform=None)
        elif isinstance(value, abc.Mapping):
            rule = _parse_rule(name, value, at, path)
        else:
            raise at.error(
                f"the rule for column {name!r} must be a target column name (rename), null (do not copy "
                f"the source column), or a mapping with {' and/or '.join(RULE_KEYS)} (computed target "
                f"column), not {_kind(value)}; {_quote_hint(value)}",
                key=path,
            )

        if rule.target is None:
            reader = readers.get(name)
            if reader is not None:
                raise at.error(_ignored_but_read(name, reader), key=path)
            ignored.add(name)
        else:
            previous = writers.get(rule.target)
            if previous is not None:
                raise at.error(
                    f"target column {rule.target!r} is written twice: by {_describe(previous)} and by "
                    f"{_describe(rule)}; keep one rule per target column (one source column may feed "
                    "several targets, but a target column takes one value)",
                    key=path,
                )
            writers[rule.target] = rule
            if rule.source is not None:
                if rule.source in ignored:
                    raise at.error(_ignored_but_read(rule.source, rule), key=path)
                readers.setdefault(rule.source, rule)
        rules.append(rule)
    return tuple(rules)


def _looks_like_rule(value: abc.Mapping[Any, Any]) -> bool:
    return bool(value) and all(k in RULE_KEYS for k in value)


def _parse_rule(target: str, value: abc.Mapping[Any, Any], at: _Location, path: str) -> ColumnRule:
    for k in value:
        if k not in RULE_KEYS:
            raise at.error(
                f"unknown key {k!r} in the rule of target column {target!r}; a column rule accepts "
                f"{' and '.join(RULE_KEYS)} (for a plain rename write 'source_name: {target}' instead)"
                f"{did_you_mean(k, RULE_KEYS)}",
                key=f"{path}.{k}",
            )
    if not value:
        raise at.error(
            f"the rule of target column {target!r} is empty; give 'transform' (an SQL expression) "
            "and/or 'source_column', or write 'column: null' to leave a source column out",
            key=path,
        )
    source = None
    if "source_column" in value:
        if value["source_column"] is None:
            raise at.error(
                f"source_column of target column {target!r} is null; give the source column's name, or "
                "remove the key for a column computed by 'transform' alone",
                key=f"{path}.source_column",
            )
        source = _column_name(value["source_column"], at, key=f"{path}.source_column", role="source_column")
    transform = None
    if "transform" in value:
        raw = value["transform"]
        if not isinstance(raw, str) or not raw.strip():
            raise at.error(
                f"transform of target column {target!r} must be a non-empty SQL expression over source "
                f'columns, such as "price_cents::numeric / 100", not {_kind(raw)}; quote it as a '
                "string, or remove the key",
                key=f"{path}.transform",
            )
        transform = raw.strip()
    return ColumnRule(target=target, source=source, transform=transform)


def _describe(rule: ColumnRule) -> str:
    if rule.transform is None:
        return f"source column {rule.source!r}"
    if rule.source is not None:
        return f"transform {rule.transform!r} (source column {rule.source!r})"
    return f"transform {rule.transform!r}"


def _ignored_but_read(source: str, rule: ColumnRule) -> str:
    return (
        f"source column {source!r} is marked as not copied ('{source}: null') but is also the source of "
        f"target column {rule.target!r}; remove one of the two rules"
    )


def _column_name(raw: object, at: _Location, *, key: str, role: str) -> str:
    if not isinstance(raw, str):
        raise at.error(f"{role} must be a string, not {_kind(raw)}; {_quote_hint(raw)}", key=key)
    try:
        return _unquote_column(raw)
    except ValueError as exc:
        raise at.error(f"{role} {raw!r} is not a column name: {exc}", key=key) from None


def _unquote_column(text: str) -> str:
    """Exact column name; ``"..."`` is unquoted like a table name part. Raises ValueError."""
    if not text.strip():
        raise ValueError("it is empty; give a column name")
    if not text.startswith('"'):
        return text
    parts = split_qualified(text)
    if len(parts) != 1:
        raise ValueError(
            "a column name has no schema or table part; put the whole name in one pair of quotes"
        )
    return parts[0]


# ------------------------------------------------------------------------------------- column strings


def parse_column_string(spec: str, *, key: str = "<inline>") -> tuple[ColumnRule, ...]:
    """Parse ``"full_name:display_name,email:email"`` (source:target pairs; a bare name keeps its name).

    Whitespace around names is ignored; a name in double quotes may hold ``,`` or ``:``. No transforms.
    """
    source = "column string"

    def error(message: str) -> MappingError:
        return MappingError(message, source=source, entry=key)

    if not isinstance(spec, str):
        raise error(f"the column string must be a string, not {_kind(spec)}; e.g. {_COLUMN_STRING_EXAMPLE}")
    if not spec.strip():
        raise error(
            f"the column string is empty; write source:target pairs separated by commas, e.g. "
            f"{_COLUMN_STRING_EXAMPLE}, or pass no column string to copy every column by name"
        )
    try:
        items = _split_unquoted(spec, ",")
    except ValueError as exc:
        raise error(f"{exc} in {spec!r}; close the quote") from None

    rules: list[ColumnRule] = []
    writers: dict[str, tuple[int, str]] = {}
    for number, item in enumerate(items, start=1):
        label = f"item {number} {item.strip()!r}"
        if not item.strip():
            raise error(
                f"item {number} of {spec!r} is empty (two commas in a row, or a leading or trailing "
                "comma); remove it"
            )
        parts = _split_unquoted(item, ":")
        if len(parts) > 2:
            raise error(
                f"{label} has more than one ':'; write source:target (a transform such as '::numeric' "
                "needs a mapping file with 'transform:')"
            )
        src_text = parts[0].strip()
        dst_text = parts[-1].strip()
        if not src_text:
            raise error(f"{label} has no source column; write source:target")
        if not dst_text:
            raise error(f"{label} has no target column; write source:target, or just the name to keep it")
        try:
            src = _unquote_column(src_text)
            dst = _unquote_column(dst_text)
        except ValueError as exc:
            raise error(f"{label}: {exc}") from None
        if dst in writers:
            first_number, first_item = writers[dst]
            raise error(
                f"target column {dst!r} appears twice: item {first_number} {first_item!r} and {label}; "
                "each target column takes one source column"
            )
        writers[dst] = (number, item.strip())
        rules.append(ColumnRule(target=dst, source=src, transform=None))
    return tuple(rules)


def _split_unquoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted  # "" inside quotes toggles twice: stays quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted:
        raise ValueError("unterminated double quote")
    parts.append("".join(buf))
    return parts


# --------------------------------------------------------------------------------------------- helpers


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"the string {value!r}"
    if isinstance(value, abc.Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value!r})"


def _quote_hint(value: object) -> str:
    if isinstance(value, bool):
        return (
            "YAML reads unquoted yes/no/on/off/true/false as booleans: put the name in quotes, "
            "e.g. \"on\" or 'yes'"
        )
    if value is None:
        return "give a name (in quotes if it looks like null, ~ or is empty)"
    return 'put the name in quotes so YAML keeps it as text, e.g. "2024"'
