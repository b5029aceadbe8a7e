"""The engine's own status and kind words, named once so a typo is an AttributeError.

Each is a StrEnum: a member equals its string, hashes like it, renders as it (`str`, f-strings,
Jinja, `json.dumps`) and is stored as it in the plain String columns, so the stored rows, the
FHIR bodies and the pages read exactly as before. (PyYAML's safe dumper is the exception: it
refuses str subclasses, so pass `str(member)` if one ever has to go to YAML.)
"""

from __future__ import annotations

from enum import StrEnum


class OutputKind(StrEnum):
    """What a rule raised (`RuleOutput.kind`)."""

    FLAG = "flag"
    SCORE = "score"
    PROPOSAL = "proposal"
    TASK = "task"


class OutputStatus(StrEnum):
    """The rule engine's view of an output (`RuleOutput.status`)."""

    ACTIVE = "active"
    COMPLETED = "completed"  # set by the people doing the work; the rule never raises it again
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    """Work on a task, as FHIR Task.status (`RuleOutput.task_status`, None meaning ready)."""

    READY = "ready"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"  # tried and could not: the work is still owed
    REJECTED = "rejected"  # declined by a person as not applying: a decision that sticks


# In this order: the worklist's status filter lists them so.
OPEN_TASK_STATUSES = (TaskStatus.READY, TaskStatus.IN_PROGRESS, TaskStatus.ON_HOLD)
TERMINAL_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED,
                          TaskStatus.REJECTED)


class TaskEventAction(StrEnum):
    """What one step of a task's history did (`TaskEvent.action`)."""

    CREATED = "created"
    RELEASED = "released"
    STARTED = "started"
    HELD = "held"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DECLINED = "declined"
    NOTE = "note"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"


class EncounterStatus(StrEnum):
    """The five FHIR Encounter statuses the engine keeps (`Encounter.status`)."""

    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    ONLEAVE = "onleave"
    FINISHED = "finished"
    CANCELLED = "cancelled"


# A stay still running or still expected: evaluated by the clock, counted in caseloads.
OPEN_ENCOUNTER_STATUSES = (EncounterStatus.PLANNED, EncounterStatus.IN_PROGRESS,
                           EncounterStatus.ONLEAVE)


class InputOutcome(StrEnum):
    """What became of one input (`InboundMessage.outcome`, an intake receipt's outcome)."""

    ACCEPTED = "accepted"  # applied (AA, 2xx)
    IGNORED = "ignored"  # understood, nothing to apply (AA)
    REJECTED = "rejected"  # refused: not parseable or not for us (AR)
    ERROR = "error"  # parsed but could not be applied (AE)
    PARTIAL = "partial"  # a cut frame or an oversized head: kept, never replayed
    DUPLICATE = "duplicate"  # a resend of an input already stored: its stored answer
    UNAVAILABLE = "unavailable"  # the store was away: nothing kept, AE / 503


class Channel(StrEnum):
    """The door an input came through (`InboundMessage.channel`)."""

    MLLP = "mllp"
    FILE = "file"
    FHIR = "fhir"
