"""Reading a search's query string into a Query: filters, result parameters and shaping.

Strict by design: an unknown parameter or modifier is a 400 OperationOutcome naming the
supported ones, because a silently ignored filter returns a worklist of the wrong patients.
Repeated parameters AND, comma-separated values OR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_

from engine.api.fhir.search.params import MAX_ROW_ID, split_values
from engine.api.fhir.search.registry import Searchable, SearchRegistry
from engine.api.outcomes import FhirError
from engine.core.errors import InvalidInput, Malformed

DEFAULT_COUNT = 50
MAX_COUNT = 500
RESULT_PARAMS = ("_count", "_cursor", "_total", "_summary", "_format", "_totalMethod")


@dataclass(slots=True)
class Query:
    resource: str
    target: Searchable
    conditions: list[ColumnElement[bool]]
    count: int
    cursor: tuple[str, int] | None
    params: list[tuple[str, str]]  # the filters as understood, for links
    with_total: bool
    sort: list[tuple[Any, bool]] = field(default_factory=list)  # (expression, descending)
    include: list[str] = field(default_factory=list)


def parse(registry: SearchRegistry, resource: str, items: list[tuple[str, str]],
          zone: ZoneInfo) -> Query:
    """Read the query string of a search of `resource` (a type in `registry`)."""
    target = registry[resource]
    params = target.params
    query = Query(resource, target, [], DEFAULT_COUNT, None, [], True)
    if target.base is not None:
        query.conditions.append(target.base)
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise Malformed("search parameters may not contain NUL")
        name, _, modifier = key.partition(":")
        if name in ("_sort", "_include") and target.sorts is not None:
            _shaping_param(query, name, value)
            continue
        if name in RESULT_PARAMS:
            _result_param(query, name, value)
            continue
        param = params.get(name)
        if param is None:
            raise InvalidInput(f"unknown search parameter {key!r} for {resource}; supported: "
                               f"{', '.join([*params, '_count'])}")
        if modifier and modifier not in param.modifiers:
            raise InvalidInput(f"modifier :{modifier} is not supported on {resource} {name}")
        values = [x for x in split_values(value) if x]
        if not values:
            raise InvalidInput(f"search parameter {key} has no value")
        query.conditions.append(or_(*(param.build(x, modifier or None, zone) for x in values)))
        query.params.append((key, value))
    return query


def _shaping_param(query: Query, name: str, value: str) -> None:
    """`_sort` (the type's sort keys) and `_include` (its includes); links repeat them."""
    if name == "_sort":
        keys = query.target.sorts or {}
        if query.sort:
            raise InvalidInput("give _sort once, with comma-separated keys")
        for item in (x.strip() for x in value.split(",")):
            if item.lstrip("-") not in keys:
                raise InvalidInput(f"_sort={item!r} is not supported for {query.resource}; "
                                   f"sort keys: {', '.join(keys) or 'none'}")
            query.sort.append((keys[item.lstrip("-")], item.startswith("-")))
    else:
        served = query.target.includes
        if value not in served:
            raise InvalidInput(f"_include={value!r} is not supported for {query.resource}; "
                               f"supported: {', '.join(served) or 'none'}")
        query.include.append(value)
    query.params.append((name, value))


def _result_param(query: Query, name: str, value: str) -> None:
    if name == "_count":
        if not value.isdigit():
            raise InvalidInput(f"_count={value!r}: use a whole number 0..{MAX_COUNT}")
        query.count = min(int(value), MAX_COUNT)
    elif name == "_cursor":
        if not re.fullmatch(r"[ab]\d{1,10}", value) or int(value[1:]) > MAX_ROW_ID:
            raise Malformed("invalid _cursor: follow the Bundle's next/previous links")
        query.cursor = (value[0], int(value[1:]))
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise InvalidInput("_total: use none, estimate or accurate")
        query.with_total = value != "none"
    elif name == "_summary":
        if value not in ("count", "false"):
            raise InvalidInput(f"_summary={value!r} is not supported (count or false)")
        if value == "count":
            query.count = 0
    elif name == "_format" and value not in ("json", "application/json",
                                             "application/fhir+json"):
        raise FhirError(406, f"_format={value!r}: this server speaks JSON only")
