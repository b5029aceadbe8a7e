"""The case schema: what a ruleset test case (rulesets/tests/*.yaml) may say, in clinical
words, and the one reading of its times (hospital-local unless they carry an offset)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.site import CareStatus
from engine.hl7.build import StoryStep
from engine.rules.model import Priority, Severity

KINDS = ("task", "flag", "score", "proposal")
Instant = str | datetime
DiagnosisType = Literal["A", "W", "F"]
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def local_time(value: Instant, zone: ZoneInfo) -> datetime:
    """A case's time: hospital-local unless it carries an offset. Raises ValueError.

    In the repeated autumn hour a local time means its first occurrence (write an offset
    for the second); a spring-forward time that never happened on the wall clock is refused.
    """
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        if not _TIME.match(text):
            raise ValueError(f"{text!r} is not a time: write YYYY-MM-DD HH:MM (local time), "
                             "optionally with an offset such as -06:00")
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        return when.astimezone(UTC)
    aware = when.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != when:
        raise ValueError(f"{when:%Y-%m-%d %H:%M} never happened in {zone.key} "
                         "(the clocks sprang forward)")
    return aware.astimezone(UTC)


def _check_time(value: Instant | None) -> Instant | None:
    if value is not None and not isinstance(value, datetime):
        local_time(value, ZoneInfo("UTC"))  # format only; the zone is the site's
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReviewStep(_Strict):
    """A utilization review a UR nurse records (engine.work.ur_record.reviews)."""

    type: str = Field(default="continued_stay", description="initial, continued_stay, "
                      "retrospective or status_change.")
    reviewed_on: date | None = Field(default=None, description="The review date (default: the "
                                     "step's day).")
    level: str = Field(default="inpatient", description="inpatient, observation, outpatient.")
    result: str = Field(default="met", description="met, not_met, advisor_referral.")
    next_review_on: date | None = Field(default=None, description="The next review date the "
                                        "nurse sets (default: the site's cadence).")
    advisor_outcome: str | None = Field(default=None, description="The physician advisor's "
                                        "outcome (pending, inpatient_supported, ...).")


class AuthorizationStep(_Strict):
    """A payer authorization UR records (engine.work.ur_record.authorizations)."""

    status: str = Field(description="pending, approved, partially_approved, denied, pended.")
    approved_through: date | None = None
    approved_days: int | None = None
    denial_reason: str | None = None
    appeal_level: int | None = None
    appeal_deadline: date | None = None
    appeal_outcome: str | None = None


class BarrierStep(_Strict):
    """A discharge barrier a case manager opens, with a reason from the site's list."""

    reason: str = Field(description="A delay reason code (rulesets/reference/"
                        "delay_reasons.csv).")
    opened: Instant | None = Field(default=None, description="When it began (default: at).")


class AvoidableStep(_Strict):
    """Days UR records as avoidable (confirmed as entered)."""

    first_day: date
    last_day: date | None = None
    reason: str = Field(description="A delay reason code.")


class DecisionStep(_Strict):
    """A UR nurse confirms or rejects the engine's proposed avoidable day."""

    day: date
    confirm: bool


RECORD_STEPS = ("review", "payer_authorization", "barrier", "resolve_barrier", "avoidable",
                "decide_avoidable")


class StoryEvent(_Strict):
    """One step of a story in clinical words: an ADT message (the site profile supplies the
    dialect), a lab result message (R01), a person completing a task, or an entry in the
    stay's UR record (a review, a payer authorization, a barrier opened or resolved,
    avoidable days entered or decided)."""

    event: str | None = Field(default=None, pattern=r"^(A\d\d|R01)$", description="ADT "
                              "trigger: A01 admit, A04 register, A06 observation to "
                              "inpatient, A03 discharge, A11 cancel admit...; R01 lab results")
    complete: str | None = Field(default=None, description="A task type the case manager "
                                 "completes at this time (a notice delivered, a review done).")
    choose: str | None = Field(default=None, description="With complete: confirm-discharge-"
                               "plan, the disposition chosen (snf, home...).")
    labs: dict[str, float] | None = Field(default=None, description="With R01: results by "
                                          "name (hemoglobin g/dL, sodium mmol/L).")
    at: Instant = Field(description="When it happened, local time unless it has an offset.")
    visit: str = Field(default="V1", description="Visit number (PV1-19).")
    mrn: str = Field(default="MRN1", description="Medical record number (PID-3).")
    status: CareStatus | None = Field(
        default=None, description="Care status; sent as the site profile's class/type for it.")
    class_: str | None = Field(default=None, alias="class", description="PV1-2 as sent.")
    type: str | None = Field(default=None, description="PV1-18 as sent.")
    payer: str | None = Field(default=None, description="IN1-2 plan code as sent, or a payer "
                              "class (medicare...) sent as a plan the site maps to it.")
    authorization: str | None = Field(default=None, description="IN1-14.")
    unit: str | None = Field(default=None, description="PV1-3.1 unit.")
    admission_type: str | None = Field(default=None, description="PV1-4: E, U, R, C...")
    service: str | None = Field(default=None, description="PV1-10 hospital service.")
    admit_source: str | None = Field(default=None, description="PV1-14.")
    diagnoses: list[tuple[str, DiagnosisType] | str] | None = Field(
        default=None, description="DG1 segments: [code, type] or code.")
    drg: str | None = Field(default=None, description="DRG-1 working DRG.")
    disposition: str | None = Field(default=None, description="PV1-36 at discharge.")
    expected_discharge: date | None = Field(default=None, description="PV2-9.")
    birth_date: date = Field(default=date(1945, 6, 12), description="PID-7.")
    sex: str = Field(default="F", description="PID-8.")
    prior_mrn: str | None = Field(default=None, description="A40 merge: MRG-1.")
    review: ReviewStep | None = Field(default=None, description="A review recorded; with "
                                      "complete, recorded from the task it completes.")
    payer_authorization: AuthorizationStep | None = Field(
        default=None, description="A payer authorization recorded (an approval, a denial "
        "with its appeal): each step records one more.")
    barrier: BarrierStep | None = Field(default=None, description="A barrier opened.")
    resolve_barrier: str | None = Field(default=None, description="The open barrier with this "
                                        "reason code is resolved at `at`.")
    avoidable: AvoidableStep | None = Field(default=None, description="Avoidable days "
                                            "entered by UR.")
    decide_avoidable: DecisionStep | None = Field(default=None, description="A proposed "
                                                  "avoidable day confirmed or rejected.")

    @property
    def records(self) -> list[str]:
        """The UR record entries this step makes."""
        return [name for name in RECORD_STEPS if getattr(self, name) is not None]

    @model_validator(mode="after")
    def _time(self) -> StoryEvent:
        _check_time(self.at)
        if self.barrier is not None:
            _check_time(self.barrier.opened)
        records = self.records
        if len(records) > 1:
            raise ValueError(f"a story step records one thing; this one has {', '.join(records)}")
        if records and self.event is not None:
            raise ValueError("a UR record entry is its own step, not part of a message")
        if records and self.complete is not None and records != ["review"]:
            raise ValueError("only a review goes with `complete` (recorded from the task)")
        if self.event is None and self.complete is None and not records:
            raise ValueError("a story step is an `event`, a `complete` or a UR record entry "
                             f"({', '.join(RECORD_STEPS)})")
        if self.event is not None and self.complete is not None:
            raise ValueError("a story step is either an `event` or a `complete`")
        if self.choose is not None and self.complete is None:
            raise ValueError("`choose` goes with `complete` (the discharge-plan task)")
        if (self.event == "R01") != (self.labs is not None):
            raise ValueError("lab results (`labs`) come with event R01, and R01 with labs")
        return self


    def step(self) -> StoryStep:
        """The message this event sends, for the HL7 builder (an `event` step only)."""
        assert self.event is not None
        return StoryStep(
            event=self.event, visit=self.visit, mrn=self.mrn, status=self.status,
            patient_class=self.class_, patient_type=self.type, payer=self.payer,
            authorization=self.authorization, unit=self.unit,
            admission_type=self.admission_type, service=self.service,
            admit_source=self.admit_source, diagnoses=self.diagnoses, drg=self.drg,
            disposition=self.disposition, expected_discharge=self.expected_discharge,
            birth_date=self.birth_date, sex=self.sex, prior_mrn=self.prior_mrn, labs=self.labs)

class _OutputRef(_Strict):
    task: str | None = None
    flag: str | None = None
    score: str | None = None
    proposal: str | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("name exactly one of task, flag, score, proposal")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k))

    @property
    def code(self) -> str:
        return getattr(self, self.kind)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.code}"


class Absent(_OutputRef):
    """An output that must not be active."""


class Expected(_OutputRef):
    """An output that must be active; any field given must match too."""

    rule: str | None = Field(default=None, description="The rule that raised it.")
    due: Instant | None = None
    priority: Priority | None = None
    queue: str | None = None
    severity: Severity | None = None
    value: float | None = Field(default=None, description="A score's value.")
    tier: str | None = Field(default=None, description="A score's tier (low, intermediate, "
                             "moderate, high: as its rule names them).")
    plan: Literal["primary", "alternative"] | None = Field(
        default=None, description="A proposed disposition's place in the discharge plan.")

    @model_validator(mode="after")
    def _time(self) -> Expected:
        _check_time(self.due)
        return self


class Case(_Strict):
    name: str = Field(min_length=1, description="The clinical story in one line.")
    story: list[StoryEvent] | None = Field(default=None, min_length=1)
    facts: dict[str, Any] | None = Field(default=None, description="Fact values (see `engine "
                                         "rules facts`), evaluated without a story.")
    diagnoses: list[tuple[str, DiagnosisType] | str] | None = Field(
        default=None, description="With facts: the diagnoses diagnosis conditions read.")
    visit: str | None = Field(default=None, description="Whose outputs to check (default: "
                              "the visit of the story's last event).")
    at: Instant | None = Field(default=None, description="When to look (default: the last "
                               "story event).")
    expect: list[Expected] = Field(default_factory=list)
    not_: list[Absent] = Field(default_factory=list, alias="not")
    known_gap: str | None = Field(default=None, description="Why this case fails today (a "
                                  "rule awaiting a fix); it fails the run once it passes.")

    @model_validator(mode="after")
    def _shape(self) -> Case:
        if (self.story is None) == (self.facts is None):
            raise ValueError("a case has either a story or facts")
        if self.facts is not None and self.visit is not None:
            raise ValueError("visit goes with a story")
        if self.story is not None and self.diagnoses is not None:
            raise ValueError("in a story, diagnoses come with the events (DG1)")
        if not self.expect and not self.not_:
            raise ValueError("a case lists outputs to expect, or not to see, or both")
        _check_time(self.at)
        return self


class CaseFile(_Strict):
    description: str = ""
    cases: list[Case] = Field(min_length=1)

