"""A case manager chooses the disposition: completing the discharge-plan task records the
chosen transition, marks that proposal chosen (completed) and closes the other proposed
dispositions of the stay (cancelled, "another disposition chosen: <x>"). The rules read the
choice back as the fact `chosen_disposition` and do not propose the others again
(engine.rules.plan)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.vocabulary import OutputKind, OutputStatus
from engine.rules.plan import PLAN_TASK
from engine.storage.models import RuleOutput

CLOSED_BY_CHOICE = "another disposition chosen"


def is_plan_task(task: RuleOutput) -> bool:
    return PLAN_TASK in (task.detail or {})


def options(task: RuleOutput) -> list[dict[str, str]]:
    """What may be chosen on a plan task: every disposition the rules know, in rank order."""
    plan = (task.detail or {}).get(PLAN_TASK) or {}
    return [c for c in plan.get("choices") or [] if isinstance(c, dict) and c.get("code")]


def title_of(task: RuleOutput, code: str) -> str:
    return next((c.get("title") or code for c in options(task) if c["code"] == code), code)


def choose(session: Session, task: RuleOutput, chosen: str, who: str,
           now: datetime) -> list[RuleOutput]:
    """Record `chosen` on the plan task and close the stay's other proposed dispositions
    (detail "closed_by": who, which keeps them closed: fact closed_dispositions); returns
    the proposals changed. The caller checked that `chosen` is one of options()."""
    task.detail = {**(task.detail or {}), "chosen": chosen}
    label = title_of(task, chosen)
    changed = []
    for row in session.scalars(select(RuleOutput).where(
            RuleOutput.encounter_id == task.encounter_id,
            RuleOutput.kind == OutputKind.PROPOSAL,
            RuleOutput.status == OutputStatus.ACTIVE)):
        detail = row.detail or {}
        if detail.get("plan_rank") is None:
            continue  # not a disposition (outpatient follow-up stands beside the plan)
        if row.code == chosen:
            row.status, row.end_reason = OutputStatus.COMPLETED, None
            row.detail = {**detail, "chosen": True}
        else:
            row.status = OutputStatus.CANCELLED
            row.end_reason = f"{CLOSED_BY_CHOICE}: {label}"[:300]
            row.detail = {**detail, "closed_by": who}
        row.ended_at = row.updated_at = now
        row.version += 1
        changed.append(row)
    return changed
