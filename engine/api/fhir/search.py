"""FHIR search: query parameters -> SQL conditions, keyset paging, searchset Bundles.

Strict by design: an unknown parameter or modifier is a 400 OperationOutcome naming the
supported ones, because a silently ignored filter returns a worklist of the wrong patients.

Paging is keyset on the resource id (`_cursor=a<id>` after, `b<id>` before), taken from the
`next`/`previous` links: pages stay correct while new encounters arrive, and a page costs the
same at the end of the list as at the start. Resources registered with sort keys accept
`_sort` (comma-separated, `-` for descending; missing values sort last ascending); the
cursor still names a row id, and the page continues after that row's sort values.

Dates (Encounter `date`, the period admit..discharge, open-ended while in hospital; Patient
`birthdate`): a value is a range at its precision; without an offset it is the hospital's
local time. `eq` period within the value's range, `ne` not so, `ge` ends at or after its
start (or ongoing), `gt` ends after its end (or ongoing), `le` starts before its end, `lt`
starts before its start, `sa` starts after it, `eb` ends before it. Encounters without a
start time never match a date search.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from engine.fhir import vocabulary as v
from engine.fhir.outcome import FhirError
from engine.storage.models import Encounter, LocationStay, Patient, PatientIdentifier

MAX_ROW_ID = 2**31 - 1  # primary keys are 32-bit integers
DEFAULT_COUNT = 50
MAX_COUNT = 500
Build = Callable[[str, str | None, ZoneInfo], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # FHIR search parameter type: token | string | date | reference
    doc: str
    build: Build
    modifiers: tuple[str, ...] = ()


@dataclass(slots=True)
class Query:
    resource: str
    conditions: list[ColumnElement[bool]]
    count: int
    cursor: tuple[str, int] | None
    params: list[tuple[str, str]]  # the filters as understood, for links
    with_total: bool
    sort: list[tuple[Any, bool]] = field(default_factory=list)  # (expression, descending)
    include: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Page:
    rows: list[Any]
    total: int | None
    previous: str | None  # cursor values
    next: str | None


# -- value parsing -----------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """Comma-separated alternatives (OR); `\\,` is a literal comma."""
    out, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",$|\\":
            current.append(text[i + 1])
            i += 2
            continue
        if ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


_DATE = re.compile(
    r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)


def _date_range(name: str, text: str, zone: ZoneInfo) -> tuple[str, datetime, datetime]:
    """(prefix, low, high): the value as a half-open range of instants at its precision."""
    m = _DATE.match(text.replace(" ", "+"))  # an unencoded '+' in the offset arrives as ' '
    if not m:
        raise FhirError(400, f"{name}={text!r} is not a FHIR date: use [prefix]YYYY[-MM[-DD"
                             "[Thh:mm[:ss][offset]]]], prefixes eq ne gt lt ge le sa eb")
    prefix = m["prefix"] or "eq"
    if prefix == "ap":
        raise FhirError(400, f"{name}: the 'ap' (approximately) prefix is not supported")
    y, mo, d = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
    tz: tzinfo = zone
    if m["tz"] and m["tz"] != "Z":
        sign = -1 if m["tz"][0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][4:6])))
    elif m["tz"]:
        tz = UTC
    try:
        low = datetime(y, mo, d, int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0),
                       tzinfo=tz)
    except ValueError as exc:
        raise FhirError(400, f"{name}={text!r} is not a valid date: {exc}") from exc
    if m["S"]:
        high = low + timedelta(seconds=1)
    elif m["H"]:
        high = low + timedelta(minutes=1)
    elif m["d"]:
        high = datetime.combine(low.date() + timedelta(days=1), low.timetz())
    elif m["m"]:
        high = low.replace(year=y + (mo == 12), month=mo % 12 + 1)
    else:
        high = low.replace(year=y + 1)
    return prefix, low, high


def period(start: Any, end: Any) -> Build:
    """A date parameter over a period (start, end); an open end means ongoing."""

    def build(text: str, _modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
        prefix, low, high = _date_range("date", text, zone)
        has_start, ongoing = start.isnot(None), end.is_(None)
        return {
            "eq": and_(start >= low, end.isnot(None), end < high),
            "ne": and_(has_start, or_(start < low, ongoing, end >= high)),
            "gt": and_(has_start, or_(ongoing, end >= high)),
            "ge": and_(has_start, or_(ongoing, end >= low)),
            "lt": start < low,
            "le": start < high,
            "sa": start >= high,
            "eb": and_(end.isnot(None), end < low),
        }[prefix]

    return build


def _birthdate(text: str, _modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
    if "T" in text:
        raise FhirError(400, "birthdate is a date: use [prefix]YYYY[-MM[-DD]]")
    prefix, low_dt, high_dt = _date_range("birthdate", text, zone)
    low, high, born = low_dt.date(), high_dt.date(), Patient.birth_date
    return {
        "eq": and_(born >= low, born < high),
        "ne": or_(born < low, born >= high),
        "gt": born >= high,
        "sa": born >= high,
        "ge": born >= low,
        "lt": born < low,
        "eb": born < low,
        "le": born < high,
    }[prefix]


def row_id(text: str) -> int | None:
    """A logical id as a row id; ids outside the 32-bit key range simply do not exist."""
    return int(text) if text.isdigit() and len(text) <= 10 and int(text) <= MAX_ROW_ID else None


def _id_of(text: str, resource: str) -> int | None:
    return row_id(text.rstrip("/").rpartition(f"{resource}/")[2] if "/" in text else text)


def reference(column: Any, resource: str) -> Build:
    """A reference parameter on a row-id column: `Resource/<id>` or `<id>`."""
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        ident = _id_of(text, resource)
        return column == ident if ident is not None else false()

    return build


def by_id(model: Any, resource: str) -> Build:
    return reference(model.id, resource)


def _token(text: str) -> tuple[str | None, str]:
    system, sep, value = text.partition("|")
    return (system if sep else None), (value if sep else system)


def _string(*columns: Any) -> Build:
    def build(text: str, modifier: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        if modifier == "exact":
            return or_(*(c == text for c in columns))
        if modifier == "contains":
            return or_(*(c.icontains(text, autoescape=True) for c in columns))
        return or_(*(c.istartswith(text, autoescape=True) for c in columns))

    return build


# -- Patient -----------------------------------------------------------------------------------
def _patient_identifier(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, value = _token(text)
    conds = [PatientIdentifier.patient_id == Patient.id, PatientIdentifier.value == value]
    if system is not None:
        conds.append(PatientIdentifier.system == (v.authority_of(system) or ""))
    return exists().where(*conds)


def _gender(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    codes = [sex for sex, gender in v.GENDER_BY_SEX.items() if gender == text]
    if not codes:
        raise FhirError(400, f"gender={text!r}: use male, female, other or unknown")
    return Patient.sex.in_(codes)


PATIENT_PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("_id", "token", "Logical id of the patient", by_id(Patient, "Patient")),
    Param("identifier", "token", "An identifier, [system|]value; the MRN system is "
          "urn:engine:id:<assigning authority>", _patient_identifier),
    Param("name", "string", "Family, given or middle name (starts with, any case)",
          _string(Patient.family, Patient.given, Patient.middle), ("exact", "contains")),
    Param("family", "string", "Family name (starts with, any case)", _string(Patient.family),
          ("exact", "contains")),
    Param("given", "string", "Given or middle name (starts with, any case)",
          _string(Patient.given, Patient.middle), ("exact", "contains")),
    Param("birthdate", "date", "Date of birth, with prefixes eq ne gt ge lt le sa eb",
          _birthdate),
    Param("gender", "token", "male | female | other | unknown", _gender),
)}


# -- Encounter ---------------------------------------------------------------------------------
def _encounter_identifier(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, value = _token(text)
    cond = Encounter.visit_number == value
    if system is not None:
        cond = and_(cond, Encounter.visit_system == (v.authority_of(system) or ""))
    return cond


_patient_ref = reference(Encounter.patient_id, "Patient")


def _status(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    stored = v.STATUS_IN.get(text)  # FHIR's finer states fold the way input folds them
    if stored is None:
        raise FhirError(400, f"status={text!r} is not an Encounter status this server keeps: "
                             f"use {', '.join(v.STATUS_IN)}")
    return Encounter.status == stored


def _class(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, code = _token(text)
    care_status = v.CARE_STATUS_BY_CLASS.get(code)
    if care_status is None or system not in (None, v.V3_ACT_CODE):
        raise FhirError(400, f"class={text!r} is not a v3 ActCode class this server keeps: "
                             f"use {', '.join(sorted(v.CARE_STATUS_BY_CLASS))}")
    return Encounter.care_status == care_status


def _location(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    unit = text.removeprefix("Location/")
    return exists().where(LocationStay.encounter_id == Encounter.id,
                          LocationStay.cancelled.is_(False), LocationStay.unit == unit)


ENCOUNTER_PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("_id", "token", "Logical id of the encounter", by_id(Encounter, "Encounter")),
    Param("identifier", "token", "Visit number, [system|]value (system "
          "urn:engine:id:<assigning authority>)", _encounter_identifier),
    Param("patient", "reference", "The patient: Patient/<id> or <id>", _patient_ref),
    Param("subject", "reference", "Same as patient", _patient_ref),
    Param("status", "token", "planned | in-progress | onleave | finished | cancelled",
          _status),
    Param("class", "token", "v3-ActCode: IMP inpatient, OBSENC observation, EMER emergency, "
          "AMB outpatient, PRENC pre-admission", _class),
    Param("location", "reference", "A unit (nursing unit name, e.g. 4WEST) the patient was "
          "in at any time during the encounter", _location),
    Param("date", "date", "The period (admission to discharge), with prefixes eq ne gt ge lt "
          "le sa eb; open-ended while in hospital",
          period(Encounter.admit_time, Encounter.discharge_time)),
)}

PARAMS = {"Patient": PATIENT_PARAMS, "Encounter": ENCOUNTER_PARAMS}
MODELS: dict[str, Any] = {"Patient": Patient, "Encounter": Encounter}
SORTS: dict[str, dict[str, Any]] = {}  # resource -> _sort name -> SQL expression
INCLUDES: dict[str, tuple[str, ...]] = {}  # resource -> _include values it serves
BASE: dict[str, ColumnElement[bool]] = {}  # a condition every search of the resource has
RESULT_PARAMS = ("_count", "_cursor", "_total", "_summary", "_format", "_totalMethod")


def register(resource: str, model: Any, params: dict[str, Param], *,
             base: ColumnElement[bool] | None = None, sorts: dict[str, Any] | None = None,
             includes: tuple[str, ...] = ()) -> None:
    """Make a resource searchable: its table, parameters, sort keys and includes."""
    PARAMS[resource] = params
    MODELS[resource] = model
    SORTS[resource] = dict(sorts or {})
    INCLUDES[resource] = includes
    if base is not None:
        BASE[resource] = base


# -- query ---------------------------------------------------------------------------------------
def parse(resource: str, items: list[tuple[str, str]], zone: ZoneInfo) -> Query:
    """Read the query string; repeated parameters AND, comma-separated values OR."""
    params = PARAMS[resource]
    query = Query(resource, [], DEFAULT_COUNT, None, [], True)
    if resource in BASE:
        query.conditions.append(BASE[resource])
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise FhirError(400, "search parameters may not contain NUL")
        name, _, modifier = key.partition(":")
        if name in ("_sort", "_include") and resource in SORTS:
            _shaping_param(query, name, value)
            continue
        if name in RESULT_PARAMS:
            _result_param(query, name, value)
            continue
        param = params.get(name)
        if param is None:
            raise FhirError(400, f"unknown search parameter {key!r} for {resource}; supported: "
                                 f"{', '.join([*params, '_count'])}")
        if modifier and modifier not in param.modifiers:
            raise FhirError(400, f"modifier :{modifier} is not supported on {resource} {name}")
        values = [x for x in split_values(value) if x]
        if not values:
            raise FhirError(400, f"search parameter {key} has no value")
        query.conditions.append(or_(*(param.build(x, modifier or None, zone) for x in values)))
        query.params.append((key, value))
    return query


def _shaping_param(query: Query, name: str, value: str) -> None:
    """`_sort` (keys from SORTS) and `_include` (values from INCLUDES); links repeat them."""
    if name == "_sort":
        keys = SORTS.get(query.resource, {})
        if query.sort:
            raise FhirError(400, "give _sort once, with comma-separated keys")
        for item in (x.strip() for x in value.split(",")):
            if item.lstrip("-") not in keys:
                raise FhirError(400, f"_sort={item!r} is not supported for {query.resource}; "
                                     f"sort keys: {', '.join(keys) or 'none'}")
            query.sort.append((keys[item.lstrip("-")], item.startswith("-")))
    else:
        served = INCLUDES.get(query.resource, ())
        if value not in served:
            raise FhirError(400, f"_include={value!r} is not supported for {query.resource}; "
                                 f"supported: {', '.join(served) or 'none'}")
        query.include.append(value)
    query.params.append((name, value))


def _result_param(query: Query, name: str, value: str) -> None:
    if name == "_count":
        if not value.isdigit():
            raise FhirError(400, f"_count={value!r}: use a whole number 0..{MAX_COUNT}")
        query.count = min(int(value), MAX_COUNT)
    elif name == "_cursor":
        if not re.fullmatch(r"[ab]\d{1,10}", value) or int(value[1:]) > MAX_ROW_ID:
            raise FhirError(400, "invalid _cursor: follow the Bundle's next/previous links")
        query.cursor = (value[0], int(value[1:]))
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise FhirError(400, "_total: use none, estimate or accurate")
        query.with_total = value != "none"
    elif name == "_summary":
        if value not in ("count", "false"):
            raise FhirError(400, f"_summary={value!r} is not supported (count or false)")
        if value == "count":
            query.count = 0
    elif name == "_format" and value not in ("json", "application/json",
                                             "application/fhir+json"):
        raise FhirError(406, f"_format={value!r}: this server speaks JSON only")


def _exists(session: Session, model: Any, conditions: list, clause: Any) -> bool:
    return bool(session.scalar(select(exists().where(*conditions, clause))))


def run(session: Session, query: Query, *options: Any) -> Page:
    """One page of matches in sort order (id by default), the total, and cursors for the
    neighbouring pages."""
    model = MODELS[query.resource]
    conds = query.conditions
    total = None
    if query.with_total:
        total = session.scalar(select(func.count()).select_from(model).where(*conds))
    if query.count == 0:
        return Page([], total, None, None)
    if query.sort:
        return _run_sorted(session, query, model, total, options)
    direction, anchor = query.cursor or ("a", 0)
    stmt = select(model).where(*conds).options(*options).limit(query.count + 1)
    if direction == "a":
        stmt = stmt.where(model.id > anchor).order_by(model.id)
    else:
        stmt = stmt.where(model.id < anchor).order_by(model.id.desc())
    rows = list(session.scalars(stmt))
    more = len(rows) > query.count
    rows = rows[: query.count]
    if direction == "b":
        rows.reverse()
    if rows:
        first, last = rows[0].id, rows[-1].id
        has_prev = more if direction == "b" else _exists(session, model, conds, model.id < first)
        has_next = more if direction == "a" else _exists(session, model, conds, model.id > last)
        return Page(rows, total, f"b{first}" if has_prev else None,
                    f"a{last}" if has_next else None)
    if direction == "a" and anchor and _exists(session, model, conds, model.id <= anchor):
        return Page([], total, f"b{min(anchor + 1, MAX_ROW_ID)}", None)
    if direction == "b" and _exists(session, model, conds, model.id >= anchor):
        return Page([], total, None, f"a{anchor - 1}")
    return Page([], total, None, None)


def _beyond(keys: list[tuple[Any, bool]], values: Any, forward: bool) -> ColumnElement[bool]:
    """Rows after (forward) or before the row with these sort values; missing values sort
    as the largest, on both databases."""
    terms, equal = [], []
    for (expr, desc), value in zip(keys, values, strict=True):
        if forward != desc:  # larger than value
            step = false() if value is None else or_(expr > value, expr.is_(None))
        else:  # smaller than value
            step = expr.isnot(None) if value is None else expr < value
        terms.append(and_(*equal, step))
        equal.append(expr.is_(None) if value is None else expr == value)
    return or_(*terms)


def _ordering(keys: list[tuple[Any, bool]], forward: bool) -> list[Any]:
    out = []
    for expr, desc in keys:
        ascending = desc != forward
        out.append(expr.asc().nulls_last() if ascending else expr.desc().nulls_first())
    return out


def _run_sorted(session: Session, query: Query, model: Any, total: int | None,
                options: tuple) -> Page:
    keys = [*query.sort, (model.id, False)]
    exprs = [k for k, _ in keys]
    conds = query.conditions
    direction, anchor = query.cursor or ("a", 0)
    stmt = select(model, *exprs).where(*conds).options(*options).limit(query.count + 1)
    if query.cursor is not None:
        values = session.execute(select(*exprs).where(model.id == anchor)).first()
        if values is None:
            raise FhirError(400, "invalid _cursor: follow the Bundle's next/previous links")
        stmt = stmt.where(_beyond(keys, values, direction == "a"))
    found = list(session.execute(stmt.order_by(*_ordering(keys, direction == "a"))))
    more = len(found) > query.count
    found = found[: query.count]
    if direction == "b":
        found.reverse()
    if not found:
        return Page([], total, None, None)
    first, last = found[0], found[-1]
    has_prev = more if direction == "b" else (
        query.cursor is not None and _exists(session, model, conds,
                                             _beyond(keys, first[1:], False)))
    has_next = more if direction == "a" else _exists(session, model, conds,
                                                     _beyond(keys, last[1:], True))
    return Page([row[0] for row in found], total, f"b{first[0].id}" if has_prev else None,
                f"a{last[0].id}" if has_next else None)


def bundle(query: Query, page: Page, base: str, entries: list[dict],
           included: list[dict] | None = None) -> dict:
    """A searchset Bundle with self/first/previous/next links; `base` is the /fhir URL;
    `included` resources (from _include) follow the matches."""
    url = f"{base}/{query.resource}"

    def link(relation: str, cursor: str | None) -> dict:
        items = [*query.params, ("_count", str(query.count))]
        if cursor:
            items.append(("_cursor", cursor))
        return {"relation": relation, "url": f"{url}?{urlencode(items)}"}

    cursor = f"{query.cursor[0]}{query.cursor[1]}" if query.cursor else None
    links = [link("self", cursor), link("first", None)]
    if page.previous:
        links.append(link("previous", page.previous))
    if page.next:
        links.append(link("next", page.next))
    out: dict = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        out["total"] = page.total
    out["link"] = links
    found = [{"fullUrl": f"{url}/{e['id']}", "resource": e, "search": {"mode": "match"}}
             for e in entries]
    found += [{"fullUrl": f"{base}/{e['resourceType']}/{e['id']}", "resource": e,
               "search": {"mode": "include"}} for e in included or ()]
    if found:  # FHIR JSON has no empty arrays
        out["entry"] = found
    return out
