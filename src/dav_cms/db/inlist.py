"""``column IN (...)`` with a fixed number of parameters, for statements run on every request.

SQLAlchemy's expanding parameters re-render the SQL of a statement at every
execution (a third of a short look-up's cost). A look-up of a handful of values
instead uses one of a few statements with 1, 2, 4, 8... plain parameters, the
values padded with repeats of the last one, each compiled once and cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, bindparam


def size_for(count: int) -> int:
    """The number of parameters a statement for ``count`` values has (a power of two)."""
    size = 1
    while size < count:
        size *= 2
    return size


def condition(
    column: SQLColumnExpression[Any], size: int, prefix: str = "v"
) -> ColumnElement[bool]:
    """``column IN (:v0, ..., :v{size-1})``."""
    return column.in_([bindparam(f"{prefix}{index}") for index in range(size)])


def parameters(values: Sequence[Any], size: int = 0, prefix: str = "v") -> dict[str, Any]:
    """The parameters of :func:`condition` for ``values`` (at least one), padded to ``size``.

    ``size`` defaults to :func:`size_for` the number of values.
    """
    size = size or size_for(len(values))
    last = len(values) - 1
    return {f"{prefix}{index}": values[min(index, last)] for index in range(size)}
