"""Reading a FHIR write's HTTP body: the caller, the bytes, and what is wrong with them.

Problems (wrong content type: the FHIR edge's own FhirError; oversize: InputTooLarge) are
returned rather than raised so the endpoint can keep the input before answering: nothing an
authenticated client sends is dropped.
The size limit is enforced while streaming, so a chunked upload without Content-Length
cannot outgrow it either (the app middleware only sees declared lengths).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.outcomes import FhirError
from engine.core.errors import InputTooLarge
from engine.core.roles import Permission, Principal

ACCEPTED_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


@dataclass(frozen=True, slots=True)
class Submitted:
    raw: bytes
    caller: str
    problem: FhirError | InputTooLarge | None = None


def _content_problem(header: str | None) -> FhirError | None:
    media, _, params = (header or "").partition(";")
    media = media.strip().lower()
    if media not in ACCEPTED_TYPES:
        shown = media or "(none)"
        return FhirError(415, f"Content-Type {shown} is not accepted: send "
                              "application/fhir+json (or application/json)")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            return FhirError(415, f"charset {value.strip()} is not accepted: send UTF-8")
    return None


Writer = Annotated[Principal, Depends(require(Permission.ENCOUNTER_WRITE))]


async def fhir_body(request: Request, principal: Writer, runtime: RuntimeDep) -> Submitted:
    """The request body, read up to the configured limit (the rest is not read).

    Only after the caller proved it may write: anonymous input is never stored.
    """
    caller = principal.name
    limit = runtime.settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(0, len(chunk) - (size - limit))])
            raw = b"".join(chunks)
            return Submitted(raw, caller, InputTooLarge(
                f"request body over {limit} bytes: split the Bundle into smaller ones"))
        chunks.append(chunk)
    return Submitted(b"".join(chunks), caller, _content_problem(request.headers.get(
        "content-type")))
