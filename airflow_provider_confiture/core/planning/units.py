"""The contract between analyze and the per-table tasks: one load unit per mapped task instance.

A unit is a whole table, one key range ``table [k/n]`` of a large one, or a bundle of small tables
(``small tables [k/n]``: many tables whose loads take milliseconds each share one task, so a migration
of 2,000 tables is not 4,000 task instances; each table still loads in its own transaction). It travels
as JSON through
XCom (Airflow maps the per-table task group over analyze's list of units), so it is a ``TypedDict``:
typed for the code on both ends, a plain dict on the wire.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class KeyRangeDict(TypedDict):
    """:class:`ranges.KeyRange` as JSON."""

    source_column: str
    target_column: str
    lower: int | None
    upper: int | None
    index: int
    count: int


class UnitTable(TypedDict):
    """One table of a bundle."""

    table: str
    label: str
    strategy: str


class LoadUnit(TypedDict):
    #: Mapping entry key (or target table name) of the table.
    table: str
    #: What the UI shows for the mapped task instance: the table's label, ``users [2/3]`` for a part.
    label: str
    #: The strategy analyze chose (``fdw`` or ``copy``); the load re-checks it against the live catalogs.
    strategy: str
    #: The part's key range, or None for the whole table.
    key_range: KeyRangeDict | None
    #: A bundle's tables (then ``table`` is the first of them and ``strategy`` is unused).
    tables: NotRequired[list[UnitTable]]


def unit_table(unit: LoadUnit | dict[str, Any] | None) -> str | None:
    """The table a unit (or a unit-like dict from XCom) names, or None (none, or a bundle)."""
    if not unit or unit.get("tables"):
        return None
    return str(unit["table"]) if unit.get("table") else None


def unit_tables(unit: LoadUnit | dict[str, Any] | None) -> list[UnitTable]:
    """The tables of a bundle; empty for a unit of one table (or part)."""
    return list(unit.get("tables") or []) if unit else []


def bundle_label(index: int, count: int, tables: list[UnitTable]) -> str:
    """``small tables [2/5] (t0051..t0100, 50 tables)``: the unit, and which tables it holds."""
    first, last = tables[0]["label"], tables[-1]["label"]
    span = first if len(tables) == 1 else f"{first}..{last}"
    return f"small tables [{index}/{count}] ({span}, {len(tables)} tables)"
