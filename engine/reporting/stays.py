"""The stays the metrics count: discharged inpatient stays (an inpatient status period, not
cancelled; a discharge time; not a cancelled visit), with when the inpatient stay began."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Subquery, false, func, select

from engine.core.vocabulary import EncounterStatus
from engine.storage.models import Encounter, StatusPeriod

INPATIENT = "inpatient"


def inpatient_starts() -> Subquery:
    """(encounter_id, inpatient_start): each stay with an inpatient period, from its first."""
    return (select(StatusPeriod.encounter_id.label("encounter_id"),
                   func.min(StatusPeriod.start).label("inpatient_start"))
            .where(StatusPeriod.care_status == INPATIENT, StatusPeriod.cancelled == false())
            .group_by(StatusPeriod.encounter_id)
            .subquery("inpatient"))


def discharged() -> list[ColumnElement[bool]]:
    return [Encounter.discharge_time.is_not(None),
            Encounter.status != EncounterStatus.CANCELLED]
