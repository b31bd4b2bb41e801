"""Exceptions raised by the migration engine.

Every error says *where* (file, entry, table, column) and *what to do*, because the person reading it
is looking at an Airflow task log, not at our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfitureError(Exception):
    """Base class of every error raised on purpose by this provider.

    ``retryable`` says whether running the same step again can succeed without anyone changing
    anything: a lost connection, a timeout or a lock wait can heal; a bad mapping, a constraint the
    data violates or a missing privilege cannot. The operators turn a non-retryable error into a
    failure that does not burn the task's retries (Airflow's ``AirflowFailException``).
    """

    #: Default for the class; an instance may say otherwise (``retryable=`` keyword).
    retryable: bool = False

    def __init__(self, *args: object, retryable: bool | None = None) -> None:
        super().__init__(*args)
        if retryable is not None:
            self.retryable = retryable


class ConnectionFailedError(ConfitureError):
    """A database named by an Airflow connection could not be reached or refused the login."""

    retryable = True


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
        self.retryable = False
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


class TargetWrittenError(MigrationError):
    """A target table took writes that are not the migration's since its last load (the application
    is using the new database): reloading it would destroy them. Raised before anything changes;
    ``overwrite_target_writes`` overwrites on purpose (rehearsal targets)."""

    retryable = False


class VerificationError(ConfitureError):
    """Source and target differ after migration (reloading the table, not retrying verify, fixes it)."""


class CleanupError(ConfitureError):
    """Cleanup refused to run, to protect objects a user built on the foreign schema."""


class CaptureError(ConfitureError):
    """Capturing the source's writes (catch-up) cannot start or cannot go on safely."""


def did_you_mean(word: object, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (also tried case- and space-folded), or ``""``."""
    if not isinstance(word, str):
        return ""
    options = list(choices)
    match = difflib.get_close_matches(word, options, n=1, cutoff=cutoff) or difflib.get_close_matches(
        word.strip().lower(), options, n=1, cutoff=cutoff
    )
    return f"; did you mean {match[0]!r}?" if match else ""
