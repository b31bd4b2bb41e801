"""Box-drawn tables for task logs (analyze and verify print theirs this way)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (wide characters such as ⚡ take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def box_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(display_width(r[i]) for r in cells) for i in range(len(headers))]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(values: Sequence[str]) -> str:
        return (
            "│"
            + "│".join(
                " " + v + " " * (w - display_width(v)) + " " for v, w in zip(values, widths, strict=True)
            )
            + "│"
        )

    out = [line("┌", "┬", "┐"), row(cells[0]), line("├", "┼", "┤")]
    out += [row(r) for r in cells[1:]]
    out.append(line("└", "┴", "┘"))
    return "\n".join(out)
