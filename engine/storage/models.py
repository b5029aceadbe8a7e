"""The engine's state: patients, encounters and their histories, and every input received."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.core import limits
from engine.storage.types import UtcDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    family: Mapped[str | None] = mapped_column(String(limits.NAME))
    given: Mapped[str | None] = mapped_column(String(limits.NAME))
    middle: Mapped[str | None] = mapped_column(String(limits.NAME))
    birth_date: Mapped[date | None] = mapped_column(Date)
    birth_precision: Mapped[str | None] = mapped_column(String(5))  # year | month | day
    sex: Mapped[str | None] = mapped_column(String(limits.SEX))
    address: Mapped[dict[str, Any] | None]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    # False after an A29 (delete person information): kept, shown inactive, no work raised.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    as_of: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(index=True)  # _lastUpdated polls

    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )
    identity_changes: Mapped[list[IdentityChange]] = relationship(
        back_populates="patient", order_by="IdentityChange.id",
        foreign_keys="IdentityChange.patient_id",
    )


class PatientIdentifier(Base):
    __tablename__ = "patient_identifier"
    __table_args__ = (UniqueConstraint("system", "value", name="uq_patient_identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    system: Mapped[str] = mapped_column(String(limits.ID_SYSTEM))
    value: Mapped[str] = mapped_column(String(limits.ID_VALUE))
    type_code: Mapped[str | None] = mapped_column(String(limits.ID_TYPE))
    is_mrn: Mapped[bool] = mapped_column(Boolean, default=False)
    # The namespace id (CX-4.1) sent beside an OID or URI system: searchable as sent.
    namespace: Mapped[str | None] = mapped_column(String(limits.ID_SYSTEM))

    patient: Mapped[Patient] = relationship(back_populates="identifiers")


class Encounter(Base):
    __tablename__ = "encounter"
    __table_args__ = (
        UniqueConstraint("visit_system", "visit_number", name="uq_encounter_visit"),
        Index("ix_encounter_status_unit", "status", "unit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    visit_system: Mapped[str] = mapped_column(String(limits.ID_SYSTEM))
    visit_number: Mapped[str] = mapped_column(String(limits.ID_VALUE))
    # planned | in-progress | onleave | finished | cancelled
    status: Mapped[str] = mapped_column(String(20))
    care_status: Mapped[str | None] = mapped_column(String(20))
    patient_class: Mapped[str | None] = mapped_column(String(limits.PATIENT_CLASS))
    patient_type: Mapped[str | None] = mapped_column(String(limits.PATIENT_TYPE))
    admit_time: Mapped[datetime | None]
    discharge_time: Mapped[datetime | None]
    pending_discharge_time: Mapped[datetime | None]
    expected_discharge_date: Mapped[date | None] = mapped_column(Date)
    facility: Mapped[str | None] = mapped_column(String(limits.PLACE))
    unit: Mapped[str | None] = mapped_column(String(limits.PLACE))
    room: Mapped[str | None] = mapped_column(String(limits.PLACE))
    bed: Mapped[str | None] = mapped_column(String(limits.PLACE))
    attending_id: Mapped[str | None] = mapped_column(String(limits.ATTENDING_ID))
    attending_name: Mapped[str | None] = mapped_column(String(limits.ATTENDING_NAME))
    hospital_service: Mapped[str | None] = mapped_column(String(limits.SERVICE))
    admission_type: Mapped[str | None] = mapped_column(String(limits.SHORT_CODE))
    admit_source: Mapped[str | None] = mapped_column(String(limits.SHORT_CODE))
    discharge_disposition: Mapped[str | None] = mapped_column(String(limits.SHORT_CODE))
    payer_plan: Mapped[str | None] = mapped_column(String(limits.PLAN))
    payer_name: Mapped[str | None] = mapped_column(String(limits.PAYER))
    payer_class: Mapped[str | None] = mapped_column(String(30))
    authorization: Mapped[str | None] = mapped_column(String(limits.AUTH))
    working_drg: Mapped[str | None] = mapped_column(String(limits.DRG))
    working_drg_text: Mapped[str | None] = mapped_column(String(limits.DRG_TEXT))
    diagnoses_digest: Mapped[str | None] = mapped_column(String(40))
    # The clock: when this encounter's facts next change enough to matter (rules issue).
    next_evaluation_at: Mapped[datetime | None] = mapped_column(index=True)
    evaluated_at: Mapped[datetime | None]
    as_of: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(index=True)  # _lastUpdated polls

    patient: Mapped[Patient] = relationship()
    locations: Mapped[list[LocationStay]] = relationship(
        back_populates="encounter", order_by="LocationStay.start", cascade="all, delete-orphan"
    )
    status_periods: Mapped[list[StatusPeriod]] = relationship(
        back_populates="encounter", order_by="StatusPeriod.start", cascade="all, delete-orphan"
    )
    diagnoses: Mapped[list[Diagnosis]] = relationship(
        back_populates="encounter", order_by="Diagnosis.sequence", cascade="all, delete-orphan"
    )


class LocationStay(Base):
    """Where the patient was, from when to when; cancelled transfers stay, marked."""

    __tablename__ = "location_stay"

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"), index=True)
    facility: Mapped[str | None] = mapped_column(String(limits.PLACE))
    unit: Mapped[str | None] = mapped_column(String(limits.PLACE))
    room: Mapped[str | None] = mapped_column(String(limits.PLACE))
    bed: Mapped[str | None] = mapped_column(String(limits.PLACE))
    start: Mapped[datetime]
    end: Mapped[datetime | None]
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)

    encounter: Mapped[Encounter] = relationship(back_populates="locations")


class StatusPeriod(Base):
    """Care status over time (emergency, observation, inpatient...): midnights count from it."""

    __tablename__ = "status_period"

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"), index=True)
    care_status: Mapped[str] = mapped_column(String(20))
    start: Mapped[datetime]
    end: Mapped[datetime | None]
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)

    encounter: Mapped[Encounter] = relationship(back_populates="status_periods")


class Diagnosis(Base):
    __tablename__ = "diagnosis"

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(limits.DX_CODE))
    system: Mapped[str | None] = mapped_column(String(limits.DX_SYSTEM))
    display: Mapped[str | None] = mapped_column(String(limits.DX_TEXT))
    diagnosis_type: Mapped[str | None] = mapped_column(String(limits.DX_TYPE))

    encounter: Mapped[Encounter] = relationship(back_populates="diagnoses")


class PatientMerge(Base):
    """A40: the merged patient row stays, pointing at the survivor, so no history is lost."""

    __tablename__ = "patient_merge"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))
    event_time: Mapped[datetime]
    prior_identifiers: Mapped[dict[str, Any] | None]

    message: Mapped[InboundMessage | None] = relationship()


class IdentityChange(Base):
    """The history of an identity event: an identifier or visit number changed (A47, A50),
    a visit moved between patients (A45), a person inactivated or back (A29). The rows it
    changed hold only the new state; this keeps the old one and the message that did it."""

    __tablename__ = "identity_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))
    # identifier | visit_number | visit_moved | inactivated | reactivated
    kind: Mapped[str] = mapped_column(String(20))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    from_patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    system: Mapped[str | None] = mapped_column(String(limits.ID_SYSTEM))
    old_value: Mapped[str | None] = mapped_column(String(limits.ID_VALUE))
    new_value: Mapped[str | None] = mapped_column(String(limits.ID_VALUE))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))
    event_time: Mapped[datetime]
    recorded_at: Mapped[datetime]

    patient: Mapped[Patient] = relationship(back_populates="identity_changes",
                                            foreign_keys=[patient_id])


class InboundMessage(Base):
    """Every input as received, whatever became of it: the store of "nothing is lost"."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        # One row per sender, MSH-10 and content: a resend is found by it (and a concurrent
        # twin fails its insert), while a reused MSH-10 with new content is a new message.
        UniqueConstraint("sender", "control_id", "content_digest",
                         name="uq_inbound_sender_control_content"),
        Index("ix_inbound_outcome", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))  # mllp | file | fhir
    sender: Mapped[str | None] = mapped_column(String(limits.SENDER))
    control_id: Mapped[str | None] = mapped_column(String(limits.CONTROL_ID))
    # What a resend must match besides sender and MSH-10 (engine.intake.path.content_digest);
    # "" for FHIR inputs, whose identifier alone names them; None on rows from before 0006.
    content_digest: Mapped[str | None] = mapped_column(String(64))
    message_type: Mapped[str | None] = mapped_column(String(20))
    trigger: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[str | None] = mapped_column(String(20))
    event_time: Mapped[datetime | None]
    received_at: Mapped[datetime]
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # accepted | ignored (harmless, AA) | error (AE, quarantined) | rejected (AR, quarantined)
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    # What was accepted but not kept exactly as sent (a value cut to fit, an unmapped code,
    # an unusable MSH-7 read from EVN...), one line each: `engine hl7 warnings` lists them.
    warnings: Mapped[str | None] = mapped_column(Text)
    ack: Mapped[str | None] = mapped_column(Text)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounter.id"), index=True)

    patient: Mapped[Patient | None] = relationship()
    encounter: Mapped[Encounter | None] = relationship()


class EncounterEvent(Base):
    """The applied event log of an encounter: its timeline, in event time."""

    __tablename__ = "encounter_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))
    trigger: Mapped[str] = mapped_column(String(20))
    event_time: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str | None] = mapped_column(String(300))

    encounter: Mapped[Encounter] = relationship()
    message: Mapped[InboundMessage | None] = relationship()


class RuleOutput(Base):
    """A flag, score, proposal or task raised by a rule, reconciled on every evaluation.

    One row per (encounter, rule, kind, code) while active; when the rule stops firing the
    row is cancelled with the reason, and completed work is never reopened or recreated.
    """

    __tablename__ = "rule_output"
    __table_args__ = (
        Index("ix_rule_output_encounter_key", "encounter_id", "key"),
        Index("ix_rule_output_open", "status", "kind", "due_at"),
        Index("ix_rule_output_owner", "owner", "task_status", "due_at"),
        Index("ix_rule_output_owner_id", "owner", "kind", "id"),  # a person's work by id
        Index("ix_rule_output_escalated_to", "escalated_to", "task_status", "due_at"),
        # tasks by type and due time, for the metrics (IM, MOON, reviews on time)
        Index("ix_rule_output_code_due", "code", "due_at",
              postgresql_include=["kind", "task_status", "ended_at", "encounter_id"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # rule_id/kind/code
    kind: Mapped[str] = mapped_column(String(10))  # flag | score | proposal | task
    code: Mapped[str] = mapped_column(String(100))
    rule_id: Mapped[str] = mapped_column(String(100))
    ruleset: Mapped[str] = mapped_column(String(100))
    ruleset_version: Mapped[str] = mapped_column(String(40))
    # active | cancelled | completed (completed is set by the people doing the work)
    status: Mapped[str] = mapped_column(String(12))
    title: Mapped[str | None] = mapped_column(String(300))
    severity: Mapped[str | None] = mapped_column(String(12))
    priority: Mapped[str | None] = mapped_column(String(12))
    queue: Mapped[str | None] = mapped_column(String(50))
    value: Mapped[float | None]
    due_at: Mapped[datetime | None]
    detail: Mapped[dict[str, Any] | None]
    facts: Mapped[dict[str, Any] | None]
    fired_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)  # _lastUpdated polls
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Work on a task (kind == "task"), as FHIR Task.status: ready | in-progress | on-hold |
    # completed | cancelled | failed. `status` above stays the rule engine's view.
    task_status: Mapped[str | None] = mapped_column(String(12))
    owner: Mapped[str | None] = mapped_column(String(100))  # user name; None = the queue
    outcome: Mapped[str | None] = mapped_column(String(500))  # completion outcome / reason
    started_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    # the supervisor an overdue task was escalated to; the owner keeps the task
    escalated_to: Mapped[str | None] = mapped_column(String(100))

    encounter: Mapped[Encounter] = relationship()
    patient: Mapped[Patient] = relationship()


class TaskEvent(Base):
    """One step in a task's history: who did what, when, from which status to which."""

    __tablename__ = "task_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("rule_output.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))  # user or client name, or "engine"
    action: Mapped[str] = mapped_column(String(20))  # created | assigned | started | ...
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str | None] = mapped_column(String(12))
    text: Mapped[str | None] = mapped_column(Text)  # note, outcome or reason
    detail: Mapped[dict[str, Any] | None]

    # Set instead of output_id so a step can be recorded before its new task is flushed.
    output: Mapped[RuleOutput] = relationship()


class CaseAssignment(Base):
    """Who looks after an encounter in a role; kept across transfers until reassigned."""

    __tablename__ = "case_assignment"
    __table_args__ = (
        UniqueConstraint("encounter_id", "role", name="uq_case_assignment_role"),
        Index("ix_case_assignment_user", "user_name", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    role: Mapped[str] = mapped_column(String(20))  # case_manager | ur_nurse
    user_name: Mapped[str] = mapped_column(String(100))
    assigned_at: Mapped[datetime]
    assigned_by: Mapped[str] = mapped_column(String(100))

    # Set instead of encounter_id so a new stay can be assigned before it is flushed.
    encounter: Mapped[Encounter] = relationship()


class UserAccount(Base):
    """A person who signs in: one role, a KDF password hash, never a plain password."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # bumped to revoke every token and session issued before
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiClient(Base):
    """A system (the EHR, an interface engine) using the client-credentials grant."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    scopes: Mapped[str] = mapped_column(String(1000))  # space-separated, as OAuth2 sends them
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AuditRecord(Base):
    """Every read or change of patient data and every sign-in: served as FHIR AuditEvent."""

    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_at", "at"),
        Index("ix_audit_record_actor", "actor", "at"),
        Index("ix_audit_record_patient", "patient_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    actor_kind: Mapped[str] = mapped_column(String(10))  # user | client | anonymous
    role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(10))  # C R U D E (FHIR AuditEvent.action)
    operation: Mapped[str] = mapped_column(String(40))  # read | search | update | login ...
    resource_type: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(100))
    patient_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(2))  # 0 success, 4 minor, 8 serious failure
    status_code: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(100))  # client address
    path: Mapped[str | None] = mapped_column(String(300))  # path only, never the query


class LabResult(Base):
    """A lab value the scores read (hemoglobin, sodium), from HL7 OBX or FHIR Observation.

    One row per patient, test and effective time: a result sent again (a resend, a
    correction) updates its row; the latest by effective time, not by arrival, is current.
    """

    __tablename__ = "lab_result"
    __table_args__ = (
        UniqueConstraint("patient_id", "code", "effective_at", name="uq_lab_result"),
        Index("ix_lab_result_visit", "visit_system", "visit_number", "name", "effective_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    # The visit the result was ordered in (PV1-19, Observation.encounter), when sent.
    visit_system: Mapped[str | None] = mapped_column(String(limits.ID_SYSTEM))
    visit_number: Mapped[str | None] = mapped_column(String(limits.ID_VALUE))
    name: Mapped[str] = mapped_column(String(30))  # hemoglobin | sodium
    code: Mapped[str] = mapped_column(String(20))  # LOINC
    value: Mapped[float]
    unit: Mapped[str] = mapped_column(String(20))  # the engine's unit (g/dL, mmol/L)
    status: Mapped[str | None] = mapped_column(String(20))  # OBX-11 or Observation.status
    effective_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))


class Decision(Base):
    """A person declined work a rule raised for a stay: who, when, why, and the values of the
    facts the decision rests on. While those values stand the rule does not raise that work
    again (engine.planning.held); when one changes the decision lapses, once."""

    __tablename__ = "decision"
    __table_args__ = (Index("ix_decision_encounter_open", "encounter_id", "lapsed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    output_id: Mapped[int | None] = mapped_column(ForeignKey("rule_output.id"))
    rule_id: Mapped[str] = mapped_column(String(100))
    output_key: Mapped[str] = mapped_column(String(200))  # rule_id/kind/code
    kind: Mapped[str] = mapped_column(String(10))  # task | proposal
    by: Mapped[str] = mapped_column(String(100))  # user or client name
    by_display: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]
    reason_code: Mapped[str] = mapped_column(String(40))  # engine.core.declines
    reason_text: Mapped[str | None] = mapped_column(String(500))
    # {fact: value} of the facts it holds while (None until the stay is next evaluated,
    # in the same transaction as the decline)
    holds_on: Mapped[dict[str, Any] | None]
    lapsed_at: Mapped[datetime | None]
    lapsed_because: Mapped[str | None] = mapped_column(String(300))

    encounter: Mapped[Encounter] = relationship()


# --- The UR nurse's record (issue 15): reviews, authorizations, barriers, avoidable days ---
# Every record keeps who entered it and when; a correction bumps `version` and keeps the
# state before it as a RecordRevision, so nothing a person recorded is ever erased. A record
# entered in error is voided (voided_at, void_reason), never deleted.


class Kept:
    """Who entered a UR record and when, who changed it last, its version, and its void: the
    bookkeeping every record carries (engine.work.ur_record.revisions keeps what it was)."""

    entered_by: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(500))


class UtilizationReview(Kept, Base):
    """One utilization review of a stay: the level of care reviewed against the site's
    criteria set (InterQual, MCG...: the determination only, never their content)."""

    __tablename__ = "utilization_review"
    __table_args__ = (Index("ix_utilization_review_encounter", "encounter_id", "reviewed_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("rule_output.id"))
    review_type: Mapped[str] = mapped_column(String(20))  # engine.core.ur_record.REVIEW_TYPES
    reviewed_on: Mapped[date] = mapped_column(Date)
    reviewer: Mapped[str] = mapped_column(String(100))
    reviewer_display: Mapped[str | None] = mapped_column(String(200))
    level_of_care: Mapped[str] = mapped_column(String(20))  # inpatient | observation | outpatient
    criteria_set: Mapped[str | None] = mapped_column(String(100))
    criteria_result: Mapped[str] = mapped_column(String(20))  # met | not_met | advisor_referral
    clinical_summary: Mapped[str | None] = mapped_column(Text)
    next_review_on: Mapped[date | None] = mapped_column(Date)
    next_review_overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    advisor_referred: Mapped[bool] = mapped_column(Boolean, default=False)
    advisor_name: Mapped[str | None] = mapped_column(String(200))
    advisor_outcome: Mapped[str | None] = mapped_column(String(30))
    condition_code_44: Mapped[bool] = mapped_column(Boolean, default=False)

    encounter: Mapped[Encounter] = relationship()


class PayerAuthorization(Kept, Base):
    """A payer's authorization of a stay: its reference number, status, what was approved
    and, on a denial, the peer-to-peer and the appeal."""

    __tablename__ = "payer_authorization"
    __table_args__ = (Index("ix_payer_authorization_encounter", "encounter_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    payer: Mapped[str | None] = mapped_column(String(limits.PAYER))
    plan: Mapped[str | None] = mapped_column(String(limits.PLAN))
    reference_number: Mapped[str | None] = mapped_column(String(limits.AUTH))
    # pending | approved | partially_approved | denied | pended (engine.core.ur_record)
    status: Mapped[str] = mapped_column(String(20))
    level_of_care: Mapped[str | None] = mapped_column(String(20))
    approved_days: Mapped[int | None] = mapped_column(Integer)
    approved_from: Mapped[date | None] = mapped_column(Date)
    approved_through: Mapped[date | None] = mapped_column(Date)
    payer_reviewer: Mapped[str | None] = mapped_column(String(200))
    payer_contact: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    denial_reason: Mapped[str | None] = mapped_column(String(500))
    # not_requested | requested | scheduled | held (engine.core.ur_record.PEER_TO_PEER)
    peer_to_peer: Mapped[str | None] = mapped_column(String(20))
    peer_to_peer_at: Mapped[datetime | None]
    peer_to_peer_outcome: Mapped[str | None] = mapped_column(String(30))
    appeal_level: Mapped[int | None] = mapped_column(Integer)
    appeal_deadline: Mapped[date | None] = mapped_column(Date)
    appeal_outcome: Mapped[str | None] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(10))  # web | fhir | feed (IN1-14)

    encounter: Mapped[Encounter] = relationship()
    communications: Mapped[list[PayerCommunication]] = relationship(
        back_populates="authorization", order_by="PayerCommunication.at")


class PayerCommunication(Kept, Base):
    """One exchange with a payer about an authorization: what was sent or said, when, how."""

    __tablename__ = "payer_communication"
    __table_args__ = (Index("ix_payer_communication_encounter", "encounter_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("payer_authorization.id"),
                                                         index=True)
    at: Mapped[datetime]
    direction: Mapped[str] = mapped_column(String(10))  # outbound | inbound
    channel: Mapped[str] = mapped_column(String(10))  # phone | fax | portal | email | edi
    summary: Mapped[str] = mapped_column(Text)

    authorization: Mapped[PayerAuthorization | None] = relationship(
        back_populates="communications")


class Barrier(Kept, Base):
    """Something standing in the way of a discharge, coded from the site's reason list
    (rulesets/reference/delay_reasons.csv), with its owner, opened until resolved."""

    __tablename__ = "barrier"
    __table_args__ = (Index("ix_barrier_encounter_open", "encounter_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    category: Mapped[str] = mapped_column(String(40))
    reason_code: Mapped[str] = mapped_column(String(20))
    text: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(500))

    encounter: Mapped[Encounter] = relationship()


class AvoidableDay(Kept, Base):
    """A day, or a run of days, of a stay that was not medically necessary: entered by UR,
    or proposed by the engine from an open barrier past the expected discharge or the GMLOS
    and confirmed (or rejected) by a person. Only confirmed days count."""

    __tablename__ = "avoidable_day"
    __table_args__ = (Index("ix_avoidable_day_encounter", "encounter_id", "first_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    reason_code: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(40))
    responsible_party: Mapped[str] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))  # proposed | confirmed | rejected
    source: Mapped[str] = mapped_column(String(10))  # person | engine
    barrier_id: Mapped[int | None] = mapped_column(ForeignKey("barrier.id"))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]

    encounter: Mapped[Encounter] = relationship()


class RecordRevision(Base):
    """The state of a UR record before a correction: who changed it, when, why, and every
    field as it was. The current row plus its revisions are the record's whole history."""

    __tablename__ = "record_revision"
    __table_args__ = (Index("ix_record_revision_record", "kind", "record_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # the record's table name
    record_id: Mapped[int] = mapped_column(Integer)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # the version this body was
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[dict[str, Any]]
