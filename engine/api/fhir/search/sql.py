"""The SQL of a search: counts, existence checks and the page statements, in id order or
in a sort order with the id as the last key (keyset paging: no OFFSET, so a page costs the
same at the end of the list as at the start)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select

SortKeys = list[tuple[Any, bool]]  # (expression, descending)


def count(model: Any, conditions: list[ColumnElement[bool]]) -> Select:
    return select(func.count()).select_from(model).where(*conditions)


def any_row(conditions: list[ColumnElement[bool]], clause: ColumnElement[bool]) -> Select:
    """Whether some row matches the search and `clause` (a neighbouring page exists)."""
    return select(exists().where(*conditions, clause))


def by_id(model: Any, conditions: list[ColumnElement[bool]], options: tuple, limit: int,
          forward: bool, anchor: int) -> Select:
    """Up to `limit` rows after (forward) or before the row id `anchor`, nearest first."""
    stmt = select(model).where(*conditions).options(*options).limit(limit)
    if forward:
        return stmt.where(model.id > anchor).order_by(model.id)
    return stmt.where(model.id < anchor).order_by(model.id.desc())


def sort_values(model: Any, keys: SortKeys, row_id: int) -> Select:
    """The sort values of one row, where a cursor continues from."""
    return select(*(k for k, _ in keys)).where(model.id == row_id)


def by_sort(model: Any, keys: SortKeys, conditions: list[ColumnElement[bool]], options: tuple,
            limit: int, forward: bool, after: Any = None) -> Select:
    """Up to `limit` rows in sort order (each with its sort values), nearest first; after
    (forward) or before the row whose sort values are `after`, when given."""
    stmt = select(model, *(k for k, _ in keys)).where(*conditions).options(*options)
    stmt = stmt.limit(limit)
    if after is not None:
        stmt = stmt.where(beyond(keys, after, forward))
    return stmt.order_by(*ordering(keys, forward))


def beyond(keys: SortKeys, values: Any, forward: bool) -> ColumnElement[bool]:
    """Rows after (forward) or before the row with these sort values; missing values sort
    as the largest, on both databases."""
    terms: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for (expr, desc), value in zip(keys, values, strict=True):
        if forward != desc:  # larger than value
            step = false() if value is None else or_(expr > value, expr.is_(None))
        else:  # smaller than value
            step = expr.isnot(None) if value is None else expr < value
        terms.append(and_(*equal, step))
        equal.append(expr.is_(None) if value is None else expr == value)
    return or_(*terms)


def ordering(keys: SortKeys, forward: bool) -> list[Any]:
    out = []
    for expr, desc in keys:
        ascending = desc != forward
        out.append(expr.asc().nulls_last() if ascending else expr.desc().nulls_first())
    return out
