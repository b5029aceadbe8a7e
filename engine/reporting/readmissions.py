"""30-day readmissions: discharged inpatient stays followed by another inpatient admission of
the same patient within 30 days (calendar days, as HRRP and the readmission flag count)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Exists, case, exists, false, func, select
from sqlalchemy.orm import Session, aliased

from engine.core.vocabulary import EncounterStatus
from engine.reporting import days
from engine.reporting.scope import Scope, stay_conditions, within
from engine.reporting.stays import INPATIENT, discharged
from engine.reporting.table import Chart, Context, Metric, Table, rate
from engine.storage.models import Encounter, StatusPeriod

WINDOW_DAYS = 30
DEFINITION = (
    "Index stays: discharged inpatient stays (with an inpatient status period) whose "
    "discharge falls in the period, on the scope's units, services and payers. Readmitted: "
    "the same patient has another stay, not cancelled, with an inpatient status period, "
    "admitted after the index discharge and at most 30 local calendar days after its date "
    "(an ED visit or an observation-only stay is not a readmission). Rate = readmitted "
    "index stays / index stays, by the index stay's hospital service. Planned readmissions "
    "are not excluded; a stay of a merged-away patient record counts under that record.")


def _inpatient(encounter_id: Any) -> Exists:
    return exists().where(StatusPeriod.encounter_id == encounter_id,
                          StatusPeriod.care_status == INPATIENT,
                          StatusPeriod.cancelled == false())


def by_service(session: Session, scope: Scope, ctx: Context) -> Table:
    later = aliased(Encounter, name="later")
    gap = (days.local_day(session, later.admit_time, ctx.zone)
           - days.local_day(session, Encounter.discharge_time, ctx.zone))
    readmitted = exists().where(later.patient_id == Encounter.patient_id,
                                later.id != Encounter.id,
                                later.status != EncounterStatus.CANCELLED,
                                later.admit_time > Encounter.discharge_time,
                                gap <= WINDOW_DAYS, _inpatient(later.id))
    query = (select(Encounter.hospital_service, func.count(),
                    func.sum(case((readmitted, 1), else_=0)))
             .where(*discharged(), _inpatient(Encounter.id),
                    *within(Encounter.discharge_time, scope, ctx.zone), *stay_conditions(scope))
             .group_by(Encounter.hospital_service))
    rows = [(service or "(no service)", int(n), int(r or 0), rate(int(r or 0), int(n)))
            for service, n, r in session.execute(query)]
    rows.sort(key=lambda r: (-r[2], r[0]))
    n, r = sum(row[1] for row in rows), sum(row[2] for row in rows)
    rows.append(("All", n, r, rate(r, n)))
    return Table(("Hospital service", "Index stays", "Readmitted within 30 days",
                  "Readmission rate %"), rows)


METRICS = (
    Metric("readmissions-30d", "Readmissions", "30-day readmissions by hospital service",
           DEFINITION, by_service, Chart(0, (3,), "Readmission rate (%)")),
)
