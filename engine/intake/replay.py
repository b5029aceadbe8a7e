"""Event-time replay: the clock follows the stream, so time-based rules fire as it passes.

Used by `engine ingest --clock=events` and by back-tests. The stream's time never runs
backwards: a late message is applied at the latest time seen so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import func, select

from engine.core.clock import FixedClock
from engine.core.site import SiteProfile
from engine.core.vocabulary import Channel
from engine.hl7.adt import Hl7Refusal, event_time
from engine.hl7.message import decode, parse
from engine.intake.path import Intake, Receipt
from engine.planning.tick import tick
from engine.storage.models import Encounter


def event_time_of(raw: bytes, site: SiteProfile) -> datetime | None:
    """The message's own event time, or None if it has none we can read."""
    try:
        return event_time(parse(decode(raw)), site)
    except (ValueError, Hl7Refusal):  # unreadable or no usable time: intake will say why
        return None


def replay(intake: Intake, clock: FixedClock, messages: Iterable[bytes],
           channel: str = Channel.FILE,
           on_receipt: Callable[[Receipt], None] | None = None,
           meanwhile: Callable[[datetime], None] | None = None) -> None:
    """Ingest messages with the clock at each one's event time, running due evaluations first.

    `meanwhile(until)` runs before stream time moves on to `until`: what else happens in the
    hospital between two messages (the demo's simulated staff working their lists)."""
    for raw in messages:
        when = event_time_of(raw, intake.site)
        if when is not None and when > clock.instant:
            if meanwhile is not None:
                meanwhile(when)
            advance(intake, clock, when)
        receipt = intake.hl7(raw, channel=channel)
        if on_receipt is not None:
            on_receipt(receipt)


def advance(intake: Intake, clock: FixedClock, until: datetime) -> int:
    """Move stream time to `until`, stopping at each boundary on the way, in order.

    Each due encounter is evaluated at its own boundary (the second midnight, the 36th
    hour), not at the time of the next message, so outputs carry the time they arose.
    """
    done = 0
    earliest = _earliest(intake) if intake.rules.current is not None else None
    while intake.rules.current is not None and earliest is not None and earliest <= until:
        clock.set(max(earliest, clock.instant))
        done += tick(intake.sessions, intake.rules.current, clock.instant)
        earliest = _earliest(intake)
        if earliest is not None and earliest <= clock.instant:
            break  # still due, so held by another worker: it will be evaluated there
        # (a failed evaluation moved its stay to a retry time: later boundaries still count)
    if until > clock.instant:
        clock.set(until)
    return done


_EARLIEST = select(func.min(Encounter.next_evaluation_at))


def _earliest(intake: Intake) -> datetime | None:
    with intake.sessions() as session:
        return session.scalar(_EARLIEST)


def finish(intake: Intake, clock: FixedClock, until: datetime) -> int:
    """Let stream time run on to `until`, evaluating what falls due on the way."""
    return advance(intake, clock, until)
