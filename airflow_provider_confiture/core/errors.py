"""Exceptions raised by the migration engine.

Every error says *where* (file, entry, table, column) and *what to do*, because the person reading it
is looking at an Airflow task log, not at our code.
"""

from __future__ import annotations


class ConfitureError(Exception):
    """Base class of every error raised on purpose by this provider."""


class ConnectionFailedError(ConfitureError):
    """A database named by an Airflow connection could not be reached or refused the login."""


class MappingError(ConfitureError):
    """The column-mapping YAML (or a one-table mapping string) is invalid.

    Raised while loading or resolving the mapping, always before any data moves.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        entry: str | None = None,
        key: str | None = None,
    ) -> None:
        self.source = source
        self.entry = entry
        self.key = key
        where = []
        if source:
            where.append(str(source))
        if entry is not None:
            where.append(f"entry {entry!r}")
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(f"{': '.join([', '.join(where)] if where else [])}{': ' if where else ''}{message}")


class PlanError(ConfitureError):
    """The mapping does not fit the real source and target databases (unknown table/column, bad type...)."""


class SetupError(ConfitureError):
    """The target database or the postgres_fdw link could not be prepared."""


class MigrationError(ConfitureError):
    """Loading a table failed; the table's transaction was rolled back (the table is untouched)."""


class VerificationError(ConfitureError):
    """Source and target differ after migration."""


class CleanupError(ConfitureError):
    """Cleanup refused to run, to protect objects a user built on the foreign schema."""
