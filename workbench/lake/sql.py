"""SQL building helpers: identifiers and literals are always made by sqlglot.

User-supplied values (enum values, patterns, ranges) never reach SQL by string pasting:
they go through :func:`lit`, which builds a sqlglot literal and renders it for the dialect.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlglot.expressions as exp

DIALECT = "duckdb"


def ident(name: str, dialect: str = DIALECT) -> str:
    """A quoted identifier."""
    return exp.to_identifier(name, quoted=True).sql(dialect)


def literal(value: object) -> exp.Expression:
    """A sqlglot literal expression for a Python value (str, int, float, Decimal, bool,
    None, date, datetime; naive datetimes are UTC)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | Decimal):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        v = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return exp.Cast(
            this=exp.Literal.string(v.isoformat()), to=exp.DataType.build("TIMESTAMPTZ")
        )
    if isinstance(value, dt.date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("DATE"))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def lit(value: object, dialect: str = DIALECT) -> str:
    """A SQL literal for a Python value, rendered for ``dialect`` (see :func:`literal`)."""
    return literal(value).sql(dialect)


def lit_list(values: list[object], dialect: str = DIALECT) -> str:
    """A list literal ``[a, b, c]`` for DuckDB (a tuple ``(a, b, c)`` elsewhere)."""
    items = ", ".join(lit(v, dialect) for v in values)
    return f"[{items}]" if dialect == "duckdb" else f"({items})"


__all__ = ["DIALECT", "ident", "lit", "lit_list", "literal"]
