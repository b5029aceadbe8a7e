"""Reading a search's parameters into a Query: filters, result parameters and shaping.

Lenient by default, as FHIR asks: a parameter the server does not know or support (a name,
a `_sort` key, an `_include`, a `_summary` mode) is ignored, and the Bundle's self link
shows only the parameters that were used, so the client can see what was applied. With
`Prefer: handling=strict` each of them is a 400 OperationOutcome naming what is supported.
Always refused (400): a value a known parameter cannot read (a date that is not a date, a
code outside its FHIR value set) and an unsupported modifier (FHIR: a server SHALL reject
it), because ignoring those would answer a different question than the one asked.
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
RESULT_PARAMS = ("_count", "_cursor", "_total", "_summary", "_format", "_totalMethod",
                 "_elements", "_pretty")


@dataclass(slots=True)
class Query:
    resource: str
    target: Searchable
    conditions: list[ColumnElement[bool]]
    count: int
    cursor: tuple[str, int] | None
    params: list[tuple[str, str]]  # the parameters as used, for links
    with_total: bool
    sort: list[tuple[Any, bool]] = field(default_factory=list)  # (expression, descending)
    include: list[str] = field(default_factory=list)
    elements: list[str] | None = None  # _elements: the matches carry only these (+ mandatory)
    pretty: bool = False
    strict: bool = False  # Prefer: handling=strict


def strict_handling(prefer: str | None) -> bool:
    """Whether a Prefer header asks for `handling=strict` (lenient is the default)."""
    for part in re.split(r"[,;]", prefer or ""):
        name, _, value = part.partition("=")
        if name.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "strict"
    return False


def parse(registry: SearchRegistry, resource: str, items: list[tuple[str, str]],
          zone: ZoneInfo, *, strict: bool = False) -> Query:
    """Read the parameters of a search of `resource` (a type in `registry`)."""
    target = registry[resource]
    params = target.params
    query = Query(resource, target, [], DEFAULT_COUNT, None, [], True, strict=strict)
    if target.base is not None:
        query.conditions.append(target.base)
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise Malformed("search parameters may not contain NUL")
        name, _, modifier = key.partition(":")
        if name in ("_sort", "_include"):
            _shaping_param(query, name, value)
            continue
        if name in RESULT_PARAMS:
            _result_param(query, name, value)
            continue
        param = params.get(name)
        if param is None:
            _unsupported(query, f"unknown search parameter {key!r} for {resource}; "
                         f"supported: {', '.join([*params, *RESULT_PARAMS, '_sort'])}")
            continue
        if modifier and modifier not in param.modifiers:
            raise InvalidInput(f"modifier :{modifier} is not supported on {resource} {name}")
        values = [x for x in split_values(value) if x]
        if not values:
            _unsupported(query, f"search parameter {key} has no value")
            continue
        query.conditions.append(or_(*(param.build(x, modifier or None, zone) for x in values)))
        query.params.append((key, value))
    return query


def _unsupported(query: Query, reason: str) -> None:
    """Refuse under strict handling; otherwise the caller leaves the parameter out (and out
    of the self link)."""
    if query.strict:
        raise InvalidInput(f"{reason} (Prefer: handling=strict)")


def _shaping_param(query: Query, name: str, value: str) -> None:
    """`_sort` (the type's sort keys) and `_include` (its includes); links repeat what was
    used."""
    if name == "_sort":
        keys = query.target.sorts or {}
        if query.sort:
            raise InvalidInput("give _sort once, with comma-separated keys")
        used = []
        for item in (x.strip() for x in value.split(",")):
            if item.lstrip("-") not in keys:
                _unsupported(query, f"_sort={item!r} is not supported for "
                             f"{query.resource}; sort keys: {', '.join(keys) or 'none'}")
                continue
            query.sort.append((keys[item.lstrip("-")], item.startswith("-")))
            used.append(item)
        if used:
            query.params.append((name, ",".join(used)))
        return
    served = query.target.includes
    if value not in served:
        _unsupported(query, f"_include={value!r} is not supported for "
                     f"{query.resource}; supported: {', '.join(served) or 'none'}")
        return
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
        query.params.append((name, value))
    elif name == "_summary":
        if value not in ("count", "false", "data"):  # data: no narrative, which none has
            _unsupported(query, f"_summary={value!r} is not supported (count, data "
                         "or false)")
            return
        if value == "count":
            query.count = 0
        query.params.append((name, value))
    elif name == "_elements":
        names = [x.strip() for x in value.split(",") if x.strip()]
        if not names:
            _unsupported(query, "_elements has no value")
            return
        prefix = f"{query.resource}."
        query.elements = [*(query.elements or ()),
                          *(x.removeprefix(prefix) for x in names)]
        query.params.append((name, value))
    elif name == "_pretty":
        if value not in ("true", "false"):
            raise InvalidInput(f"_pretty={value!r}: use true or false")
        query.pretty = value == "true"
        query.params.append((name, value))
    elif name == "_format" and value not in ("json", "application/json",
                                             "application/fhir+json"):
        raise FhirError(406, f"_format={value!r}: this server speaks JSON only")
