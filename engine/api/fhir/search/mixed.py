"""One search over several tables that serve the same resource type (Flag: the rules' flags
and the discharge barriers; Observation: utilization reviews and avoidable days).

Each table is a part registered in the SearchRegistry under its own name with the same
parameter names; the request is parsed once per part. Matches are ordered by the sort keys,
then the part, then the row id, so paging stays keyset (no OFFSET) and stable while rows
arrive: the cursor names the last row as `<row id> * PARTS + <part>`, one integer, and
each page asks every part for the rows after it and merges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from engine.api.fhir.search import sql
from engine.api.fhir.search.paging import Page
from engine.api.fhir.search.params import MAX_ROW_ID
from engine.api.fhir.search.query import Query, parse
from engine.api.fhir.search.registry import SearchRegistry
from engine.core.errors import Malformed

PARTS = 4  # at most this many tables behind one type
CURSOR = "_cursor"


@dataclass(frozen=True, slots=True)
class Part:
    name: str  # the part's name in the registry ("Flag", "Flag/barrier")
    options: tuple = ()  # loader options for its rows


@dataclass(slots=True)
class Mixed:
    """A search's query per part; `queries[0]` carries the links and result parameters."""

    parts: tuple[Part, ...]
    queries: list[Query]
    cursor: tuple[str, int, int] | None  # (a | b, part, row id)

    @property
    def first(self) -> Query:
        return self.queries[0]


def parse_mixed(registry: SearchRegistry, parts: tuple[Part, ...],
                items: list[tuple[str, str]], zone: ZoneInfo, *, strict: bool) -> Mixed:
    """The request read for every part (they share parameter names) and its cursor."""
    cursor = None
    kept = []
    for key, value in items:
        if key != CURSOR:
            kept.append((key, value))
            continue
        if not (value[:1] in ("a", "b") and value[1:].isdigit() and len(value) <= 13):
            raise Malformed("invalid _cursor: follow the Bundle's next/previous links")
        number = int(value[1:])
        part, row = number % PARTS, number // PARTS
        if part >= len(parts) or row > MAX_ROW_ID:
            raise Malformed("invalid _cursor: follow the Bundle's next/previous links")
        cursor = (value[0], part, row)
    queries = [parse(registry, p.name, kept, zone, strict=strict) for p in parts]
    if cursor is not None:  # the self link repeats it
        queries[0].cursor = (cursor[0], cursor[2] * PARTS + cursor[1])
    return Mixed(parts, queries, cursor)


def _keys(query: Query) -> list[tuple[Any, bool]]:
    return list(query.sort)


def _equal(keys: list[tuple[Any, bool]], values: Any) -> ColumnElement[bool]:
    return and_(true(), *(e.is_(None) if v is None else e == v
                          for (e, _), v in zip(keys, values, strict=True)))


def _side(query: Query, part: int, anchor_part: int, values: list, row: int,
          forward: bool) -> ColumnElement[bool]:
    """Rows of `part` after (forward) or before the anchor row in (sort keys, part, id)."""
    keys = _keys(query)
    model = query.target.model
    if part == anchor_part:
        return sql.beyond([*keys, (model.id, False)], [*values, row], forward)
    strict = sql.beyond(keys, values, forward) if keys else false()
    if (part > anchor_part) == forward:  # ties on the sort keys fall on this side
        return or_(strict, _equal(keys, values)) if keys else true()
    return strict


def _compare(keys_desc: list[bool]):
    def cmp(x: tuple, y: tuple) -> int:
        for desc, a, b in zip(keys_desc, x, y, strict=True):
            if a == b:
                continue
            bigger = a is None if a is None or b is None else a > b  # missing: largest
            return (-1 if bigger else 1) if desc else (1 if bigger else -1)
        return 0

    return cmp_to_key(cmp)


def _anchor_values(session: Session, mixed: Mixed) -> list:
    assert mixed.cursor is not None
    _, part, row = mixed.cursor
    query = mixed.queries[part]
    keys = _keys(query)
    if not keys:
        return []
    found = session.execute(sql.sort_values(query.target.model, keys, row)).first()
    if found is None:
        raise Malformed("invalid _cursor: follow the Bundle's next/previous links")
    return list(found)


def _exists_beyond(session: Session, mixed: Mixed, part: int, values: list, row: int,
                   forward: bool) -> bool:
    return any(bool(session.scalar(sql.any_row(q.conditions, _side(q, i, part, values, row,
                                                                   forward))))
               for i, q in enumerate(mixed.queries))


def run_mixed(session: Session, mixed: Mixed) -> Page:
    """One page of (part index, row) pairs in order, the total and the cursors."""
    first = mixed.first
    total = None
    if first.with_total:
        total = sum(session.scalar(sql.count(q.target.model, q.conditions)) or 0
                    for q in mixed.queries)
    if first.count == 0:
        return Page([], total, None, None)
    direction = mixed.cursor[0] if mixed.cursor else "a"
    forward = direction == "a"
    values = _anchor_values(session, mixed) if mixed.cursor else []
    found: list[tuple[tuple, tuple[int, Any]]] = []
    for index, (part, query) in enumerate(zip(mixed.parts, mixed.queries, strict=True)):
        model = query.target.model
        keys = _keys(query)
        stmt = select(model, *(k for k, _ in keys)).where(*query.conditions)
        stmt = stmt.options(*part.options).limit(first.count + 1)
        if mixed.cursor is not None:
            stmt = stmt.where(_side(query, index, mixed.cursor[1], values, mixed.cursor[2],
                                    forward))
        stmt = stmt.order_by(*sql.ordering([*keys, (model.id, False)], forward))
        for result in session.execute(stmt):
            obj = result[0]
            found.append(((*result[1:], index, obj.id), (index, obj)))
    order = _compare([d for _, d in _keys(first)] + [False, False])
    found.sort(key=lambda f: order(f[0]), reverse=not forward)
    more = len(found) > first.count
    found = found[:first.count]
    if not forward:
        found.reverse()
    if not found:
        return Page([], total, None, None)
    head, tail = found[0][0], found[-1][0]
    if forward:
        has_prev = mixed.cursor is not None and _exists_beyond(
            session, mixed, head[-2], list(head[:-2]), head[-1], False)
        has_next = more
    else:
        has_prev = more
        has_next = _exists_beyond(session, mixed, tail[-2], list(tail[:-2]), tail[-1], True)
    return Page([row for _, row in found], total,
                f"b{head[-1] * PARTS + head[-2]}" if has_prev else None,
                f"a{tail[-1] * PARTS + tail[-2]}" if has_next else None)
