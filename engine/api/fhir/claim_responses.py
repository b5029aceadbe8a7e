"""A payer's authorization of a stay as FHIR ClaimResponse (use preauthorization), and the
exchanges with the payer as Communication.

ClaimResponse: status active (entered-in-error when voided); type institutional; use
preauthorization; patient; created when it was entered; insurer the payer (display only);
outcome queued (pending, pended), complete (approved, denied) or partial (partially
approved); disposition the status in words; identifier (AUTH_NUMBER_SYSTEM) and preAuthRef
the payer's reference number; preAuthPeriod approved_from..approved_through whenever the
record has one, whatever the status (days approved stay approved while an extension is
pended or the continued stay is denied); processNote the denial reason, the
peer-to-peer and the appeal in words. The stay is the extension ENCOUNTER_EXTENSION (a
ClaimResponse has no encounter element, and the engine keeps no Claim for `request`); the
engine's own values (status, level of care, approved days, payer reviewer and contact,
requested and decided, peer-to-peer, appeal) are sub-extensions of AUTH_EXTENSION, which
the EHR may also send on a create or update.

Communication: status completed (entered-in-error when voided); category
urn:engine:payer-communication|outbound or inbound; medium the channel (urn:engine:
payer-channel, with the v3 ParticipationMode code); subject, encounter, about the
ClaimResponse; sent (outbound) or received (inbound); sender and recipient by direction (the
payer as a display-only Organization); payload the summary.
"""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir.ur_observations import concept, person
from engine.core import ur_record as codes
from engine.storage.models import PayerAuthorization, PayerCommunication

ENCOUNTER_EXTENSION = "urn:engine:fhir:StructureDefinition:encounter"
AUTH_EXTENSION = "urn:engine:fhir:StructureDefinition:authorization"
AUTH_STATUS_SYSTEM = "urn:engine:authorization-status"
AUTH_NUMBER_SYSTEM = "urn:engine:payer-authorization"  # identifier: the payer's number
UNNAMED_PAYER = "the payer (not named)"  # insurer.display when none is on file
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
DIRECTION_SYSTEM = "urn:engine:payer-communication"
CHANNEL_SYSTEM = "urn:engine:payer-channel"
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MODE_BY_CHANNEL = {"phone": "PHONE", "fax": "FAXWRIT", "portal": "ONLINEWRIT",
                   "email": "EMAILWRIT", "edi": "ELECTRONIC"}
CHANNEL_BY_MODE = {mode: channel for channel, mode in MODE_BY_CHANNEL.items()}
OUTCOME = {"pending": "queued", "pended": "queued", "approved": "complete",
           "denied": "complete", "partially_approved": "partial"}
# sub-extension name -> (column, FHIR value type)
AUTH_VALUES: dict[str, tuple[str, str]] = {
    "status": ("status", "valueCode"),
    "level-of-care": ("level_of_care", "valueCode"),
    "approved-days": ("approved_days", "valueUnsignedInt"),
    "plan": ("plan", "valueString"),
    "payer-reviewer": ("payer_reviewer", "valueString"),
    "payer-contact": ("payer_contact", "valueString"),
    "requested": ("requested_at", "valueDateTime"),
    "decided": ("decided_at", "valueDateTime"),
    "denial-reason": ("denial_reason", "valueString"),
    "peer-to-peer": ("peer_to_peer", "valueCode"),
    "peer-to-peer-at": ("peer_to_peer_at", "valueDateTime"),
    "peer-to-peer-outcome": ("peer_to_peer_outcome", "valueCode"),
    "appeal-level": ("appeal_level", "valuePositiveInt"),
    "appeal-deadline": ("appeal_deadline", "valueDate"),
    "appeal-outcome": ("appeal_outcome", "valueCode"),
}


def _value(value, kind: str):
    if kind == "valueDateTime":
        return resources.instant(value)
    if kind == "valueDate":
        return value.isoformat()
    return value


def _notes(row: PayerAuthorization) -> list[dict]:
    out = []
    if row.denial_reason:
        out.append(f"Denial reason: {row.denial_reason}")
    if row.peer_to_peer:
        text = f"Peer-to-peer: {codes.words(codes.PEER_TO_PEER, row.peer_to_peer)}"
        if row.peer_to_peer_at:
            text += f" {resources.instant(row.peer_to_peer_at)}"
        if row.peer_to_peer_outcome:
            text += (" - " + codes.words(codes.PEER_TO_PEER_OUTCOMES,
                                         row.peer_to_peer_outcome))
        out.append(text)
    if row.appeal_level:
        text = f"Appeal level {row.appeal_level}"
        if row.appeal_deadline:
            text += f", file by {row.appeal_deadline.isoformat()}"
        if row.appeal_outcome:
            text += " - " + codes.words(codes.APPEAL_OUTCOMES, row.appeal_outcome)
        out.append(text)
    if row.voided_at is not None and row.void_reason:
        out.append(f"Entered in error: {row.void_reason}")
    return [{"number": n, "type": "display", "text": t} for n, t in enumerate(out, 1)]


def claim_response(row: PayerAuthorization, patient_id: int) -> dict:
    parts = []
    for name, (column, kind) in AUTH_VALUES.items():
        value = getattr(row, column)
        if value is not None and value != "":
            parts.append({"url": name, kind: _value(value, kind)})
    parts.append({"url": "source", "valueCode": row.source})
    out: dict = {
        "resourceType": "ClaimResponse", "id": str(row.id),
        "meta": resources.meta(row.version, row.updated_at),
        "extension": [{"url": ENCOUNTER_EXTENSION,
                       "valueReference": {"reference": f"Encounter/{row.encounter_id}"}},
                      {"url": AUTH_EXTENSION, "extension": parts}],
        "status": "entered-in-error" if row.voided_at is not None else "active",
        "type": concept(CLAIM_TYPE, "institutional", "Institutional"),
        "use": "preauthorization",
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": resources.instant(row.entered_at),
        "insurer": {"display": row.payer or UNNAMED_PAYER},
        "outcome": OUTCOME.get(row.status, "queued"),
        "disposition": codes.words(codes.AUTHORIZATION_STATUSES, row.status),
    }
    if row.reference_number:
        out["identifier"] = [{"system": AUTH_NUMBER_SYSTEM, "value": row.reference_number}]
        out["preAuthRef"] = row.reference_number
    if row.approved_from or row.approved_through:  # whatever the status: days approved stay

        period = {}
        if row.approved_from:
            period["start"] = row.approved_from.isoformat()
        if row.approved_through:
            period["end"] = row.approved_through.isoformat()
        out["preAuthPeriod"] = period
    if notes := _notes(row):
        out["processNote"] = notes
    return out


def communication(row: PayerCommunication, patient_id: int, payer: str | None) -> dict:
    outbound = row.direction == "outbound"
    payer_ref = {"type": "Organization", "display": payer or "the payer"}
    out: dict = {
        "resourceType": "Communication", "id": str(row.id),
        "meta": resources.meta(row.version, row.updated_at),
        "status": "entered-in-error" if row.voided_at is not None else "completed",
        "category": [concept(DIRECTION_SYSTEM, row.direction,
                             codes.words(codes.DIRECTIONS, row.direction))],
        "medium": [{"coding": [
            {"system": CHANNEL_SYSTEM, "code": row.channel,
             "display": codes.words(codes.CHANNELS, row.channel)},
            {"system": PARTICIPATION_MODE, "code": MODE_BY_CHANNEL.get(row.channel, "ELECTRONIC")}],
            "text": codes.words(codes.CHANNELS, row.channel)}],
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if row.authorization_id is not None:
        out["about"] = [{"reference": f"ClaimResponse/{row.authorization_id}"}]
    out["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    out["sent" if outbound else "received"] = resources.instant(row.at)
    staff = person(row.entered_by)
    out["recipient"] = [payer_ref if outbound else staff]
    out["sender"] = staff if outbound else payer_ref
    out["payload"] = [{"contentString": row.summary}]
    if row.voided_at is not None and row.void_reason:
        out["note"] = [{"text": f"Entered in error: {row.void_reason}"}]
    return out
