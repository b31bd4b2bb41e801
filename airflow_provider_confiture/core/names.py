"""Qualified table names as written in a mapping file.

Names are exact (case-sensitive, never folded to lower case, unlike unquoted SQL): ``legacy.Old Users``
means schema ``legacy`` and table ``Old Users``. A part may be double-quoted to hold a dot or a quote,
with ``""`` for a literal quote: ``"my.schema"."odd""name"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True, order=True)
class QualifiedName:
    """A (schema, name) pair. ``schema`` None means "the default schema of that side"."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: str, default_schema: str | None = None) -> QualifiedName:
        parts = split_qualified(text)
        if len(parts) == 1:
            return cls(default_schema, parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        raise ValueError(f"{text!r} is not a table name: use 'table' or 'schema.table'")

    def with_default_schema(self, schema: str) -> QualifiedName:
        return self if self.schema else QualifiedName(schema, self.name)

    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def __str__(self) -> str:
        def show(part: str) -> str:
            needs_quotes = not part or "." in part or '"' in part or part != part.strip()
            return '"' + part.replace('"', '""') + '"' if needs_quotes else part

        return f"{show(self.schema)}.{show(self.name)}" if self.schema else show(self.name)


def split_qualified(text: str) -> list[str]:
    """Split ``a.b`` into parts, honouring double quotes. Raises ValueError on malformed input."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a table name must be a non-empty string")
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated double quote in {text!r}")
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(text[i])
                i += 1
            part = "".join(buf)
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            part = text[i:j]
            if '"' in part:
                raise ValueError(f"misplaced double quote in {text!r}")
            i = j
        if part == "":
            raise ValueError(f"empty name part in {text!r}")
        parts.append(part)
        if i >= n:
            return parts
        if text[i] != ".":
            raise ValueError(f"unexpected {text[i]!r} in {text!r}")
        i += 1
        if i >= n:
            raise ValueError(f"{text!r} ends with a dot")
