"""Time estimates for a table load, from throughput measured by ``make bench`` on the reference
machine (2 cores, PostgreSQL 15, both clusters local, wal_level=replica; see docs/benchmarks.md).

A load is bounded both by rows (per-row work: parsing, tuple forming, the client's per-row loop) and
by bytes (output and input functions of wide values, WAL, index builds); the slower of the two
predicts the time. The source's total relation size (heap + indexes + TOAST, what analyze reads from
the catalog) stands in for the bytes moved. Whole-table loads, index rebuild included.

Calibration (bench, medians): ``narrow`` (10M rows of bigint+int, 668 MB with its primary key) is
row-bound: COPY ~1.6M rows/s, FDW ~0.9-1.1M rows/s; ``events`` (5M rows with jsonb, text,
timestamptz, numeric; 1.06 GB) is byte-bound: COPY ~95 MB/s, FDW ~48 MB/s. The estimates land
within 2x of the measured time on every benchmark table (docs/benchmarks.md, "analyze estimate").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    rows_per_second: float
    bytes_per_second: float

    def seconds(self, rows: int, nbytes: int) -> float:
        return max(max(rows, 0) / self.rows_per_second, max(nbytes, 0) / self.bytes_per_second)


#: Measured throughput per strategy (docs/benchmarks.md).
THROUGHPUT: dict[str, Throughput] = {
    "copy": Throughput(rows_per_second=1_600_000, bytes_per_second=95e6),
    "fdw": Throughput(rows_per_second=900_000, bytes_per_second=48e6),
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
