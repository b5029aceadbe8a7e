"""What the facts are derived from: one encounter, its histories and the patient's past stays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from engine.core.vocabulary import EncounterStatus


@dataclass(frozen=True)
class Period:
    value: str | None
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class PastStay:
    admit_time: datetime | None
    discharge_time: datetime | None
    statuses: frozenset[str]


@dataclass(frozen=True)
class Review:
    """A utilization review recorded on the stay (engine.work.ur_record.reviews)."""

    reviewed_on: date
    next_review_on: date | None = None
    review_type: str = "continued_stay"
    level_of_care: str = "inpatient"
    criteria_result: str = "met"
    condition_code_44: bool = False
    entered_at: datetime | None = None
    task_id: int | None = None  # the review task it was recorded from (it documents that one)
    advisor_outcome: str | None = None


@dataclass(frozen=True)
class Authorization:
    """A payer authorization of the stay (engine.work.ur_record.authorizations)."""

    status: str
    approved_through: date | None = None
    appeal_deadline: date | None = None
    appeal_outcome: str | None = None
    entered_at: datetime | None = None


@dataclass(frozen=True)
class Barrier:
    """A discharge barrier: open until resolved_at."""

    category: str
    reason_code: str
    opened_at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class AvoidableDays:
    """Days first_day..last_day recorded as avoidable: proposed, confirmed or rejected."""

    first_day: date
    last_day: date
    status: str = "confirmed"
    category: str | None = None


@dataclass
class Snapshot:
    """Plain data: rules never touch the ORM, so tests can build one by hand."""

    encounter_id: int | None = None
    patient_id: int | None = None
    birth_date: date | None = None
    sex: str | None = None
    status: str = EncounterStatus.IN_PROGRESS
    care_status: str | None = None
    patient_class: str | None = None
    patient_type: str | None = None
    unit: str | None = None
    hospital_service: str | None = None
    admission_type: str | None = None
    admit_source: str | None = None
    payer_class: str | None = None
    payer_plan: str | None = None
    authorization: str | None = None
    working_drg: str | None = None
    discharge_disposition: str | None = None
    admit_time: datetime | None = None
    discharge_time: datetime | None = None
    pending_discharge_time: datetime | None = None
    expected_discharge_date: date | None = None
    last_event_time: datetime | None = None
    status_periods: list[Period] = field(default_factory=list)
    locations: list[Period] = field(default_factory=list)
    diagnoses: list[tuple[str, str | None]] = field(default_factory=list)
    past_stays: list[PastStay] = field(default_factory=list)
    open_task_types: list[str] = field(default_factory=list)
    completed_task_types: list[str] = field(default_factory=list)
    # Open tasks' due times by type (the earliest when a type is open twice): overdue work.
    open_task_due: dict[str, datetime] = field(default_factory=dict)
    # When each task type was last completed: recurring reviews count from it.
    last_completed: dict[str, datetime] = field(default_factory=dict)
    # Latest lab values by name (hemoglobin g/dL, sodium mmol/L; engine.core.lab_codes) and
    # whether a procedure was done: the HOSPITAL score's inputs (procedures have no intake yet).
    labs: dict[str, float] = field(default_factory=dict)
    # The disposition a case manager chose on the discharge-plan task (engine.rules.plan).
    chosen_disposition: str | None = None
    # Proposals a person closed (detail "closed_by"): a choice of another disposition, or a
    # decline; the plan does not propose them again (engine.rules.plan).
    closed_dispositions: list[str] = field(default_factory=list)
    had_procedure: bool | None = None
    # The UR record of the stay (void records left out): reviews, payer authorizations,
    # discharge barriers and avoidable days, in the order they were entered.
    reviews: list[Review] = field(default_factory=list)
    authorizations: list[Authorization] = field(default_factory=list)
    barriers: list[Barrier] = field(default_factory=list)
    avoidable_days: list[AvoidableDays] = field(default_factory=list)
