"""Transforms and ``where`` filters: SQL by design, but only ever one expression inside our query.

A mapping's ``transform`` and ``where`` are embedded, in parentheses, in the one statement that reads
the source (and in the EXPLAIN that checks it). Drivers send a statement without parameters through
PostgreSQL's simple query protocol, which runs every ``;``-separated statement of the string. So a
fragment such as ``'x') FROM t; COMMIT; DROP TABLE important; --`` would close our parenthesis, end
our statement and run its own, even during validation. This module reads a fragment the way the
server's lexer does (string literals, quoted identifiers, dollar quotes, nested comments) and refuses
one that could escape its parentheses: a ``;`` outside quotes, a ``)`` it did not open, an unclosed
``(``, quote or comment. A refused fragment never reaches a server.

Backslashes in ordinary string literals mean different things depending on the server's
``standard_conforming_strings``; a fragment must be safe under both readings.
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]")


def problem(text: str) -> str | None:
    """Why ``text`` is not one self-contained SQL expression (None when it is)."""
    for standard_strings in (True, False):
        found = _scan(text, standard_strings)
        if found:
            return found
    return None


def _scan(text: str, standard_strings: bool) -> str | None:
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = text.find("\n", i)
            if end < 0:
                return "it ends inside a '--' comment, which would swallow the rest of the statement"
            i = end + 1
            continue
        if ch == "/" and nxt == "*":
            i, nesting = i + 2, 1
            while nesting:
                if i >= n:
                    return "a '/*' comment is never closed"
                if text.startswith("/*", i):
                    nesting, i = nesting + 1, i + 2
                elif text.startswith("*/", i):
                    nesting, i = nesting - 1, i + 2
                else:
                    i += 1
            continue
        if ch == "'":
            escapes = not standard_strings or (
                i > 0 and text[i - 1] in "eE" and not _ident_before(text, i - 1)
            )
            i = _end_of_quoted(text, i, "'", escapes)
            if i < 0:
                return "a string literal (') is never closed"
            continue
        if ch == '"':
            i = _end_of_quoted(text, i, '"', False)
            if i < 0:
                return 'a quoted identifier (") is never closed'
            continue
        if ch == "$" and not _ident_before(text, i):
            tag = _DOLLAR_TAG.match(text, i)
            if tag:
                close = text.find(tag.group(0), tag.end())
                if close < 0:
                    return f"a dollar-quoted string ({tag.group(0)}) is never closed"
                i = close + len(tag.group(0))
                continue
        if ch == ";":
            return "it contains ';' outside quotes, which would end the statement and start another"
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return "it closes a parenthesis it did not open, which would end the expression around it"
        i += 1
    if depth:
        return f"it leaves {depth} parenthesis(es) open"
    return None


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and bool(_IDENT_CHAR.match(text[i - 1]))


def _end_of_quoted(text: str, start: int, quote: str, backslash_escapes: bool) -> int:
    """Index just past the closing quote of the literal opening at ``start``; -1 if never closed."""
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:  # doubled quote: a literal quote character
                i += 2
                continue
            return i + 1
        i += 1
    return -1
