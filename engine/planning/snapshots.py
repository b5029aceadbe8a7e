"""A stay's snapshot (the plain data the facts are derived from), built from its rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from engine.core.vocabulary import OutputKind, OutputStatus
from engine.planning.prefetch import Records
from engine.rules import snapshot as plain
from engine.rules.snapshot import PastStay, Period, Snapshot
from engine.storage.models import Encounter, Patient, RuleOutput


def load(enc: Encounter, outputs: list[RuleOutput], history: list[tuple],
         lab_values: dict[str, float], records: Records | None = None) -> Snapshot:
    """The snapshot of `enc` from what engine.planning.prefetch read: its outputs, its patient's
    stays (encounter id, admit, discharge, care status), its latest lab values and its UR
    record."""
    patient: Patient | None = enc.patient
    past: dict[int, tuple[datetime | None, datetime | None, set[str]]] = {}
    for enc_id, admit, discharge, status in history:
        if enc_id == enc.id:
            continue
        entry = past.setdefault(enc_id, (admit, discharge, set()))
        if status:
            entry[2].add(status)
    return Snapshot(
        encounter_id=enc.id,
        patient_id=patient.id if patient is not None else None,
        birth_date=patient.birth_date if patient else None,
        sex=patient.sex if patient else None,
        status=enc.status,
        care_status=enc.care_status,
        patient_class=enc.patient_class,
        patient_type=enc.patient_type,
        unit=enc.unit,
        hospital_service=enc.hospital_service,
        admission_type=enc.admission_type,
        admit_source=enc.admit_source,
        payer_class=enc.payer_class,
        payer_plan=enc.payer_plan,
        authorization=enc.authorization,
        working_drg=enc.working_drg,
        discharge_disposition=enc.discharge_disposition,
        admit_time=enc.admit_time,
        discharge_time=enc.discharge_time,
        pending_discharge_time=enc.pending_discharge_time,
        expected_discharge_date=enc.expected_discharge_date,
        last_event_time=enc.as_of,
        # Sorted here: a late message appends its period to the in-session list out of order.
        status_periods=sorted((Period(p.care_status, p.start, p.end) for p in enc.status_periods
                               if not p.cancelled), key=lambda p: p.start),
        locations=sorted((Period(s.unit, s.start, s.end) for s in enc.locations
                          if not s.cancelled), key=lambda p: p.start),
        diagnoses=[(d.code, d.diagnosis_type) for d in enc.diagnoses],
        past_stays=[PastStay(a, d, frozenset(s)) for a, d, s in past.values()],
        labs=lab_values,
        **_task_fields(outputs),
        **_record_fields(records or Records()),
    )


def _record_fields(records: Records) -> dict[str, Any]:
    """The UR record as plain data (void records are not read: prefetch leaves them out)."""
    return dict(
        reviews=[plain.Review(r.reviewed_on, r.next_review_on, r.review_type, r.level_of_care,
                              r.criteria_result, bool(r.condition_code_44), r.entered_at,
                              r.task_id, r.advisor_outcome)
                 for r in records.reviews if r.voided_at is None],
        authorizations=[plain.Authorization(a.status, a.approved_through, a.appeal_deadline,
                                            a.appeal_outcome, a.entered_at)
                        for a in records.authorizations if a.voided_at is None],
        barriers=[plain.Barrier(b.category, b.reason_code, b.opened_at, b.resolved_at)
                  for b in records.barriers if b.voided_at is None],
        avoidable_days=[plain.AvoidableDays(d.first_day, d.last_day, d.status, d.category)
                        for d in records.avoidable_days if d.voided_at is None],
    )


def with_outputs(snap: Snapshot, outputs: list[RuleOutput]) -> Snapshot:
    """`snap` after a reconciliation changed the stay's outputs: only the task fields move."""
    return replace(snap, **_task_fields(outputs))


def _task_fields(outputs: list[RuleOutput]) -> dict[str, Any]:
    """What the rules read of the stay's own outputs: tasks open, done, due and last
    completed; the disposition chosen and those closed."""
    tasks = [o for o in outputs if o.kind == OutputKind.TASK]
    open_tasks = [o for o in tasks if o.status == OutputStatus.ACTIVE]
    done_tasks = [o for o in tasks if o.status == OutputStatus.COMPLETED]
    return dict(
        open_task_types=sorted({o.code for o in open_tasks}),
        completed_task_types=sorted({o.code for o in done_tasks}),
        open_task_due=_by_code(((o.code, o.due_at) for o in open_tasks if o.due_at is not None),
                               min),
        last_completed=_by_code(((o.code, o.ended_at or o.updated_at) for o in done_tasks), max),
        chosen_disposition=_chosen(done_tasks),
        closed_dispositions=sorted({o.code for o in outputs if o.kind == OutputKind.PROPOSAL
                                    and o.status == OutputStatus.CANCELLED
                                    and (o.detail or {}).get("closed_by")}),
    )


def _chosen(done_tasks: list[RuleOutput]) -> str | None:
    """The disposition chosen on the latest completed discharge-plan task, if any."""
    chosen = [(o.ended_at or o.updated_at, (o.detail or {}).get("chosen")) for o in done_tasks]
    chosen = [c for c in chosen if isinstance(c[1], str)]
    return max(chosen)[1] if chosen else None


def _by_code(pairs, pick) -> dict[str, datetime]:
    """Per code, the `pick` (min or max) of its times."""
    out: dict[str, datetime] = {}
    for code, when in pairs:
        out[code] = when if code not in out else pick(out[code], when)
    return out
