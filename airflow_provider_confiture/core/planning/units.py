"""The contract between analyze and the per-table tasks: one load unit per mapped task instance.

A unit is a whole table, or one key range ``table [k/n]`` of a large one. It travels as JSON through
XCom (Airflow maps the per-table task group over analyze's list of units), so it is a ``TypedDict``:
typed for the code on both ends, a plain dict on the wire.
"""

from __future__ import annotations

from typing import Any, TypedDict


class KeyRangeDict(TypedDict):
    """:class:`ranges.KeyRange` as JSON."""

    source_column: str
    target_column: str
    lower: int | None
    upper: int | None
    index: int
    count: int


class LoadUnit(TypedDict):
    #: Mapping entry key (or target table name) of the table.
    table: str
    #: What the UI shows for the mapped task instance: the table's label, ``users [2/3]`` for a part.
    label: str
    #: The strategy analyze chose (``fdw`` or ``copy``); the load re-checks it against the live catalogs.
    strategy: str
    #: The part's key range, or None for the whole table.
    key_range: KeyRangeDict | None


def unit_table(unit: LoadUnit | dict[str, Any] | None) -> str | None:
    """The table a unit (or a unit-like dict from XCom) names, or None."""
    return str(unit["table"]) if unit and unit.get("table") else None
