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


class StoryEvent(_Strict):
    """One step of a story in clinical words: an ADT message (the site profile supplies the
    dialect), a lab result message (R01), or a person completing a task."""

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

    @model_validator(mode="after")
    def _time(self) -> StoryEvent:
        _check_time(self.at)
        if (self.event is None) == (self.complete is None):
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

