"""Payer authorizations still waiting and those denied, by payer."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core import ur_record
from engine.reporting.scope import Scope, stay_conditions, within
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import Encounter, PayerAuthorization

WAITING = ("pending", "pended")
DENIED = "denied"
DEFINITION = (
    "Payer authorization records, not voided, whose status is now pending, pended for "
    "information or denied, on the scope's stays admitted in the period, by payer (as "
    "recorded on the authorization, else the stay's payer). One record per authorization "
    "request: a stay with two pending requests counts twice. Approved and partially "
    "approved authorizations are not shown.")


def by_payer(session: Session, scope: Scope, ctx: Context) -> Table:
    payer = func.coalesce(PayerAuthorization.payer, Encounter.payer_name,
                          Encounter.payer_plan).label("payer")
    query = (select(payer, PayerAuthorization.status, func.count())
             .join(Encounter, Encounter.id == PayerAuthorization.encounter_id)
             .where(PayerAuthorization.voided_at.is_(None),
                    PayerAuthorization.status.in_([*WAITING, DENIED]),
                    *within(Encounter.admit_time, scope, ctx.zone), *stay_conditions(scope))
             .group_by(payer, PayerAuthorization.status))
    counts: dict[str, dict[str, int]] = {}
    for name, status, n in session.execute(query):
        counts.setdefault(name or "(no payer)", {})[status] = int(n)
    rows = [(name, c.get("pending", 0), c.get("pended", 0), c.get(DENIED, 0))
            for name, c in counts.items()]
    rows.sort(key=lambda r: (-(r[1] + r[2] + r[3]), r[0]))
    words = ur_record.AUTHORIZATION_STATUSES
    return Table(("Payer", words["pending"], words["pended"], words[DENIED]), rows)


METRICS = (
    Metric("authorizations", "Payer authorizations", "Authorizations pending and denied",
           DEFINITION, by_payer, Chart(0, (1, 2, 3), "Authorizations", "stacked")),
)
