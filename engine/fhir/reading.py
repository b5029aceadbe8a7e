"""Reading untrusted FHIR JSON: parse it safely, then validate it with fhir.resources R4B.

Everything here raises InvalidFhir with a sentence an interface analyst can act on
("Encounter.period.start: not a FHIR dateTime (got '2026-13-01')"), never a stack trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from engine.core.errors import Malformed
from engine.core.events import EventError

MAX_DEPTH = 64
# What the engine keeps (it becomes events) and what it reads to fill those in (a Bundle's
# attending, location and payer). Both are validated with fhir.resources; a Bundle entry of
# any other type is acknowledged and not kept, so it is not validated either (converters
# send a dozen types no rule reads, and fhir.resources fails on names it does not know).
ACCEPTED_TYPES = ("Patient", "Encounter", "Condition", "Coverage", "Observation")
READ_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Location")
_MAX_ERRORS = 3


class InvalidFhir(Malformed, EventError):
    """The input is not valid FHIR R4 JSON of an accepted shape: answered 400, kept."""


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON, refusing nesting deeper than any FHIR resource needs."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFhir(f"body is not UTF-8 (byte {exc.start}): send UTF-8 JSON") from exc
    if not text.strip():
        raise InvalidFhir("body is empty: send a FHIR resource as JSON")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFhir(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise InvalidFhir(f"JSON is nested too deeply (limit {MAX_DEPTH} levels)") from exc
    _check_depth(doc, max_depth)
    return doc


def _check_depth(doc: Any, max_depth: int) -> None:
    """Depth and NUL check in one walk (PostgreSQL text cannot hold NUL either)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise InvalidFhir(f"JSON is nested too deeply (limit {MAX_DEPTH} levels)")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
            stack.extend((key, depth) for key in node)
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and "\x00" in node:
            raise InvalidFhir("a string contains NUL (\\u0000), which FHIR does not allow")


def resource_type(doc: Any, where: str = "body") -> str:
    if not isinstance(doc, dict):
        raise InvalidFhir(f"{where} is not a JSON object: send a FHIR resource")
    name = doc.get("resourceType")
    if not isinstance(name, str) or not name:
        raise InvalidFhir(f"{where} has no resourceType")
    return name


def expect_type(doc: Any, *expected: str) -> str:
    name = resource_type(doc)
    if name not in expected:
        raise InvalidFhir(
            f"resourceType is {name!r}, expected {' or '.join(expected)} at this endpoint"
        )
    return name


def _check_contained(doc: dict, where: str) -> None:
    contained_list = doc.get("contained") or []
    if not isinstance(contained_list, list):
        raise InvalidFhir(f"{where}.contained is not a list")
    for i, contained in enumerate(contained_list):
        name = resource_type(contained, f"{where}.contained[{i}]")
        if name not in (*ACCEPTED_TYPES, *READ_TYPES):
            raise InvalidFhir(f"{where}.contained[{i}] is a {name}; contained resources "
                              f"accepted here: {', '.join((*ACCEPTED_TYPES, *READ_TYPES))}")


def _model(name: str, doc: dict, where: str) -> Any:
    _check_contained(doc, where)
    try:
        return get_fhir_model_class(name).model_validate(doc)
    except ValidationError as exc:
        raise InvalidFhir(describe(where, exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:  # fhir.resources' own edge cases
        raise InvalidFhir(f"{where} is not valid FHIR R4: {exc}") from exc


def validate(doc: dict) -> Any:
    """The R4B model of a single resource the engine takes, or InvalidFhir naming the first
    failing elements. Bundles go through `validate_bundle`."""
    name = resource_type(doc)
    if name not in ACCEPTED_TYPES:
        raise InvalidFhir(f"resourceType {name!r} is not accepted here")
    return _model(name, doc, name)


@dataclass(slots=True)
class BundleEntry:
    """One entry: its resource's model when the engine reads that type, else the raw JSON;
    `error` when the entry itself is not valid (a batch answers it alone)."""

    index: int
    kind: str
    model: Any = None
    raw: dict = field(default_factory=dict)
    error: InvalidFhir | None = None


def validate_bundle(doc: dict) -> tuple[Any, list[BundleEntry]]:
    """The Bundle's own elements (entries without their resources) and each entry, checked
    on its own so that one bad entry of a batch does not hide the others."""
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidFhir("Bundle.entry is not a list")
    shell = dict(doc)
    shell["entry"] = [({k: val for k, val in e.items() if k != "resource"}
                       if isinstance(e, dict) else e) for e in entries]
    model = _model("Bundle", shell, "Bundle")
    out = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}].resource"
        resource = entry.get("resource")
        try:
            if resource is None:
                raise InvalidFhir(f"Bundle.entry[{i}] has no resource")
            name = resource_type(resource, where)
        except InvalidFhir as exc:
            out.append(BundleEntry(i, "?", error=exc))
            continue
        item = BundleEntry(i, name, raw=resource)
        if name in (*ACCEPTED_TYPES, *READ_TYPES):
            try:
                item.model = _model(name, resource, where)
            except InvalidFhir as exc:
                item.error = exc
        out.append(item)
    return model, out


def describe(name: str, exc: ValidationError) -> str:
    """`Encounter.period.start: <reason> (got '...')`, for the first few errors."""
    parts = []
    errors = exc.errors()
    for err in errors[:_MAX_ERRORS]:
        path = name
        for step in err.get("loc", ()):
            if isinstance(step, int):
                path += f"[{step}]"
            elif step == "resource_type":
                path += ".resourceType"
            else:
                path += f".{str(step).replace('__ext', '').replace('_fhir', '')}"
        msg = " ".join(str(err.get("msg", "invalid")).split())
        msg = msg.removeprefix("Value error, ").rstrip(".")
        if err.get("type") == "extra_forbidden":
            msg = "unknown element (not in FHIR R4)"
        elif err.get("type") == "json_invalid":
            msg = "expected a JSON object here"
        text = f"{path}: {msg}"
        if "input" in err and err.get("type") not in ("missing", "extra_forbidden") and \
                isinstance(err["input"], str | int | float | bool):
            shown = repr(err["input"])
            text += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        parts.append(text)
    more = len(errors) - _MAX_ERRORS
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "invalid FHIR R4: " + "; ".join(parts)
