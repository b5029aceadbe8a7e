"""The ruleset file format, as pydantic models: what clinical informaticists write in YAML.

The JSON Schema shipped in rulesets/ruleset.schema.json is generated from these models
(`engine rules schema`), so editors validate files as people type.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

Scalar = str | int | float | bool
# What a comparison compares with; its operator decides which: a list for in/not_in, a
# [low, high] pair for between, a number, a pattern, a flag for is_set, else a scalar.
Operand = Scalar | list[Scalar] | tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Comparison(_Strict):
    """A fact compared with a value: exactly one operator besides `fact`."""

    fact: str = Field(description="A fact from the catalogue (`engine rules facts`).")
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    greater_than: float | None = None
    at_least: float | None = None
    less_than: float | None = None
    at_most: float | None = None
    between: tuple[float, float] | None = Field(
        default=None, description="Inclusive range [low, high]."
    )
    matches: str | None = Field(default=None, description="Regular expression (search).")
    contains: Scalar | None = Field(default=None, description="For list facts: has this item.")
    is_set: bool | None = Field(default=None, description="true: the fact is known.")

    @model_validator(mode="after")
    def _one_operator(self) -> Comparison:
        ops = [name for name in OPERATORS if getattr(self, name) is not None]
        if len(ops) != 1:
            raise ValueError(
                f"condition on fact {self.fact!r} needs exactly one operator "
                f"({', '.join(o.rstrip('_') for o in OPERATORS)}); found {len(ops)}"
            )
        return self

    @property
    def operator(self) -> str:
        return next(name for name in OPERATORS if getattr(self, name) is not None)

    @property
    def operand(self) -> Operand:
        value: Operand = getattr(self, self.operator)
        return value


OPERATORS = ("equals", "not_equals", "in_", "not_in", "greater_than", "at_least", "less_than",
             "at_most", "between", "matches", "contains", "is_set")


class DiagnosisMatch(_Strict):
    codes: list[str] | None = Field(
        default=None, description="ICD-10-CM codes or prefixes (I63 matches I63.9)."
    )
    value_set: str | None = Field(
        default=None, description="Name of a value set in rulesets/reference/."
    )
    types: list[Literal["A", "W", "F"]] | None = Field(
        default=None, description="Only diagnoses of these DG1-6 types (A, W, F)."
    )

    @model_validator(mode="after")
    def _something(self) -> DiagnosisMatch:
        if not self.codes and not self.value_set:
            raise ValueError("a diagnosis condition needs `codes` or `value_set`")
        return self


class DiagnosisCondition(_Strict):
    """True when any of the encounter's diagnoses matches."""

    diagnosis: DiagnosisMatch


class OutputRef(_Strict):
    flag: str | None = None
    proposal: str | None = None
    task: str | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _one(self) -> OutputRef:
        given = [k for k in ("flag", "proposal", "task", "rule") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("an output reference names exactly one of flag, proposal, task, rule")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("flag", "proposal", "task", "rule") if getattr(self, k))

    @property
    def name(self) -> str:
        value: str = getattr(self, self.kind)
        return value


class OutputCondition(_Strict):
    """True when another rule's output is raised in this same evaluation."""

    output: OutputRef


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Strict):
    not_: Condition = Field(alias="not")


def _condition_kind(value: object) -> str | None:
    """Pick the condition form by its key, so errors speak about the form the author meant."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key, tag in (("all", "AllOf"), ("any", "AnyOf"), ("not", "NotOf"),
                         ("diagnosis", "DiagnosisCondition"), ("output", "OutputCondition"),
                         ("fact", "Comparison")):
            if key in value:
                return tag
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("AllOf")]
    | Annotated[AnyOf, Tag("AnyOf")]
    | Annotated[NotOf, Tag("NotOf")]
    | Annotated[DiagnosisCondition, Tag("DiagnosisCondition")]
    | Annotated[OutputCondition, Tag("OutputCondition")]
    | Annotated[Comparison, Tag("Comparison")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="a condition is one of: all, any, not, diagnosis, output, fact",
    ),
]

Anchor = Literal[
    "admission", "observation_start", "inpatient_start", "discharge", "expected_discharge",
    "pending_discharge", "event", "fired",
    # From the stay's UR record (local midnight starting the day; unknown without one): the
    # latest review's next review date, the last approved day of the payer's approvals, the
    # nearest filing deadline of an appeal not yet decided.
    "next_review", "approved_through", "appeal_deadline",
]


class Due(_Strict):
    """When a task is due: an anchor time plus hours, the Nth midnight, N business days, or a
    working hour N calendar days before the anchor's day (a notice due before a discharge)."""

    after: Anchor = Field(description="The time the due time counts from.")
    hours: float | None = Field(default=None, ge=0)
    midnights: int | None = Field(default=None, ge=1, description="The Nth local midnight.")
    business_days: int | None = Field(
        default=None, ge=0, description="End of the Nth business day (weekends and holidays)."
    )
    days_before: int | None = Field(
        default=None, ge=0, description="The local calendar day this many days before the "
        "anchor's day, at `at` (e.g. the day before the expected discharge).",
    )
    days_after: int | None = Field(
        default=None, ge=0, description="The local calendar day this many days after the "
        "anchor's day, at `at` (e.g. a notice due within 2 calendar days of admission, at a "
        "working hour rather than at the midnight that ends the last day).",
    )
    at: str | None = Field(
        default=None, pattern=r"^\d{2}:\d{2}$",
        description="Local time of day for business_days, days_before and days_after "
        "(default 23:59).",
    )
    working_hours: str | None = Field(
        default=None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="Local working hours, e.g. 08:00-17:00: a due time already past when the "
        "task is raised becomes the raise time, and one outside these hours moves to the "
        "start of the next working hours (no overnight due times). Applied before or_sooner.",
    )
    or_sooner: list[Anchor] | None = Field(
        default=None,
        description="Due at the first of these moments if it comes before (e.g. release).",
    )

    @model_validator(mode="after")
    def _one(self) -> Due:
        given = [k for k in ("hours", "midnights", "business_days", "days_before", "days_after")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("a due time uses one of hours, midnights, business_days, "
                             "days_before, days_after")
        return self


Severity = Literal["low", "moderate", "high"]
Priority = Literal["routine", "urgent", "asap", "stat"]
Transition = Literal["irf", "snf", "home_health", "outpatient_followup", "home", "hospice", "ltach"]


class FlagAction(_Strict):
    code: str
    severity: Severity = "moderate"
    text: str
    label: str | None = Field(default=None, description="The flag in a few words, as pages "
                              "show it (\"Excess days\"); default: its text.")


class Tier(_Strict):
    """One published risk band of a score, e.g. HOSPITAL 5-6 "intermediate" (Donze 2013)."""

    name: str = Field(pattern=r"^[a-z][a-z_-]*$", description="The tier's word as the source "
                      "publishes it: low, intermediate, moderate, high. The tier named `high` "
                      "is the score's high risk.")
    below: float | None = Field(default=None, description="Values below this, and at or above "
                                "the previous tier's bound, are in this tier; the last tier "
                                "has none.")


class ScoreComponent(_Strict):
    """One part of a score as a person reads it: "Length of stay: 5 days (4 points)"."""

    fact: str = Field(description="The fact holding the part's value.")
    label: str | None = Field(default=None, description="Its name in words (default: the "
                              "fact's name).")
    points: str | None = Field(default=None, description="The fact holding the points this "
                               "part adds to the score.")
    items: Literal["charlson"] | None = Field(default=None, description="A list fact whose "
                                              "items are Charlson conditions: each is shown in "
                                              "words with its weight.")


class ScoreAction(_Strict):
    name: str
    label: str | None = Field(default=None, description="The score's short name on pages "
                              "(default: its name in capitals).")
    fact: str = Field(description="The fact holding the score's value.")
    high_at: float | None = Field(default=None, description="Values at or above are high "
                                  "risk; use tiers for a score with published bands.")
    tiers: list[Tier] | None = Field(default=None, min_length=2, description="The published "
                                     "risk bands, lowest first.")
    components: list[str | ScoreComponent] = Field(
        default_factory=list, description="Its parts: fact names, or facts with a label and "
        "the points they add.")

    @model_validator(mode="after")
    def _tiers(self) -> ScoreAction:
        if self.tiers is None:
            return self
        if self.high_at is not None:
            raise ValueError("a score gives high_at or tiers, not both")
        limits = [t.below for t in self.tiers[:-1] if t.below is not None]
        if self.tiers[-1].below is not None or len(limits) != len(self.tiers) - 1:
            raise ValueError("every tier but the last gives `below`; the last has none")
        if any(a >= b for a, b in zip(limits, limits[1:], strict=False)):
            raise ValueError("tiers go from low to high: each `below` above the previous one")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names are unique")
        return self

    @property
    def parts(self) -> list[ScoreComponent]:
        return [ScoreComponent(fact=c) if isinstance(c, str) else c for c in self.components]

    def tier(self, value: float | None) -> str | None:
        """The tier a value falls in (None without tiers or value)."""
        if value is None or not self.tiers:
            return None
        return next(t.name for t in self.tiers if t.below is None or value < t.below)

    @property
    def high_threshold(self) -> float | None:
        """Where high risk starts: high_at, or the bound below the tier named high."""
        if self.tiers:
            names = [t.name for t in self.tiers]
            if "high" in names and names.index("high") > 0:
                return self.tiers[names.index("high") - 1].below
            return None
        return self.high_at


Confidence = Literal["low", "moderate", "high"]


class ProposeAction(_Strict):
    transition: Transition
    title: str | None = Field(default=None, description="How a nurse names the setting "
                              "(\"Inpatient rehabilitation\"); shown for the proposal.")
    reasons: list[str] = Field(min_length=1)
    confidence: Confidence = "moderate"
    rank: int | None = Field(
        default=None, ge=1, description="Place in the stay's discharge plan: the proposed "
        "disposition with the lowest rank is the primary recommendation, the others are "
        "alternatives (ties: higher confidence first, then the transition code). Omit for a "
        "proposal that is not a disposition and stands beside the plan (outpatient "
        "follow-up).")


class Repeat(_Strict):
    """A recurring task (continued-stay reviews): once one is completed, the next one opens,
    due `every` days after that completion; the first is due that long after `due.after`,
    or after the due time of an open `counts_from` task when that is later."""

    every_days: float | None = Field(default=None, gt=0, description="A fixed interval.")
    every_days_fact: str | None = Field(
        default=None, description="A number fact holding the interval in days, e.g. "
        "ur_review_interval_days (the site profile's cadence for the payer class).")
    counts_from: list[str] = Field(
        default_factory=list, description="Other task types whose completion also restarts "
        "the interval (e.g. initial-ur-review). The first occurrence is never due before "
        "them: while one is open, the interval counts from its due time.")
    next_review_at: str | None = Field(
        default=None, pattern=r"^\d{2}:\d{2}$", description="Local time of day. Once a "
        "review is recorded on the stay (the UR record), the next occurrence is due at this "
        "time on the latest review's next review date (the site's cadence from the review "
        "day, or the day the nurse set) instead of every_days after the last completion; "
        "without a recorded review the completions count as before.")

    @model_validator(mode="after")
    def _one(self) -> Repeat:
        if (self.every_days is None) == (self.every_days_fact is None):
            raise ValueError("repeat needs one of every_days, every_days_fact")
        return self


class TaskAction(_Strict):
    type: str
    title: str
    instructions: str = ""
    priority: Priority = "routine"
    due: Due | None = None
    repeat: Repeat | None = Field(default=None, description="Raise the task again after each "
                                  "completion (a review cadence).")
    queue: str | None = Field(default=None, description="Role or queue the task goes to.")
    after: list[str] = Field(
        default_factory=list, description="Task types this one comes after: it cannot be "
        "completed while one of them is open on the stay (the follow-up IM after the IM).")
    requires_record: Literal["utilization_review"] | None = Field(
        default=None, description="The task is completed only once this record is kept in "
        "the stay's UR record: utilization_review, a review recorded from the task or on the "
        "stay since the task was raised (a review task is not done until the review is "
        "documented).")
    once_per: str | None = Field(
        default=None, description="A fact (text) naming what the task is about (the barrier's "
        "opening time, the streak's first day, the last approved day, the appeal's deadline): "
        "the task is raised once for each value, so completing it for one barrier does not "
        "keep the next barrier from being escalated, and it is withdrawn when the value "
        "changes (that barrier resolved).")
    plan: bool = Field(default=False, description="The task confirms the stay's discharge "
                       "plan: the engine adds the ranked proposals (primary and alternatives) "
                       "to its instructions, and completing it records the chosen "
                       "disposition, which closes the other proposals.")


ActionBody = FlagAction | ScoreAction | ProposeAction | TaskAction


class Action(_Strict):
    flag: FlagAction | None = None
    score: ScoreAction | None = None
    propose: ProposeAction | None = None
    task: TaskAction | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in ("flag", "score", "propose", "task") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("each action is exactly one of flag, score, propose, task")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("flag", "score", "propose", "task") if getattr(self, k))

    @property
    def output_kind(self) -> str:
        """The stored output's kind (flag | score | proposal | task): a `propose` action
        raises a proposal."""
        return "proposal" if self.kind == "propose" else self.kind

    @property
    def body(self) -> ActionBody:
        value: ActionBody = getattr(self, self.kind)
        return value

    @property
    def code(self) -> str:
        body = self.body
        if isinstance(body, FlagAction):
            return body.code
        if isinstance(body, ScoreAction):
            return body.name
        if isinstance(body, ProposeAction):
            return body.transition
        return body.type


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Stable id, never reused.")
    title: str
    description: str = ""
    citation: str = Field(description="Source or rationale: the regulation, paper or policy.")
    enabled: bool = True
    when: Condition
    then: list[Action] = Field(min_length=1)
    reconsider_when: list[str] | None = Field(
        default=None, description="When a person declines this rule's work, the decision holds "
        "until one of these facts changes (fact names, or `diagnoses`: the diagnosis codes the "
        "rule's conditions matched; [] holds for the whole stay). Default: care_status and "
        "diagnoses; a transfer or a new lab never reopen a decision unless named here.")


class Ruleset(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: str = Field(description="The authors' label; the engine also hashes the content.")
    owner: str
    description: str = ""
    rules: list[Rule] = Field(min_length=1)


AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
Rule.model_rebuild()
Ruleset.model_rebuild()
