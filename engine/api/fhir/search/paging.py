"""Running a search one page at a time: the page's rows, the total, and the cursors of the
neighbouring pages.

Paging is keyset on the resource id (`_cursor=a<id>` after, `b<id>` before), taken from the
`next`/`previous` links: pages stay correct while new encounters arrive. Types with sort
keys accept `_sort` (comma-separated, `-` for descending; missing values sort last
ascending); the cursor still names a row id, and the page continues after that row's sort
values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from engine.api.fhir.search import sql
from engine.api.fhir.search.params import MAX_ROW_ID
from engine.api.fhir.search.query import Query
from engine.core.errors import Malformed


@dataclass(slots=True)
class Page:
    rows: list[Any]
    total: int | None
    previous: str | None  # cursor values
    next: str | None


def _exists(session: Session, conditions: list, clause: Any) -> bool:
    return bool(session.scalar(sql.any_row(conditions, clause)))


def run(session: Session, query: Query, *options: Any) -> Page:
    """One page of matches in sort order (id by default), the total, and cursors for the
    neighbouring pages."""
    model = query.target.model
    conds = query.conditions
    total = None
    if query.with_total:
        total = session.scalar(sql.count(model, conds))
    if query.count == 0:
        return Page([], total, None, None)
    if query.sort:
        return _run_sorted(session, query, model, total, options)
    direction, anchor = query.cursor or ("a", 0)
    stmt = sql.by_id(model, conds, options, query.count + 1, direction == "a", anchor)
    rows = list(session.scalars(stmt))
    more = len(rows) > query.count
    rows = rows[: query.count]
    if direction == "b":
        rows.reverse()
    if rows:
        first, last = rows[0].id, rows[-1].id
        has_prev = more if direction == "b" else _exists(session, conds, model.id < first)
        has_next = more if direction == "a" else _exists(session, conds, model.id > last)
        return Page(rows, total, f"b{first}" if has_prev else None,
                    f"a{last}" if has_next else None)
    if direction == "a" and anchor and _exists(session, conds, model.id <= anchor):
        return Page([], total, f"b{min(anchor + 1, MAX_ROW_ID)}", None)
    if direction == "b" and _exists(session, conds, model.id >= anchor):
        return Page([], total, None, f"a{anchor - 1}")
    return Page([], total, None, None)


def _run_sorted(session: Session, query: Query, model: Any, total: int | None,
                options: tuple) -> Page:
    keys = [*query.sort, (model.id, False)]
    conds = query.conditions
    direction, anchor = query.cursor or ("a", 0)
    after = None
    if query.cursor is not None:
        after = session.execute(sql.sort_values(model, keys, anchor)).first()
        if after is None:
            raise Malformed("invalid _cursor: follow the Bundle's next/previous links")
    stmt = sql.by_sort(model, keys, conds, options, query.count + 1, direction == "a", after)
    found = list(session.execute(stmt))
    more = len(found) > query.count
    found = found[: query.count]
    if direction == "b":
        found.reverse()
    if not found:
        return Page([], total, None, None)
    first, last = found[0], found[-1]
    has_prev = more if direction == "b" else (
        query.cursor is not None and _exists(session, conds,
                                             sql.beyond(keys, first[1:], False)))
    has_next = more if direction == "a" else _exists(session, conds,
                                                     sql.beyond(keys, last[1:], True))
    return Page([row[0] for row in found], total, f"b{first[0].id}" if has_prev else None,
                f"a{last[0].id}" if has_next else None)
