"""Histories as non-overlapping periods (locations, care statuses), kept in event time.

Late messages insert their period where it belongs instead of at the end, so the current
value is always "the latest period by start", whatever order the feed delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar


class Period(Protocol):
    start: datetime
    end: datetime | None
    cancelled: bool


P = TypeVar("P", bound=Period)


def active(periods: Sequence[P]) -> list[P]:
    return sorted((p for p in periods if not p.cancelled), key=lambda p: p.start)


def at(periods: Sequence[P], when: datetime) -> P | None:
    """The period in force at `when` (the last one that started at or before it)."""
    found = None
    for p in active(periods):
        if p.start <= when:
            found = p
        else:
            break
    return found


def place(periods: Sequence[P], new: P, same: Callable[[P, P], bool]) -> bool:
    """Insert `new` (its start set) unless the period in force then is already the same.

    Returns True when `new` was placed; the caller adds it to the collection.
    """
    when = new.start
    ordered = active(periods)
    prev = at(ordered, when)
    if prev is not None and same(prev, new):
        return False
    later = [p for p in ordered if p.start > when]
    if later:
        new.end = later[0].start
        if prev is not None:
            prev.end = when
    elif prev is not None:
        new.end = prev.end if prev.end is not None and prev.end > when else None
        prev.end = when
    else:
        new.end = None
    return True


def current(periods: Sequence[P]) -> P | None:
    ordered = active(periods)
    return ordered[-1] if ordered else None


def close(periods: Sequence[P], when: datetime) -> None:
    """End the open period at `when` (discharge)."""
    last = current(periods)
    if last is not None and last.end is None and when >= last.start:
        last.end = when


def reopen(periods: Sequence[P], when: datetime | None) -> None:
    """Undo a close at `when` (cancelled discharge)."""
    last = current(periods)
    if last is not None and (when is None or last.end == when):
        last.end = None
