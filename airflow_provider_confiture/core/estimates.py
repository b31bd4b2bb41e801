"""Time estimates for a table load, from throughput measured by ``make bench`` on the reference
machine (2 cores, PostgreSQL 15, both clusters local; see the README's benchmark table).

A load is bounded both by rows (per-row work: parsing, tuple forming, index inserts) and by bytes
(I/O, WAL, hashing); the slower of the two predicts the time. The source's total relation size
(heap + indexes + TOAST) stands in for the bytes moved.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    rows_per_second: float
    bytes_per_second: float

    def seconds(self, rows: int, nbytes: int) -> float:
        return max(max(rows, 0) / self.rows_per_second, max(nbytes, 0) / self.bytes_per_second)


#: Measured throughput per strategy (see README "Benchmarks").
THROUGHPUT: dict[str, Throughput] = {
    "copy": Throughput(rows_per_second=1_400_000, bytes_per_second=80e6),
    "fdw": Throughput(rows_per_second=650_000, bytes_per_second=45e6),
}


def estimate_seconds(strategy: str, rows: int, nbytes: int) -> float:
    return THROUGHPUT[strategy].seconds(rows, nbytes)


def human_rows(n: int) -> str:
    if n < 0:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
    return str(n)


def human_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
