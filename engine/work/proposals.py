"""A person declines a transition proposal ("home with self-care does not fit"): the proposal
is withdrawn with the reason and kept as a decision, so the rule proposes it again only when a
fact it rests on changes; the rule's confirm task is withdrawn with it at the re-evaluation
(engine.planning.held). The caller re-evaluates the stay, then commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.declines import OTHER, reason_words
from engine.core.roles import Permission, Principal
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.storage.locks import lock, visit_lock_key
from engine.storage.models import Decision, Encounter, RuleOutput
from engine.work import decisions
from engine.work.lifecycle import Conflict, Refused, actor_name, may_work_queue, permit
from engine.work.staffing import EMPTY, Staffing

# Proposals are the case manager's to decline, as the discharge plan's task is.
PROPOSAL_QUEUE = "case_manager"


def load(session: Session, output_id: int) -> RuleOutput | None:
    """The proposal with its visit locked, as lifecycle.load locks a task."""
    visit = session.execute(
        select(Encounter.visit_system, Encounter.visit_number)
        .join(RuleOutput, RuleOutput.encounter_id == Encounter.id)
        .where(RuleOutput.id == output_id, RuleOutput.kind == OutputKind.PROPOSAL)).first()
    if visit is None:
        return None
    lock(session, visit_lock_key(visit[0], visit[1]))
    return session.scalars(select(RuleOutput).where(RuleOutput.id == output_id)
                           .with_for_update()
                           .execution_options(populate_existing=True)).first()


def decline(session: Session, proposal: RuleOutput, actor: Principal | str, *, now: datetime,
            reason_code: str | None, reason: str | None = None, by_display: str | None = None,
            expected_version: int | None = None, staffing: Staffing = EMPTY) -> Decision:
    """Withdraw an active proposal as declined and keep the decision; refused to a person
    whose role does not work the case-manager queue (`staffing`, as for a task)."""
    permit(actor, Permission.TASK_WORK)
    if proposal.kind != OutputKind.PROPOSAL:
        raise Refused(f"output {proposal.id} is a {proposal.kind}, not a proposal")
    may_work_queue(PROPOSAL_QUEUE, proposal.title or proposal.code, actor, staffing, "decline")
    if expected_version is not None and expected_version != proposal.version:
        raise Conflict(f"proposal {proposal.id} is at version {proposal.version}, not "
                       f"{expected_version}: read it again and retry")
    if proposal.status != OutputStatus.ACTIVE:
        raise Refused(f"proposal {proposal.id} is {proposal.status}; only an active proposal "
                      "can be declined")
    words = (reason or "").strip()[:500] or None
    code = (reason_code or "").strip() or (OTHER if words else None)
    problem = decisions.reason_problem(code, words)
    if problem:
        raise Refused(problem)
    assert code is not None  # reason_problem refuses a missing code
    who = actor_name(actor)
    proposal.status, proposal.ended_at = OutputStatus.CANCELLED, now
    proposal.end_reason = f"declined by {by_display or who}: {reason_words(code, words)}"[:300]
    proposal.detail = {**(proposal.detail or {}), "decline": {"code": code, "text": words}}
    proposal.version += 1
    proposal.updated_at = now
    return decisions.record(session, proposal, who, now, code=code, text=words,
                            by_display=by_display)
