"""How an operator's failure looks from the test side.

Operators turn a ConfitureError that a retry cannot fix into Airflow's ``AirflowFailException`` (the
task fails at once, without burning retries), raised *from* the original error: tests assert both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest


@contextlib.contextmanager
def raises_step(error_type: type[BaseException], match: str | None = None) -> Iterator[SimpleNamespace]:
    """Like ``pytest.raises(error_type, match=...)`` around an operator's ``execute``: the operator must
    fail without a retry (``AirflowFailException``) caused by ``error_type`` with the same message.
    After the block, ``info.value`` is the ``error_type`` instance."""
    from airflow.sdk.exceptions import AirflowFailException

    info = SimpleNamespace(value=None)
    with pytest.raises(AirflowFailException, match=match) as caught:
        yield info
    cause = caught.value.__cause__
    assert isinstance(cause, error_type), f"expected {error_type.__name__}, got {cause!r}"
    assert str(caught.value) == str(cause)
    info.value = cause


def step_error(error: BaseException) -> BaseException:
    """The Confiture error behind an operator failure (unwrapping ``AirflowFailException``)."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(error, AirflowFailException) and error.__cause__ is not None:
        return error.__cause__
    return error
