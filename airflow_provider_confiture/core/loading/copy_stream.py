"""Stream ``COPY ... TO STDOUT`` on one connection into ``COPY ... FROM STDIN`` on another.

The byte stream is never decoded in Python, memory stays bounded (about two blocks of
``BLOCK_SIZE``) whatever the table size, and both
servers work at the same time, each on its own core. Works with psycopg 3 and psycopg2 connections
on either side.

Why two ways of pumping (measured by ``make bench``, see docs/benchmarks.md):

* **psycopg 3 on both sides** (what ``PostgresHook`` hands out): one thread drives both connections
  at the libpq level, non-blocking. The server sends one COPY message per row, and psycopg's
  ``Copy`` iterator spends ~1 us of Python per row (it caps a narrow table at ~1M rows/s and eats
  the CPU the target server needs on a 2-core worker); reading ``pgconn.get_copy_data`` directly
  into a gather buffer and handing the target ``put_copy_data`` blocks of up to ``BLOCK_SIZE``
  costs a fraction of that, with no thread hand-off, no extra copy through a pipe, and no GIL
  contention between two busy threads.
* **psycopg2 on either side**: psycopg2 only streams through file objects (``copy_expert``), so the
  source side runs in a thread writing into an OS pipe, and the target side reads the pipe in
  blocks. psycopg2's per-row loop is in C; a psycopg 3 side still uses the libpq-level loop.

Failure rules, because a half-loaded table must never be committed:

* this function never commits; any failure raises, and the caller rolls the target back;
* a source error ends the target's COPY with an error (psycopg 3) or end-of-data (psycopg2), and
  is raised here, so the caller never commits a truncated stream;
* a target error stops the source side (cancel), and the target's error is the one raised. A
  server-side error of the target's COPY (a NOT NULL or CHECK violation) only reaches libpq when the
  COPY ends, so the rest of the source is still read first; a broken target connection stops at once;
* no progress for ``stall_timeout`` seconds (a network black hole) shuts both sockets down, so the
  task fails with a clear message instead of hanging forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import psycopg

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import MigrationError

#: Largest block handed to the target at once, and the pipe's capacity (psycopg2 paths).
BLOCK_SIZE = 1 << 20
#: Seconds a wait on a socket lasts before the loop looks again (the watchdog may have fired).
_POLL_SECONDS = 1.0
_F_SETPIPE_SZ = 1031


@dataclass
class CopyStats:
    rows: int
    bytes: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int | None, float], None]  # (bytes, rows or None, elapsed seconds)


class _Moved:
    """Bytes moved so far, read by the watchdog thread (plain ints: updates are atomic enough)."""

    def __init__(self) -> None:
        self.received = 0  # taken from the source
        self.sent = 0  # handed to the target

    @property
    def total(self) -> int:
        return self.received + self.sent


# ------------------------------------------------------------------------ libpq level (psycopg 3)
def _wait(read_fd: int | None, write_fd: int | None) -> bool:
    """Wait until ``read_fd`` is readable or ``write_fd`` writable, at most _POLL_SECONDS.

    poll(), not select(): a long-lived worker process may hold file descriptors above 1024.
    """
    poller = select.poll()
    if read_fd is not None and read_fd == write_fd:
        poller.register(read_fd, select.POLLIN | select.POLLOUT)
    else:
        if read_fd is not None:
            poller.register(read_fd, select.POLLIN)
        if write_fd is not None:
            poller.register(write_fd, select.POLLOUT)
    return bool(poller.poll(_POLL_SECONDS * 1000))


#: Rows taken from libpq between two checks of the gather buffer's size (the per-row check costs as
#: much as the row); a row bigger than BLOCK_SIZE / _BATCH ends the batch early, so a batch never
#: overshoots the buffer by more than BLOCK_SIZE (plus one big row).
_BATCH = 256
_BATCH_ROW = BLOCK_SIZE // _BATCH


def _drain(get: Callable[[int], tuple[int, Any]], buf: bytearray) -> int:
    """Append the rows libpq already holds to ``buf`` until it reaches BLOCK_SIZE.

    Returns the last ``get_copy_data`` status: > 0 the buffer is full, 0 libpq needs more input,
    -1 the COPY has ended. This loop is the per-row cost of the whole stream: keep it minimal.
    """
    nbytes = 1
    while len(buf) < BLOCK_SIZE:
        for _ in repeat(None, _BATCH):
            nbytes, data = get(1)
            if nbytes <= 0:
                return nbytes
            buf += data
            if nbytes > _BATCH_ROW:
                break
    return nbytes


def _copy_out_rows(conn: psycopg.Connection[Any]) -> int:
    """After ``get_copy_data`` returned -1: collect the COPY's final result; raise a server error."""
    from psycopg import pq
    from psycopg.errors import error_from_result

    pgconn = conn.pgconn
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        _wait(pgconn.socket, None)
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    for result in results:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise error_from_result(result, encoding=conn.info.encoding)
    return int(results[-1].command_tuples or 0) if results else -1


def _pump_libpq(
    source_conn: psycopg.Connection[Any],
    copy_out_query: Any,
    target_conn: psycopg.Connection[Any],
    copy_in_query: Any,
    moved: _Moved,
) -> tuple[int, int]:
    """psycopg 3 on both sides: one non-blocking loop; returns (rows sent, rows received).

    psycopg's ``Copy`` objects start both COPYs and end them (the target's end, error or success,
    goes through ``Copy.__exit__``, which also aborts the target's COPY and cancels the source's if
    anything here raises); only the data moves at the libpq level.
    """
    with dbapi.cursor(source_conn) as source_cur, dbapi.cursor(target_conn) as target_cur:
        with source_cur.copy(copy_out_query), target_cur.copy(copy_in_query) as copy_in:
            src, tgt = source_conn.pgconn, target_conn.pgconn
            get, put, flush = src.get_copy_data, tgt.put_copy_data, tgt.flush
            src_fd, tgt_fd = src.socket, tgt.socket
            buf = bytearray()
            first = True  # the first block goes through Copy.write (it then knows data was sent)
            ended = pending = False  # source finished; target still has unflushed bytes
            nbytes = 1
            while True:
                if not ended:
                    held = len(buf)
                    nbytes = _drain(get, buf)  # everything libpq already holds, up to one block
                    moved.received += len(buf) - held
                    ended = nbytes < 0
                if pending:
                    pending = flush() == 1
                if buf and not pending and (ended or nbytes == 0 or len(buf) >= BLOCK_SIZE):
                    size = len(buf)
                    if first:
                        copy_in.write(buf)
                        first = False
                    else:
                        put(buf)
                    buf = bytearray()
                    moved.sent += size
                    pending = flush() == 1
                if ended and not buf and not pending:
                    break
                want_read = not ended and len(buf) < BLOCK_SIZE
                if _wait(src_fd if want_read else None, tgt_fd if pending else None) and want_read:
                    src.consume_input()
            sent = _copy_out_rows(source_conn)
        received = target_cur.rowcount
    return sent, received


def _write_all(fd: int, data: bytearray) -> None:
    """os.write() may write part of a block when a signal arrives: write the rest."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    view.release()


def _copy_out_libpq(conn: psycopg.Connection[Any], query: Any, fd: int, moved: _Moved) -> int:
    """psycopg 3 source into a pipe: gather rows into blocks, write a block whenever libpq runs dry."""
    with dbapi.cursor(conn) as cur, cur.copy(query):
        pgconn = conn.pgconn
        get, sock = pgconn.get_copy_data, pgconn.socket
        buf = bytearray()
        while True:
            nbytes = _drain(get, buf)
            if buf:  # a full block, or all there is for now: the target should not wait for more
                moved.received += len(buf)
                _write_all(fd, buf)
                buf.clear()
            if nbytes < 0:
                break
            if nbytes == 0 and _wait(sock, None):
                pgconn.consume_input()
        return _copy_out_rows(conn)


# ----------------------------------------------------------------- pipe + thread (psycopg2 sides)
class _PipeReader:
    """File-like reader over the pipe that counts bytes (psycopg2's copy_expert calls ``read``)."""

    def __init__(self, fd: int, moved: _Moved) -> None:
        self.fd = fd
        self.moved = moved

    def read(self, size: int = BLOCK_SIZE) -> bytes:
        data = os.read(self.fd, size if size and size > 0 else BLOCK_SIZE)
        self.moved.sent += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - psycopg2 only calls read()
        return self.read(size)


def _copy_out_to_pipe(conn: Connection, query: Any, writer: Any, moved: _Moved) -> int:
    if dbapi.is_psycopg3(conn):
        return _copy_out_libpq(conn, query, writer.fileno(), moved)
    with dbapi.cursor(conn) as cur:
        # psycopg2 calls writer.write() once per row, in C: the buffered writer keeps that cheap.
        cur.copy_expert(dbapi.render(conn, query), writer)
        writer.flush()
        return int(cur.rowcount)


def _copy_in_from_pipe(conn: Connection, query: Any, reader: _PipeReader) -> int:
    with dbapi.cursor(conn) as cur:
        if dbapi.is_psycopg3(conn):
            with cur.copy(query) as cp:
                read, write = reader.read, cp.write
                while data := read(BLOCK_SIZE):
                    write(data)
        else:
            cur.copy_expert(dbapi.render(conn, query), reader, size=BLOCK_SIZE)
        return int(cur.rowcount)


def _pipe_is_empty(fd: int) -> bool:
    with contextlib.suppress(OSError):
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little") == 0
    return False


def _pump_threaded(
    source_conn: Connection,
    copy_out_query: Any,
    target_conn: Connection,
    copy_in_query: Any,
    moved: _Moved,
    idle_hooks: list[Callable[[], None]],
) -> tuple[int, int]:
    """A psycopg2 side: the source writes an OS pipe from a thread, the target reads it here."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, BLOCK_SIZE)
    writer = os.fdopen(write_fd, "wb", buffering=BLOCK_SIZE)
    reader = _PipeReader(read_fd, moved)
    source_result: dict[str, Any] = {}

    def flush_idle_writer() -> None:
        # A slow but live psycopg2 source fills the buffered writer slowly, and the target sees
        # nothing until it is full: when the pipe runs dry, push what is buffered (never blocks:
        # an empty pipe holds a whole buffer).
        if _pipe_is_empty(read_fd):
            with contextlib.suppress(Exception):
                writer.flush()

    def run_source() -> None:
        try:
            source_result["rows"] = _copy_out_to_pipe(source_conn, copy_out_query, writer, moved)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            source_result["error"] = exc
        finally:
            with contextlib.suppress(OSError, ValueError):
                writer.close()  # end of data for the target side

    if not dbapi.is_psycopg3(source_conn):
        idle_hooks.append(flush_idle_writer)
    source_thread = threading.Thread(target=run_source, name="confiture-copy-out", daemon=True)
    source_thread.start()
    target_error: BaseException | None = None
    target_rows = -1
    stopped_source = False  # the target failed first: the source's error, if any, is our doing
    try:
        target_rows = _copy_in_from_pipe(target_conn, copy_in_query, reader)
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the source side is stopped
        target_error = exc
        stopped_source = "error" not in source_result and source_thread.is_alive()
    finally:
        idle_hooks.clear()
        os.close(read_fd)  # a source still writing gets EPIPE and stops
        if stopped_source:
            with contextlib.suppress(Exception):
                source_conn.cancel()  # type: ignore[attr-defined]  # both drivers have it
        source_thread.join()
    source_error = source_result.get("error")
    if stopped_source and target_error is not None:
        raise target_error  # not the "canceling statement" / broken pipe it caused on the source
    if source_error is not None:
        raise source_error
    if target_error is not None:
        raise target_error
    return source_result.get("rows", -1), target_rows


# ------------------------------------------------------------------------------------ entry point
def stream_copy(
    source_conn: Connection,
    copy_out_query: Any,
    target_conn: Connection,
    copy_in_query: Any,
    *,
    progress: ProgressCallback | None = None,
    progress_interval: float = 10.0,
    rows_probe: Callable[[], int | None] | None = None,
    stall_timeout: float = 600.0,
) -> CopyStats:
    """Copy the source query's rows into the target; return rows, bytes and seconds.

    Raises MigrationError (or the driver's error) if either side fails or the stream stalls; the
    target transaction then holds a failed or partial COPY and must be rolled back by the caller.
    """
    moved = _Moved()
    idle_hooks: list[Callable[[], None]] = []
    done = threading.Event()
    stalled: list[float] = []
    started = time.monotonic()

    def watch() -> None:
        last_moved, last_change, last_report = -1, time.monotonic(), time.monotonic()
        while not done.wait(1.0):
            now = time.monotonic()
            if moved.total != last_moved:  # progress on either side is progress
                last_moved, last_change = moved.total, now
            else:
                for hook in list(idle_hooks):
                    hook()
                if now - last_change >= stall_timeout:
                    stalled.append(now - last_change)
                    dbapi.shutdown_socket(source_conn)
                    dbapi.shutdown_socket(target_conn)
                    return
            if progress is not None and now - last_report >= progress_interval:
                last_report = now
                rows = None
                if rows_probe is not None:
                    with contextlib.suppress(Exception):
                        rows = rows_probe()
                progress(moved.sent, rows, now - started)

    watcher = threading.Thread(target=watch, name="confiture-copy-watch", daemon=True)
    watcher.start()
    try:
        if dbapi.is_psycopg3(source_conn) and dbapi.is_psycopg3(target_conn):
            source_rows, target_rows = _pump_libpq(
                source_conn, copy_out_query, target_conn, copy_in_query, moved
            )
        else:
            source_rows, target_rows = _pump_threaded(
                source_conn, copy_out_query, target_conn, copy_in_query, moved, idle_hooks
            )
    except BaseException:
        if stalled:
            raise _stall_error(stalled[0]) from None
        raise
    finally:
        done.set()
        watcher.join()
    if stalled:
        raise _stall_error(stalled[0])
    seconds = time.monotonic() - started
    if source_rows >= 0 and target_rows >= 0 and source_rows != target_rows:
        raise MigrationError(f"source sent {source_rows} rows but target received {target_rows}")
    return CopyStats(rows=max(source_rows, target_rows), bytes=moved.sent, seconds=seconds)


def _stall_error(seconds: float) -> MigrationError:
    return MigrationError(
        f"the copy stalled: no data moved for {seconds:.0f} s (stall_timeout), so both connections "
        "were closed. Check the network between the worker and the databases, then retry the table",
        retryable=True,
    )
