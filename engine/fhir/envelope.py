"""The stored form of a FHIR write: the body exactly as received, plus what replay needs.

A PUT names its target in the URL, and an Encounter may point at a server Patient
(`Patient/12`) whose MRN lives in our database. Replay must work from the stored bytes
alone, so the envelope records the interaction, the receipt time and every server
reference resolved at receipt; the client's bytes follow verbatim as `body`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = "engine.fhir/1"


@dataclass(frozen=True, slots=True)
class Context:
    """How to read a body: `interaction` create | update | transaction."""

    interaction: str
    target: str | None = None  # "Encounter/5" for update
    received: str | None = None  # FHIR instant
    references: dict[str, dict[str, Any]] = field(default_factory=dict)


def wrap(body: bytes, context: Context) -> bytes:
    """Envelope bytes around `body` (already checked to be UTF-8 JSON)."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    head = {
        "envelope": FORMAT,
        "interaction": context.interaction,
        "target": context.target,
        "received": context.received,
        "references": context.references,
    }
    text = json.dumps(head, separators=(",", ":"), sort_keys=False)
    return text[:-1].encode() + b',"body":' + body.strip() + b"}"


def unwrap(doc: Any) -> tuple[Any, Context | None]:
    """(body, context) of a parsed envelope; a bare resource has no context."""
    if isinstance(doc, dict) and doc.get("envelope") == FORMAT:
        refs = doc.get("references") or {}
        return doc.get("body"), Context(
            interaction=str(doc.get("interaction") or "transaction"),
            target=doc.get("target"),
            received=doc.get("received"),
            references=refs if isinstance(refs, dict) else {},
        )
    return doc, None
