"""Stream ``COPY ... TO STDOUT`` on one connection into ``COPY ... FROM STDIN`` on another.

The source side runs in a thread and writes into an OS pipe; the target side reads the pipe in
blocks. Memory stays bounded by the pipe and one block whatever the table size (the original tool
buffered the whole table in memory), both servers work at the same time on two cores, and the byte
stream is never decoded in Python. Works with psycopg 3 and psycopg2 connections on either side.

Failure rules, because a half-loaded table must never be committed:

* a source error makes the target side see end-of-data, so the caller MUST check the result's
  error (this function raises it) before committing; it never commits anything itself;
* a target error closes the pipe, which stops the source side;
* no progress for ``stall_timeout`` seconds (a network black hole) shuts both sockets down, so the
  task fails with a clear message instead of hanging forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_confiture.core import dbapi
from airflow_provider_confiture.core.errors import MigrationError

#: Bytes the target side asks the pipe for at a time.
BLOCK_SIZE = 1 << 20
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


class _PipeReader:
    """File-like reader over the pipe that counts bytes (psycopg2's copy_expert calls ``read``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.bytes = 0

    def read(self, size: int = BLOCK_SIZE) -> bytes:
        data = os.read(self.fd, size if size and size > 0 else BLOCK_SIZE)
        self.bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - psycopg2 only calls read()
        return self.read(size)


class _CountingWriter:
    """Counts the bytes the source side hands to the (buffered) pipe writer.

    The writer buffers up to BLOCK_SIZE before the target side sees anything, so a slow but live
    source (a selective filter over a big table) could go a long time without the reader's count
    moving: the stall watchdog must also see the bytes arriving from the source.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.bytes = 0

    def write(self, data: Any) -> Any:
        self.bytes += len(data)
        return self.sink.write(data)


def _copy_out(conn: Any, query: Any, sink: Any) -> int:
    with dbapi.cursor(conn) as cur:
        if dbapi.is_psycopg3(conn):
            with cur.copy(query) as cp:
                write = sink.write
                for block in cp:
                    write(block)
        else:
            cur.copy_expert(dbapi.render(conn, query), sink)
        return cur.rowcount


def _copy_in(conn: Any, query: Any, reader: _PipeReader) -> int:
    with dbapi.cursor(conn) as cur:
        if dbapi.is_psycopg3(conn):
            with cur.copy(query) as cp:
                read, write = reader.read, cp.write
                while data := read(BLOCK_SIZE):
                    write(data)
        else:
            cur.copy_expert(dbapi.render(conn, query), reader, size=BLOCK_SIZE)
        return cur.rowcount


def _shutdown(conn: Any) -> None:
    """Break a connection stuck on the network: shutting the socket down wakes any blocked call."""
    with contextlib.suppress(Exception):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def stream_copy(
    source_conn: Any,
    copy_out_query: Any,
    target_conn: Any,
    copy_in_query: Any,
    *,
    progress: ProgressCallback | None = None,
    progress_interval: float = 10.0,
    rows_probe: Callable[[], int | None] | None = None,
    stall_timeout: float = 600.0,
) -> CopyStats:
    """Copy the source query's rows into the target; return rows, bytes and seconds.

    Raises MigrationError (or the driver's error) if either side fails or the stream stalls; the
    target transaction then holds a partial COPY and must be rolled back by the caller.
    """
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, BLOCK_SIZE)
    writer = os.fdopen(write_fd, "wb", buffering=BLOCK_SIZE)
    reader = _PipeReader(read_fd)
    counting = _CountingWriter(writer)
    source_result: dict[str, Any] = {}
    done = threading.Event()
    stalled: list[float] = []

    def run_source() -> None:
        try:
            source_result["rows"] = _copy_out(source_conn, copy_out_query, counting)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            source_result["error"] = exc
        finally:
            with contextlib.suppress(OSError):
                writer.close()  # end of data for the target side

    def watch() -> None:
        last_bytes, last_change, last_report = -1, time.monotonic(), time.monotonic()
        while not done.wait(1.0):
            now = time.monotonic()
            moved = reader.bytes + counting.bytes  # progress on either side is progress
            if moved != last_bytes:
                last_bytes, last_change = moved, now
            elif now - last_change >= stall_timeout:
                stalled.append(now - last_change)
                _shutdown(source_conn)
                _shutdown(target_conn)
                return
            if progress is not None and now - last_report >= progress_interval:
                last_report = now
                rows = None
                if rows_probe is not None:
                    with contextlib.suppress(Exception):
                        rows = rows_probe()
                progress(reader.bytes, rows, now - started)

    started = time.monotonic()
    source_thread = threading.Thread(target=run_source, name="confiture-copy-out", daemon=True)
    watcher = threading.Thread(target=watch, name="confiture-copy-watch", daemon=True)
    source_thread.start()
    watcher.start()
    target_error: BaseException | None = None
    target_rows = -1
    stopped_source = False  # the target failed first: the source's error, if any, is our doing
    try:
        target_rows = _copy_in(target_conn, copy_in_query, reader)
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the source side is stopped
        target_error = exc
        stopped_source = "error" not in source_result and source_thread.is_alive()
    finally:
        os.close(read_fd)  # a source still writing gets EPIPE and stops
        if stopped_source:
            with contextlib.suppress(Exception):
                source_conn.cancel()
        source_thread.join()
        done.set()
        watcher.join()
    seconds = time.monotonic() - started

    if stalled:
        raise MigrationError(
            f"the copy stalled: no data moved for {stalled[0]:.0f} s (stall_timeout), so both connections "
            "were closed. Check the network between the worker and the databases, then retry the table"
        )
    source_error = source_result.get("error")
    if stopped_source and target_error is not None:
        raise target_error  # not the "canceling statement" / broken pipe it caused on the source
    if source_error is not None:
        raise source_error
    if target_error is not None:
        raise target_error
    source_rows = source_result.get("rows", -1)
    if source_rows >= 0 and target_rows >= 0 and source_rows != target_rows:
        raise MigrationError(f"source sent {source_rows} rows but target received {target_rows}")
    return CopyStats(rows=max(source_rows, target_rows), bytes=reader.bytes, seconds=seconds)
