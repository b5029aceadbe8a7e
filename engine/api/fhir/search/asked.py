"""What a search request asks: its parameters and how strictly to read them.

`GET [type]?...` carries them in the query string; `POST [type]/_search` in a form-encoded
body as well (FHIR: for long or sensitive queries that should not sit in URLs and logs),
merged with any in the query string. `Prefer: handling=strict` turns unknown parameters
into 400s (query.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request

from engine.api.fhir.search.query import strict_handling
from engine.api.outcomes import FhirError
from engine.core.errors import Malformed

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Asked:
    items: list[tuple[str, str]]
    strict: bool


async def asked(request: Request) -> Asked:
    """The parameters of a search (query string, then a POSTed form) and its handling."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await request.body()
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if body.strip():
            if media != FORM:
                raise FhirError(415, f"POST _search takes a {FORM} body (the search "
                                     "parameters), not " + (media or "an untyped body"))
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Malformed("the _search form is not UTF-8") from exc
            items += parse_qsl(text, keep_blank_values=True)
    return Asked(items, strict_handling(request.headers.get("prefer")))
