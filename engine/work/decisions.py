"""People's decisions about work the rules raised: a decline, kept with who, when and why.

A decline is recorded here (the task becomes `rejected`, or the proposal is withdrawn) and
the rules read it back (engine.planning.held): while the facts the decision rests on
stand, the rule does not raise that work again for the stay; when one of them changes the
decision lapses and the work is raised once more. The reasons are engine.core.declines.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.declines import DECLINE_REASONS, OTHER, reason_words
from engine.storage.models import Decision, RuleOutput


def reason_problem(code: str | None, text: str | None) -> str | None:
    """Why a decline's reason is not acceptable, or None when it is."""
    if not code:
        return "a decline needs a reason: one of " + ", ".join(DECLINE_REASONS)
    if code not in DECLINE_REASONS:
        return f"unknown decline reason {code!r}; use one of " + ", ".join(DECLINE_REASONS)
    if code == OTHER and not text:
        return "a decline for another reason needs the reason in words"
    return None


def record(session: Session, output: RuleOutput, by: str, now: datetime, *, code: str,
           text: str | None, by_display: str | None = None) -> Decision:
    """Keep the decision (its facts are filled in when the stay is next evaluated, in the same
    transaction: the planning layer knows which facts the rule rests on)."""
    decision = Decision(encounter_id=output.encounter_id, output_id=output.id,
                        rule_id=output.rule_id, output_key=output.key, kind=output.kind,
                        by=by, by_display=by_display, at=now, reason_code=code,
                        reason_text=text)
    session.add(decision)
    return decision


def holding(session: Session, encounter_ids: list[int]) -> dict[int, list[Decision]]:
    """Encounter id -> its decisions that still hold, oldest first (one query for a batch)."""
    out: dict[int, list[Decision]] = {e: [] for e in encounter_ids}
    if encounter_ids:
        for d in session.scalars(select(Decision).where(
                Decision.encounter_id.in_(encounter_ids), Decision.lapsed_at.is_(None))
                .order_by(Decision.id)):
            out[d.encounter_id].append(d)
    return out


def lapse(decision: Decision, now: datetime, because: list[str]) -> None:
    decision.lapsed_at = now
    decision.lapsed_because = ("changed: " + ", ".join(because))[:300]


def said(decision: Decision) -> str:
    """ "declined by Maria Alvarez, RN: Patient or family declined: wants to go home"."""
    return (f"declined by {decision.by_display or decision.by}: "
            f"{reason_words(decision.reason_code, decision.reason_text)}")


def describe(decision: Decision, zone: ZoneInfo, facts: Iterable[str] = ()) -> str:
    """The decision as an explanation says it, with what would reopen it (`facts`: the
    rule's, else those the decision recorded) or what did."""
    def at(instant: datetime) -> str:
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    text = (f"declined by {decision.by_display or decision.by} at {at(decision.at)}: "
            f"{reason_words(decision.reason_code, decision.reason_text)}")
    if decision.lapsed_at is not None:
        return f"{text}; reopened at {at(decision.lapsed_at)} ({decision.lapsed_because})"
    names = sorted(facts) or sorted((decision.holds_on or {}).keys())
    if names:
        text += f"; holds until {' or '.join(n.replace('_', ' ') for n in names)} change"
    return text
