"""Entries fed by a join: the main ``source_table`` plus further source tables joined to it.

A join merges tables (users + profiles into accounts, an order header + its details, a lookup table
folded into the rows that reference it). Every target row comes from exactly one row of the main
table: only ``inner`` and ``left`` joins are offered, the main table's key splits the table into key
ranges, and a join that gives one target key several rows is refused at analyze
(:func:`validate.check_join_duplicates`). The same ``FROM ... JOIN ...`` clause (:func:`from_clause`)
is used by every statement reading the source: COPY out and its EXPLAIN on the source, the FDW
``INSERT ... SELECT`` over the foreign tables, and verify's source count and checksum, so what is
loaded and what is compared are the same rows.

Catch-up (``core/catchup``) re-reads changed keys through the mapping SQL. A change in a *joined*
table changes the target rows it feeds; :func:`catchup_support` says, per entry, how to find them
(or why it cannot). The contract, for catch-up:

* ``TablePlan.catchup_support()`` returns :class:`CatchupSupport`. ``refusal`` is None when catch-up
  can follow the entry; else a sentence naming the entry (and the join) and why, to be raised at
  analyze when catch-up is asked for.
* ``joins`` holds one :class:`JoinCatchup` per joined table. For a changed row of ``table``, catch-up
  takes the values of ``columns`` from its old image and from its new image (an INSERT has only a new
  one, a DELETE only an old one) and runs ``affected_keys_sql(values)`` on the source (or with
  ``via_foreign_tables=True`` on the target); the result is the target primary-key values (in the
  target key's column order, cast to the target's types) whose rows must be re-read through the
  mapping: a re-read key that no longer yields a row is deleted from the target.
* The key set may be a superset (conditions of ``on`` other than the column equalities are ignored):
  re-reading an unchanged row is harmless. It is never a subset when the old image carries
  ``columns``: ``needs_full_identity`` is True when ``columns`` are not all in the joined table's
  primary key, so PostgreSQL's default replica identity (the primary key) does not log their old
  values on UPDATE/DELETE; catch-up must then require ``REPLICA IDENTITY FULL`` on that table.
* Changes of the main ``source_table`` are mapped as for any entry (its key is the target key).

A join can be followed when its ``on`` condition, split at the top level on ``AND``, holds at least
one equality ``alias.column = other.column`` between the joined table and the main table or an
earlier join, and the target key is not computed from a joined table. Not followed: an ``on`` that
is an ``OR``, a range or a function of both sides (which rows a change feeds is not a key lookup), a
joined or main view (its rows change through tables beneath it, which decoding sees but the mapping
does not name), a target without a primary key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from airflow_provider_confiture.core.names import QualifiedName

if TYPE_CHECKING:
    from airflow_provider_confiture.core.planning.plan import TablePlan

#: pg_class.relkind of the relations a source may read that are not tables.
VIEW_KINDS = {"v": "view", "m": "materialized view"}


@dataclass(frozen=True)
class JoinPlan:
    """One joined source table, resolved against the source catalog."""

    alias: str
    table: QualifiedName  # on the source
    foreign: QualifiedName  # its foreign table on the target
    kind: str  # inner | left
    on: str  # user SQL, checked by user_sql
    relkind: str = "r"
    primary_key: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"join {self.alias!r} ({self.table})"


def from_clause(
    plan: TablePlan, via_foreign_table: bool, joins: Sequence[JoinPlan] | None = None
) -> sql.Composable:
    """``main [AS alias] [LEFT] JOIN t AS a ON (cond) ...`` over the source tables, or over their
    foreign tables on the target. ``joins`` defaults to all of the plan's joins."""
    # Deferred: plan imports this module, and checked_fragment lives there.
    from airflow_provider_confiture.core.planning.plan import checked_fragment

    main = plan.foreign if via_foreign_table else plan.source
    out: sql.Composable = main.identifier()
    if plan.source_alias is not None:
        out = sql.SQL("{} AS {}").format(out, sql.Identifier(plan.source_alias))
    for join in plan.joins if joins is None else joins:
        table = join.foreign if via_foreign_table else join.table
        keyword = sql.SQL("LEFT JOIN" if join.kind == "left" else "JOIN")
        on = checked_fragment(join.on, f"entry {plan.key!r}, {join.label}: 'on' condition")
        out = sql.SQL("{} {} {} AS {} ON ({})").format(
            out, keyword, table.identifier(), sql.Identifier(join.alias), sql.SQL(on)
        )
    return out


# ------------------------------------------------------------------------------------------ catch-up


@dataclass(frozen=True)
class JoinCatchup:
    """How a change in one joined table maps back to target keys (see the module docstring)."""

    alias: str
    table: QualifiedName
    columns: tuple[str, ...]  # the joined table's columns to take from a changed row's old/new image
    needs_full_identity: bool  # ``columns`` not all in the joined table's primary key
    matched: tuple[tuple[str, str], ...]  # (alias, column) each of ``columns`` equals, in the same order
    keys: sql.Composable  # the target key's source expressions, cast to the target's types
    from_source: sql.Composable
    from_foreign: sql.Composable

    def affected_keys_sql(
        self, values: Sequence[Sequence[object]], *, via_foreign_tables: bool = False
    ) -> sql.Composable:
        """``SELECT DISTINCT <target key> FROM <main and the joins before this one> WHERE (<matched>)
        IN ((values...), ...)``: the target keys fed by rows of ``table`` whose ``columns`` hold one
        of ``values`` (one tuple per changed row image, values in ``columns`` order)."""
        if not values:
            raise ValueError("affected_keys_sql needs at least one row of values")
        for row in values:
            if len(row) != len(self.columns):
                raise ValueError(f"each row of values must hold {len(self.columns)} values ({self.columns})")
        lhs = sql.SQL(", ").join(sql.Identifier(a, c) for a, c in self.matched)
        rows = sql.SQL(", ").join(
            sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(v) for v in row)) for row in values
        )
        return sql.SQL("SELECT DISTINCT {} FROM {} WHERE ({}) IN ({})").format(
            self.keys, self.from_foreign if via_foreign_tables else self.from_source, lhs, rows
        )


@dataclass(frozen=True)
class CatchupSupport:
    joins: tuple[JoinCatchup, ...]
    refusal: str | None  # None: catch-up can follow this entry

    @property
    def supported(self) -> bool:
        return self.refusal is None


_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_REF = rf"({_IDENT})\s*\.\s*({_IDENT})"
_EQUALITY = re.compile(rf"^\s*{_REF}\s*=\s*{_REF}\s*$", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _ident(text: str) -> str:
    """An identifier as the server reads it: quoted exactly, unquoted folded to lower case."""
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def conjuncts(text: str) -> list[str] | None:
    """``text`` split on top-level ``AND`` (outside quotes and parentheses); None when it holds
    constructs this reader does not follow (comments, dollar quotes, escape strings)."""
    if "--" in text or "/*" in text or "$" in text or "\\" in text:
        return None
    parts, buf, depth, i, quote = [], [], 0, 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text[i : i + 3].lower() == "and":
            before = text[i - 1] if i else " "
            after = text[i + 3] if i + 3 < len(text) else " "
            if not (before.isalnum() or before in "_$") and not (after.isalnum() or after in "_$"):
                parts.append("".join(buf))
                buf, i = [], i + 3
                continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    out = []
    for part in parts:
        part = part.strip()
        while part.startswith("(") and part.endswith(")") and _balanced(part[1:-1]):
            part = part[1:-1].strip()
        out.append(part)
    return out


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def equalities(on: str, alias: str, earlier: Sequence[str]) -> list[tuple[str, tuple[str, str]]] | None:
    """``(joined column, (other alias, other column))`` for each top-level ``alias.col = other.col``
    of ``on`` with ``other`` one of ``earlier``; None when ``on`` cannot be read."""
    parts = conjuncts(on)
    if parts is None:
        return None
    found = []
    for part in parts:
        m = _EQUALITY.match(part)
        if not m:
            continue
        left = (_ident(m.group(1)), _ident(m.group(2)))
        right = (_ident(m.group(3)), _ident(m.group(4)))
        for mine, other in ((left, right), (right, left)):
            if mine[0] == alias and other[0] in earlier and other[0] != alias:
                found.append((mine[1], other))
                break
    return found


def catchup_support(plan: TablePlan) -> CatchupSupport:
    """Whether catch-up can follow ``plan`` and, per joined table, how (see the module docstring)."""
    # Deferred: plan imports this module.
    from airflow_provider_confiture.core.planning import statements

    at = f"entry {plan.key!r}"
    if plan.source_kind in VIEW_KINDS:
        return CatchupSupport(
            (),
            f"{at}: source {plan.source} is a {VIEW_KINDS[plan.source_kind]}: catch-up follows changes to "
            "tables, and a view's rows change through the tables beneath it; to follow them, make the "
            "main table the source_table and list the others under 'joins:'",
        )
    if not plan.joins:
        return CatchupSupport((), None)
    if not plan.target_primary_key:
        return CatchupSupport(
            (),
            f"{at}: target table {plan.target} has no primary key, so a joined table's change cannot be "
            "mapped to the target rows it feeds",
        )
    aliases = [j.alias for j in plan.joins]
    key_columns = []
    for name in plan.target_primary_key:
        col = next((c for c in plan.columns if c.target == name), None)
        if col is None:
            return CatchupSupport((), f"{at}: target key column {name!r} is not filled from the source")
        if col.transform is not None:
            used = {w for w in _WORD.findall(col.transform)} & set(aliases)
            if used:
                return CatchupSupport(
                    (),
                    f"{at}: target key column {name!r} is computed from joined table(s) "
                    f"{', '.join(sorted(used))}: a change there could move a row to another key",
                )
        key_columns.append(col)
    keys = sql.SQL(", ").join(statements.key_item(c) for c in key_columns)
    main_alias = plan.source_alias or plan.source.name
    out = []
    for i, join in enumerate(plan.joins):
        if join.relkind in VIEW_KINDS:
            return CatchupSupport(
                (),
                f"{at}: {join.label} reads a {VIEW_KINDS[join.relkind]}: its rows change through the tables "
                "beneath it, which catch-up cannot map to this entry; join those tables instead",
            )
        earlier = [main_alias, *aliases[:i]]
        found = equalities(join.on, join.alias, earlier)
        if not found:
            return CatchupSupport(
                (),
                f"{at}: {join.label} is not an equality on the key: its 'on' ({join.on!r}) has no top-level "
                f"condition '{join.alias}.column = other.column' with other one of {', '.join(earlier)} "
                "(an OR, a range or a function hides which target rows a change in it feeds), so "
                "catch-up cannot follow this entry",
            )
        columns = tuple(c for c, _ in found)
        out.append(
            JoinCatchup(
                alias=join.alias,
                table=join.table,
                columns=columns,
                needs_full_identity=not set(columns) <= set(join.primary_key),
                matched=tuple(o for _, o in found),
                keys=keys,
                from_source=from_clause(plan, False, plan.joins[:i]),
                from_foreign=from_clause(plan, True, plan.joins[:i]),
            )
        )
    return CatchupSupport(tuple(out), None)
