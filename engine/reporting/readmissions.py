"""30-day readmissions: discharged inpatient stays followed by another inpatient admission of
the same patient within 30 days (calendar days, as HRRP and the readmission flag count).
A stay discharged less than 30 days ago may still come back: it is no index stay yet (it
would lower the rate), only counted beside it as a window still open."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core.vocabulary import EncounterStatus
from engine.reporting import days
from engine.reporting.scope import Scope, stay_conditions, within
from engine.reporting.stays import discharged, inpatient_starts
from engine.reporting.table import Chart, Context, Metric, Table, rate
from engine.storage.models import Encounter

WINDOW_DAYS = 30
DEFINITION = (
    "Index stays: discharged inpatient stays (with an inpatient status period) whose "
    "discharge falls in the period, on the scope's units, services and payers. Readmitted: "
    "the same patient's next inpatient admission (the next stay by admission time with an "
    "inpatient status period, not cancelled, of any unit, service or payer) comes after the "
    "index discharge and at most 30 local calendar days after its date (an ED visit or an "
    "observation-only stay is not a readmission). Rate = readmitted "
    "index stays / index stays, by the index stay's hospital service. Window still open: "
    "stays that would be index stays but were discharged less than 30 days ago (today is at "
    "most the 30th local calendar day after the discharge date), readmitted yet or not: "
    "they are left out of index stays, readmitted and the rate, and counted in this column "
    "only. Planned readmissions are not excluded; a stay of a merged-away patient record "
    "counts under that record.")


def by_service(session: Session, scope: Scope, ctx: Context) -> Table:
    inpatient = inpatient_starts()
    # every inpatient stay with the patient's next inpatient admission (one sort, no probe
    # per stay); the scope narrows the index stays only, never the stays that follow
    stays = (select(Encounter.id.label("id"),
                    func.lead(Encounter.admit_time).over(
                        partition_by=Encounter.patient_id,
                        order_by=(Encounter.admit_time, Encounter.id)).label("next_admit"))
             .join(inpatient, inpatient.c.encounter_id == Encounter.id)
             .where(Encounter.status != EncounterStatus.CANCELLED,
                    Encounter.admit_time.is_not(None))
             .subquery("stays"))
    gap = (days.local_day(session, stays.c.next_admit, ctx.zone)
           - days.local_day(session, Encounter.discharge_time, ctx.zone))
    readmitted = (stays.c.next_admit > Encounter.discharge_time) & (gap <= WINDOW_DAYS)
    # open: discharged on or after the local day 30 days before today
    today = ctx.now.astimezone(ctx.zone).date()
    opens = datetime.combine(today - timedelta(days=WINDOW_DAYS), time(), ctx.zone)
    still_open = Encounter.discharge_time >= opens
    query = (select(Encounter.hospital_service,
                    func.sum(case((still_open, 0), else_=1)),
                    func.sum(case((still_open, 0), (readmitted, 1), else_=0)),
                    func.sum(case((still_open, 1), else_=0)))
             .join(stays, stays.c.id == Encounter.id)
             .where(*discharged(), *within(Encounter.discharge_time, scope, ctx.zone),
                    *stay_conditions(scope))
             .group_by(Encounter.hospital_service))
    counts = [(service or "(no service)", int(n or 0), int(r or 0), int(o or 0))
              for service, n, r, o in session.execute(query)]
    counts.sort(key=lambda c: (-c[2], c[0]))
    n, r, o = (sum(c[1] for c in counts), sum(c[2] for c in counts),
               sum(c[3] for c in counts))
    rows = [(name, index, back, rate(back, index), still)
            for name, index, back, still in [*counts, ("All", n, r, o)]]
    return Table(("Hospital service", "Index stays", "Readmitted within 30 days",
                  "Readmission rate %", "Window still open"), rows)


METRICS = (
    Metric("readmissions-30d", "Readmissions", "30-day readmissions by hospital service",
           DEFINITION, by_service, Chart(0, (3,), "Readmission rate (%)")),
)
