"""Length of stay against the norm: the LOS index (observed over expected days) and excess
days, by DRG family, unit and hospital service. The expected days are the working MS-DRG's
geometric mean LOS (CMS IPPS Table 5, Reference.drgs); the database sums observed days per
(group, DRG) and the norms are applied to those few sums."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.reporting import days
from engine.reporting.scope import Scope, stay_conditions, within
from engine.reporting.stays import discharged, inpatient_starts
from engine.reporting.table import Chart, Context, Metric, Table
from engine.rules.reference import DrgNorm, drg_key
from engine.storage.models import Encounter

DEFINITION = (
    "Discharged inpatient stays with a discharge in the period and a working MS-DRG found in "
    "CMS IPPS Table 5. Observed days: local calendar days from the start of the inpatient "
    "status to the discharge (midnights, as the rules count excess days; a same-day stay is "
    "0). Expected days: the DRG's geometric mean LOS (GMLOS). LOS index = sum of observed "
    "days / sum of expected days (1.00 is the national norm). Excess days = sum over stays "
    "of observed minus GMLOS (negative when shorter). Excluded: stays with no DRG or a DRG "
    "not in the table, observation-only stays, cancelled visits.")
_SEVERITY = re.compile(r"\s+(WITH MCC|WITH CC/MCC|WITH CC|WITHOUT CC/MCC|WITHOUT MCC)$")
COLUMNS = ("Stays", "Observed days", "Expected days (GMLOS)", "LOS index", "Excess days")


def family(code: str, norm: DrgNorm) -> str:
    """The MS-DRG title without its severity suffix: 'HEART FAILURE AND SHOCK WITH MCC' and
    '... WITHOUT CC/MCC' are one family."""
    return _SEVERITY.sub("", norm.title.strip()) or f"MS-DRG {code}"


def _sums(session: Session, scope: Scope, ctx: Context) -> list[tuple[Any, ...]]:
    """(unit, service, DRG, stays, observed days) for the scope's discharged inpatient
    stays: one GROUP BY the three tables share."""
    inpatient = inpatient_starts()
    observed = (days.local_day(session, Encounter.discharge_time, ctx.zone)
                - days.local_day(session, inpatient.c.inpatient_start, ctx.zone))
    groups = (Encounter.unit, Encounter.hospital_service, Encounter.working_drg)
    query = (select(*groups, func.count(), func.sum(observed))
             .join(inpatient, inpatient.c.encounter_id == Encounter.id)
             .where(*discharged(), Encounter.working_drg.is_not(None),
                    *within(Encounter.discharge_time, scope, ctx.zone), *stay_conditions(scope))
             .group_by(*groups))
    return ctx.shared("length_of_stay", scope,
                      lambda: [tuple(row) for row in session.execute(query)])


def _table(label: str, sums: list[tuple[Any, ...]], drgs: Mapping[str, DrgNorm],
           name: Any) -> Table:
    totals: dict[str, list[float]] = {}
    for unit, service, code, stays, observed in sums:
        norm = drgs.get(drg_key(code))
        if norm is None:
            continue
        key = name(unit, service, code, norm)
        acc = totals.setdefault(key, [0, 0.0, 0.0])
        acc[0] += stays
        acc[1] += observed or 0
        acc[2] += stays * norm.gmlos
    rows = [(key, int(n), int(obs), round(exp, 1),
             round(obs / exp, 2) if exp else None, round(obs - exp, 1))
            for key, (n, obs, exp) in totals.items()]
    rows.sort(key=lambda r: (-(r[5] or 0), r[0]))
    return Table((label, *COLUMNS), rows)


def by_family(session: Session, scope: Scope, ctx: Context) -> Table:
    return _table("DRG family", _sums(session, scope, ctx), ctx.drgs,
                  lambda _u, _s, code, norm: family(code, norm))


def by_unit(session: Session, scope: Scope, ctx: Context) -> Table:
    return _table("Unit", _sums(session, scope, ctx), ctx.drgs,
                  lambda unit, _s, _c, _n: unit or "(no unit)")


def by_service(session: Session, scope: Scope, ctx: Context) -> Table:
    return _table("Hospital service", _sums(session, scope, ctx), ctx.drgs,
                  lambda _u, service, _c, _n: service or "(no service)")


_CHART = Chart(label=0, values=(5,), axis="Excess days (observed - GMLOS)")
FAMILY = "Length of stay"
METRICS = (
    Metric("los-by-drg-family", FAMILY, "LOS index and excess days by DRG family", DEFINITION,
           by_family, _CHART),
    Metric("los-by-unit", FAMILY, "LOS index and excess days by unit",
           DEFINITION + " Unit: the stay's unit at discharge.", by_unit, _CHART),
    Metric("los-by-service", FAMILY, "LOS index and excess days by hospital service",
           DEFINITION + " Service: PV1-10 as last sent.", by_service, _CHART),
)
