"""Fixtures of the engine tests (tests/core); the helpers themselves live in ``engine_helpers``."""

from __future__ import annotations

from engine_helpers import connect  # noqa: F401 - re-exported as a fixture
