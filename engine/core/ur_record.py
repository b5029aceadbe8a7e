"""The UR record's coded values, in one place: the forms offer them, the store keeps them, FHIR
maps them and the metrics group by them. Each value has its words for people.

The reasons a discharge is delayed (barriers, avoidable days) are not here: they are a site
file, rulesets/reference/delay_reasons.csv (engine.rules.reference.DelayReason).
"""

from __future__ import annotations

REVIEW_TYPES: dict[str, str] = {
    "initial": "Initial (admission) review",
    "continued_stay": "Continued-stay review",
    "retrospective": "Retrospective review",
    "status_change": "Level-of-care (status) review",
}

LEVELS_OF_CARE: dict[str, str] = {
    "inpatient": "Inpatient",
    "observation": "Observation",
    "outpatient": "Outpatient",
}

CRITERIA_RESULTS: dict[str, str] = {
    "met": "Criteria met",
    "not_met": "Criteria not met",
    "advisor_referral": "Referred to the physician advisor",
}

ADVISOR_OUTCOMES: dict[str, str] = {
    "pending": "Physician advisor review pending",
    "inpatient_supported": "Physician advisor supports inpatient",
    "observation_recommended": "Physician advisor recommends observation",
    "discharge_recommended": "Physician advisor recommends discharge",
    "continued_stay_supported": "Physician advisor supports the continued stay",
}

AUTHORIZATION_STATUSES: dict[str, str] = {
    "pending": "Pending",
    "approved": "Approved",
    "partially_approved": "Partially approved",
    "denied": "Denied",
    "pended": "Pended for information",
}
# the statuses under which the payer has approved days (the approved-days clock runs)
APPROVING = frozenset({"approved", "partially_approved"})

PEER_TO_PEER: dict[str, str] = {
    "not_requested": "Not requested",
    "requested": "Requested",
    "scheduled": "Scheduled",
    "held": "Held",
}

PEER_TO_PEER_OUTCOMES: dict[str, str] = {
    "overturned": "Denial overturned",
    "partially_overturned": "Denial partially overturned",
    "upheld": "Denial upheld",
}

APPEAL_OUTCOMES: dict[str, str] = {
    "pending": "Appeal pending",
    "overturned": "Appeal won (denial overturned)",
    "upheld": "Appeal lost (denial upheld)",
    "withdrawn": "Appeal withdrawn",
}
MAX_APPEAL_LEVEL = 5  # Medicare has five levels of appeal (42 CFR 405 subpart I)

DIRECTIONS: dict[str, str] = {"outbound": "To the payer", "inbound": "From the payer"}

CHANNELS: dict[str, str] = {
    "phone": "Phone",
    "fax": "Fax",
    "portal": "Payer portal",
    "email": "Email",
    "edi": "EDI (X12 278)",
}

AVOIDABLE_DAY_STATUSES: dict[str, str] = {
    "proposed": "Proposed by the engine",
    "confirmed": "Confirmed",
    "rejected": "Rejected",
}

RESPONSIBLE_PARTIES: dict[str, str] = {
    "patient_family": "Patient or family",
    "physician": "Physician",
    "hospital": "Hospital",
    "post_acute_provider": "Post-acute provider",
    "payer": "Payer",
    "community": "Community resource",
}

DELAY_CATEGORIES: dict[str, str] = {
    "patient_family": "Patient / family",
    "physician": "Physician",
    "hospital_system": "Hospital / system",
    "post_acute_placement": "Post-acute placement",
    "payer": "Payer",
    "community_resource": "Community resource",
}


def words(table: dict[str, str], code: str | None) -> str:
    """A code in words, or the code itself when the table does not know it."""
    return "" if code is None else table.get(code, code)
