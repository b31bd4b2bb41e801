"""Helpers shared by the reliability and security suite (tests/reliability).

Every test here breaks something for real on the two session clusters (or on an extra cluster it
starts itself): a backend terminated, a server stopped, a worker killed, a network black hole, a
typo in the mapping. The helpers build one small table whose stream can be slowed down on purpose
(``SLOW_MAPPING``: a ``where`` filter that sleeps a millisecond per row and is always true), so a
fault lands in the middle of a copy of a few thousand rows instead of needing millions.

Test modules reach the plain functions below through the ``rel`` fixture, because two ``conftest.py``
files cannot both be imported by name.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from psycopg import sql

from airflow_provider_confiture.core.link import fdw
from airflow_provider_confiture.core.planning import plan_migration
from airflow_provider_confiture.core.planning.mapping import Mapping, parse_mapping_text
from airflow_provider_confiture.core.planning.plan import PlanOptions, TablePlan

ROWS = 2000
ITEMS_SOURCE_DDL = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, note text);"
    "INSERT INTO items SELECT g, 'item ' || g, g % 97, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g || {pad} END "
    "FROM generate_series(1, {rows}) g;"
    "ANALYZE items;"
)
ITEMS_TARGET_DDL = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, note text);"
    "CREATE INDEX items_qty ON items (qty);"
)
#: Rows already in the target before a failing load: they must be there, unchanged, afterwards.
SENTINEL_ROWS = "INSERT INTO items VALUES (-1, 'sentinel a', 1, 'keep'), (-2, 'sentinel b', 2, NULL);"

PLAIN_MAPPING = "items: {source_table: items}\n"
#: About 1.1 ms per row (pg_sleep rounds up) on whichever server evaluates the filter: the source for
#: COPY (it is part of the source query), the target for FDW (postgres_fdw never ships a volatile
#: function to the remote server).
SLOW_MAPPING = 'items:\n  source_table: items\n  where: "pg_sleep(0.0005) IS NOT NULL"\n'


@pytest.fixture
def rel() -> SimpleNamespace:
    """This module's helpers (``rel.create_items(...)``...). Built from ``globals()``: every
    ``conftest.py`` is imported under the same module name, so ``sys.modules`` may hold another one."""
    return SimpleNamespace(**globals())


# --------------------------------------------------------------------------------------- data and plans
def create_items(
    source_db: Any, target_db: Any, rows: int = ROWS, sentinels: bool = True, wide: bool = False
) -> None:
    """``items`` on both sides. ``wide`` rows (~3 KB) fill the worker's 1 MB buffer every few hundred
    rows, so the target's COPY is itself mid-stream, not only the source's."""
    pad = "repeat('.', 3000)" if wide else "''"
    source_db.execute(ITEMS_SOURCE_DDL.format(rows=int(rows), pad=pad))
    target_db.execute(ITEMS_TARGET_DDL)
    if sentinels:
        target_db.execute(SENTINEL_ROWS)


def as_mapping(text: str | Mapping | None) -> Mapping:
    if text is None:
        return Mapping((), None)
    if isinstance(text, Mapping):
        return text
    return parse_mapping_text(text, "mapping.yaml")


def plan_for(
    source_conn: Any,
    target_conn: Any,
    table: str,
    mapping: str | Mapping | None = None,
    options: PlanOptions | None = None,
) -> TablePlan:
    result, _ = plan_migration(
        source_conn, target_conn, as_mapping(mapping), options or PlanOptions(), [table]
    )
    return result.get(table)


def fdw_link(
    source_db: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    fetch_size: int = 100,
) -> fdw.FdwLink:
    """A link to ``source_db`` (superuser by default). A small fetch_size keeps FDW loads in many round
    trips, so a fault can land between two of them."""
    if user is None:
        user, password = source_db.cluster.superuser, source_db.cluster.password
    return fdw.FdwLink(
        host=host or source_db.host,
        port=int(port or source_db.port),
        dbname=source_db.dbname,
        user=user,
        password=password,
        fetch_size=fetch_size,
    )


def link_up(
    source_conn: Any,
    target_conn: Any,
    link: fdw.FdwLink,
    mapping: str | Mapping | None = None,
    options: PlanOptions | None = None,
) -> None:
    """The setup step's link part (extension, server, user mapping, foreign tables)."""
    options = options or PlanOptions()
    result, source_catalog = plan_migration(source_conn, target_conn, as_mapping(mapping), options)
    fdw.setup_link(target_conn, link, result.plans, source_catalog, options)


def table_text(db: Any, table: str = "items", order_by: str = "id") -> list[str]:
    """Every row of ``table`` as text, ordered (exact before/after comparisons)."""
    rows = db.execute(
        sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
            sql.Identifier(table), sql.Identifier(order_by)
        )
    )
    return [r[0] for r in rows or []]


def assert_target_equals_source(source_db: Any, target_db: Any, table: str = "items") -> None:
    src, tgt = table_text(source_db, table), table_text(target_db, table)
    assert len(tgt) == len(src), (len(src), len(tgt))
    assert tgt == src
    ids = target_db.execute(
        sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(sql.Identifier(table))
    )
    assert ids[0][0] == ids[0][1], "duplicated keys"


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def copy_progress(db: Any, table: str | None = "items") -> int:
    """Rows a running COPY in ``db``'s database has processed so far (0 when none is running).

    ``table`` names the relation of a ``COPY table FROM`` (target side); None counts any COPY, such as
    the source's ``COPY (SELECT ...) TO STDOUT`` (no relation). The source side is the one to watch
    mid-stream: the worker gathers up to a megabyte before the target sees the first row.
    """
    rows = db.execute(
        "SELECT coalesce(max(p.tuples_processed), 0) FROM pg_stat_progress_copy p "
        "WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND (%s::text IS NULL OR p.relid = to_regclass(quote_ident(%s::text)))",
        (table, table),
    )
    return int(rows[0][0])


def sessions(db: Any, where: str = "true", params: Any = None) -> list[tuple]:
    """(pid, application_name, state, backend_xid, query) of other sessions on ``db``'s database."""
    return (
        db.execute(
            sql.SQL(
                "SELECT pid, application_name, state, backend_xid::text, query FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND {}"
            ).format(sql.SQL(where)),  # noqa: S608 - test-only filters written in this suite
            params,
        )
        or []
    )


def terminate(db: Any, pid: int) -> None:
    assert db.execute("SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]


# --------------------------------------------------------------------------------------- network
class BlackHoleProxy:
    """A TCP proxy on 127.0.0.1 that forwards to ``(host, port)`` until :meth:`black_hole` is called,
    then keeps every socket open but forwards nothing more (a silent network partition: the kernel
    still acknowledges packets, so TCP keepalives alone would never notice)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.host = "127.0.0.1"
        self._holed = threading.Event()
        self._closed = threading.Event()
        self.bytes_forwarded = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="blackhole-accept", daemon=True).start()

    def black_hole(self) -> None:
        self._holed.set()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if self._holed.is_set():
                    self._closed.wait()  # swallow it and everything after it
                    return
                dst.sendall(data)
                self.bytes_forwarded += len(data)
        except OSError:
            pass
        finally:
            if not self._holed.is_set():
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        for s in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                s.close()


# --------------------------------------------------------------------------------------- roles
@pytest.fixture
def make_role() -> Iterator[Callable[..., tuple[str, str]]]:
    """``make_role(db, *grants, login=True) -> (name, password)``: a non-superuser role on ``db``'s cluster
    with a distinctive password; ``grants`` are SQL run in ``db`` with ``{role}`` for its quoted name.
    Dropped at teardown, with whatever it owns in the databases it was made for."""
    made: list[tuple[Any, str]] = []

    def make(db: Any, *grants: str, prefix: str = "rel") -> tuple[str, str]:
        import secrets

        name = f"{prefix}_{secrets.token_hex(4)}"
        password = f"pw-{prefix}-{secrets.token_urlsafe(12)}"
        db.cluster.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )
        made.append((db, name))
        for grant in grants:
            db.execute(sql.SQL(grant).format(role=sql.Identifier(name)))
        return name, password

    yield make
    for db, name in reversed(made):
        role = sql.Identifier(name)
        with contextlib.suppress(Exception):
            db.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER; DROP OWNED BY {}").format(role, role))
        with contextlib.suppress(Exception):
            db.cluster.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
