"""The searchset Bundle of one page: self/first/previous/next links, the matches (only the
asked `_elements` when given), the resources `_include` brought along; and its response
(indented when `_pretty=true`)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from engine.api.fhir.search.paging import Page
from engine.api.fhir.search.query import Query
from engine.fhir.outcome import FHIR_JSON

# The elements FHIR R4 makes mandatory (min 1) in the types served: _elements keeps them.
MANDATORY: dict[str, tuple[str, ...]] = {
    "Encounter": ("status", "class"),
    "Task": ("status", "intent"),
    "Flag": ("status", "code", "subject"),
    "RiskAssessment": ("status", "subject"),
    "ServiceRequest": ("status", "intent", "subject"),
    "AuditEvent": ("type", "recorded", "agent", "source"),
    "Observation": ("status", "code"),
    "ClaimResponse": ("status", "type", "use", "patient", "created", "insurer", "outcome"),
    "Communication": ("status",),
}
ALWAYS = ("resourceType", "id", "meta")
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}
# the type suffixes of choice elements ([x]): `_elements=effective` keeps effectiveDateTime
_CHOICE_TYPES = ("Boolean", "Integer", "Decimal", "String", "DateTime", "Date", "Instant",
                 "Time", "Period", "Quantity", "Range", "Ratio", "CodeableConcept",
                 "Reference", "Timing", "Age", "Duration", "Code", "Uri", "Attachment")


def _asked(key: str, names: set[str]) -> bool:
    if key in names:
        return True
    return any(key.startswith(n) and key[len(n):] in _CHOICE_TYPES for n in names)


def subset(resource: dict, elements: list[str]) -> dict:
    """The resource with only the asked top-level elements, the mandatory ones, and a
    SUBSETTED tag (FHIR: a subset must say it is one, so nobody saves it back)."""
    names = {*elements, *ALWAYS, *MANDATORY.get(resource.get("resourceType", ""), ())}
    out = {k: v for k, v in resource.items() if _asked(k, names)}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or ()), SUBSETTED]
    out["meta"] = meta
    return out


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
    if query.elements is not None:
        entries = [subset(e, query.elements) for e in entries]
    found = [{"fullUrl": f"{url}/{e['id']}", "resource": e, "search": {"mode": "match"}}
             for e in entries]
    found += [{"fullUrl": f"{base}/{e['resourceType']}/{e['id']}", "resource": e,
               "search": {"mode": "include"}} for e in included or ()]
    if found:  # FHIR JSON has no empty arrays
        out["entry"] = found
    return out


def respond(query: Query, body: dict) -> Response:
    """The Bundle as FHIR JSON: compact, or indented for people when `_pretty=true`."""
    if query.pretty:
        text = json.dumps(body, indent=2, ensure_ascii=False)
        return Response(text.encode(), media_type=FHIR_JSON)
    return JSONResponse(body, media_type=FHIR_JSON)
