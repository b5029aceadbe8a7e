"""Tasks as FHIR R4 Task: the work item the EHR shows and updates.

Mapping: status = the lifecycle status; intent "order"; priority as the rule gave it
(routine | urgent | asap | stat, the FHIR request-priority codes); code = the task type;
`for` the patient; `encounter` and `focus` the encounter; authoredOn when the rule raised
it; restriction.period.end the due time; executionPeriod from start to close; owner a
logical reference to the person (identifier urn:engine:user|<user name>), absent while the
task waits in its queue; statusReason the reason of a hold, cancel or failure, and for a
decline (status `rejected`) the coded reason (urn:engine:decline-reason) with the words; output
the completion outcome (and, for the discharge-plan task, the chosen disposition: an output of
type urn:engine:task-output|chosen-disposition, valueCodeableConcept urn:engine:transition);
businessStatus "escalated" (its text naming the supervisor) once overdue work was escalated,
while the owner stays the person who holds it;
note the notes; reasonCode the rule; input the facts that fired it (the evidence).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case
from sqlalchemy.orm import Session

from engine.api.fhir import resources, search
from engine.api.fhir.proposals import TRANSITION_SYSTEM
from engine.api.fhir.rule_outputs import (
    OutputResource,
    coded,
    common_params,
    encounter_ref,
    patient_ref,
    reason_code,
    rule_extension,
    token_param,
)
from engine.api.fhir.search import Param
from engine.core.declines import DECLINE_REASON_SYSTEM, DECLINE_REASONS
from engine.core.vocabulary import TERMINAL_TASK_STATUSES, OutputKind, TaskStatus
from engine.fhir import value_sets
from engine.storage.models import RuleOutput, TaskEvent
from engine.work.history import notes
from engine.work.lifecycle import READY, STATUSES
from engine.work.staffing import Staffing
from engine.work.worklist import PRIORITY_RANK

TASK_TYPE_SYSTEM = "urn:engine:task-type"
USER_SYSTEM = "urn:engine:user"
INPUT_SYSTEM = "urn:engine:task-input"
BUSINESS_STATUS_SYSTEM = "urn:engine:task-business-status"
OUTPUT_SYSTEM = "urn:engine:task-output"
CHOSEN = "chosen-disposition"
PRIORITIES = tuple(PRIORITY_RANK)


def owner_ref(name: str, staffing: Staffing) -> dict:
    person = staffing.person(name)
    return {"type": "Practitioner", "identifier": {"system": USER_SYSTEM, "value": name},
            "display": person.display if person is not None and person.display else name}


def owner_name(ref: Any) -> str | None:
    """The user name a Task.owner names (identifier or `Practitioner/<name>`); None when it
    names none, or two different people."""
    if not isinstance(ref, dict):
        return None
    names = set()
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("system") in (None, USER_SYSTEM) and \
            isinstance(ident.get("value"), str):
        names.add(ident["value"])
    reference = ref.get("reference")
    if isinstance(reference, str) and reference.startswith("Practitioner/"):
        names.add(reference.removeprefix("Practitioner/"))
    return names.pop() if len(names) == 1 else None


def _input(name: str, value: Any) -> dict:
    out: dict = {"type": {"coding": [{"system": INPUT_SYSTEM, "code": name}], "text": name}}
    if isinstance(value, bool):
        out["valueBoolean"] = value
    elif isinstance(value, int):
        out["valueInteger"] = value
    elif isinstance(value, float):
        out["valueDecimal"] = value
    elif isinstance(value, list):
        out["valueString"] = ", ".join(str(v) for v in value) or "(none)"
    else:
        out["valueString"] = str(value)
    return out


def declined_reason(row: RuleOutput) -> dict:
    """A decline's coded reason and its words, as Task.statusReason."""
    code = ((row.detail or {}).get("decline") or {}).get("code")
    out: dict = {}
    if code in DECLINE_REASONS:
        out["coding"] = [{"system": DECLINE_REASON_SYSTEM, "code": code,
                          "display": DECLINE_REASONS[code]}]
    if row.outcome:
        out["text"] = row.outcome
    return out


def task(row: RuleOutput, row_notes: list[TaskEvent], staffing: Staffing) -> dict:
    status = row.task_status or READY
    detail = row.detail or {}
    out: dict = {
        "resourceType": "Task", "id": str(row.id),
        "meta": resources.meta(row.version, row.updated_at),
        "extension": [rule_extension(row, with_facts=False)],
        "status": status,
    }
    if status in (TaskStatus.ON_HOLD, TaskStatus.CANCELLED, TaskStatus.FAILED) and row.outcome:
        out["statusReason"] = {"text": row.outcome}
    elif status == TaskStatus.REJECTED:
        out["statusReason"] = declined_reason(row)
    if row.escalated_at is not None and status not in TERMINAL_TASK_STATUSES:
        to = row.escalated_to and owner_ref(row.escalated_to, staffing)["display"]
        out["businessStatus"] = {
            "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": "escalated"}],
            "text": f"escalated to {to}" if to else "escalated"}
    out["intent"] = "order"
    if row.priority:
        out["priority"] = row.priority
    out["code"] = coded(TASK_TYPE_SYSTEM, row.code, row.title)
    out["description"] = detail.get("instructions") or row.title or row.code
    out["focus"] = encounter_ref(row)
    out["for"] = patient_ref(row)
    out["encounter"] = encounter_ref(row)
    if row.started_at is not None:
        out["executionPeriod"] = {"start": resources.instant(row.started_at)}
        if row.ended_at is not None and status in TERMINAL_TASK_STATUSES:
            out["executionPeriod"]["end"] = resources.instant(row.ended_at)
    out["authoredOn"] = resources.instant(row.fired_at)
    out["lastModified"] = resources.instant(row.updated_at)
    if row.owner:
        out["owner"] = owner_ref(row.owner, staffing)
    out["reasonCode"] = reason_code(row)
    if row_notes:
        out["note"] = [{"authorString": n.actor, "time": resources.instant(n.at),
                        "text": n.text or ""} for n in row_notes]
    if row.due_at is not None:
        out["restriction"] = {"period": {"end": resources.instant(row.due_at)}}
    facts = row.facts or {}
    if facts:
        out["input"] = [_input(k, facts[k]) for k in sorted(facts) if facts[k] is not None]
        if not out["input"]:
            del out["input"]
    if status == TaskStatus.COMPLETED and row.outcome:
        out["output"] = [{"type": {"text": "outcome"}, "valueString": row.outcome}]
        if chosen := detail.get("chosen"):
            out["output"].append({"type": coded(OUTPUT_SYSTEM, CHOSEN, "chosen disposition"),
                                  "valueCodeableConcept": coded(TRANSITION_SYSTEM, chosen,
                                                                None)})
    return out


def chosen_of(outputs: Any) -> str | None:
    """The disposition a client's Task.output chooses: the output of type chosen-disposition
    (valueCodeableConcept coding, or valueCode / valueString)."""
    for item in outputs if isinstance(outputs, list) else []:
        if not isinstance(item, dict):
            continue
        codes = [c.get("code") for c in (item.get("type") or {}).get("coding") or []
                 if isinstance(c, dict)]
        if CHOSEN not in codes:
            continue
        concept = item.get("valueCodeableConcept") or {}
        for c in concept.get("coding") or []:
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                return str(c["code"])
        value = item.get("valueCode") or item.get("valueString") or concept.get("text")
        return value if isinstance(value, str) else None
    return None


def render(session: Session, rows: list[RuleOutput], staffing: Staffing) -> list[dict]:
    by_task = notes(session, [r.id for r in rows])
    return [task(r, by_task.get(r.id, []), staffing) for r in rows]


def _owner(text: str, _m: str | None, _z: Any) -> ColumnElement[bool]:
    return RuleOutput.owner == text.rpartition("|")[2].removeprefix("Practitioner/")


PARAMS: dict[str, Param] = {**common_params(), **{p.name: p for p in (
    Param("owner", "reference", "The person: a user name, Practitioner/<user name> or "
          f"{USER_SYSTEM}|<user name>", _owner),
    Param("status", "token", " | ".join(STATUSES),
          search.choice("status", RuleOutput.task_status, STATUSES, value_sets.TASK_STATUS)),
    Param("priority", "token", " | ".join(PRIORITIES),
          search.choice("priority", RuleOutput.priority, PRIORITIES,
                        value_sets.REQUEST_PRIORITY)),
    token_param(RuleOutput.code, "code", f"The task type ({TASK_TYPE_SYSTEM})"),
    Param("focus", "reference", "The encounter the task is about",
          search.reference(RuleOutput.encounter_id, "Encounter")),
    Param("period", "date", "When the work was under way (executionPeriod: started to "
          "closed, open while under way), with prefixes eq ne gt ge lt le sa eb",
          search.period(RuleOutput.started_at, RuleOutput.ended_at)),
)}}

SORTS: dict[str, Any] = {
    "due": RuleOutput.due_at,
    "priority": case(PRIORITY_RANK, value=RuleOutput.priority, else_=len(PRIORITY_RANK)),
    "_lastUpdated": RuleOutput.updated_at,
    "authored-on": RuleOutput.fired_at,
    "status": RuleOutput.task_status,
}

TASK = OutputResource(
    name="Task", kind=OutputKind.TASK,
    doc="Work raised by the rules for case managers and UR nurses. Update (PUT) or patch "
        "(JSON Patch) changes only what the lifecycle allows: status (with output for a "
        "completion's outcome, and for the discharge-plan task an output of type "
        f"{OUTPUT_SYSTEM}|{CHOSEN} naming the chosen transition; statusReason for a hold, "
        "cancel or failure; status rejected declines the work with statusReason.coding from "
        "urn:engine:decline-reason and optional text, and the rule does not raise it again "
        "while the decision holds), owner (needs "
        "task:assign), and new notes. If-Match with the ETag prevents lost updates (412). "
        "_sort: due, priority (stat first), _lastUpdated, authored-on, status; '-' reverses.",
    params=PARAMS, render=render, interactions=("read", "search-type", "update", "patch"),
    sorts=SORTS, includes={"Task:patient": "Patient", "Task:encounter": "Encounter"},
)
