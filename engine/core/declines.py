"""Why a person declines work the rules raised: one coded list the whole engine speaks.

A decline is a clinical decision, not a failure: the task becomes FHIR `rejected` with
Task.statusReason coded from this list (system `urn:engine:decline-reason`) and the rule does
not raise that work again for the stay while the decision holds (engine.work.decisions).
"""

from __future__ import annotations

DECLINE_REASON_SYSTEM = "urn:engine:decline-reason"
OTHER = "other"

# code -> what people read; in the order the decline form offers them.
DECLINE_REASONS: dict[str, str] = {
    "not-clinically-appropriate": "Not clinically appropriate",
    "patient-declined": "Patient or family declined",
    "already-done-elsewhere": "Already done elsewhere",
    "not-eligible": "Not eligible (payer or benefit)",
    "duplicate": "Duplicate of other work",
    OTHER: "Other (say why)",
}


def reason_words(code: str, text: str | None) -> str:
    """The reason as the timeline says it: "Patient or family declined: wants to go home"."""
    said = "Other" if code == OTHER else DECLINE_REASONS.get(code, code)
    return f"{said}: {text}" if text else said
