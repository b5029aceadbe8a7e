"""The fact catalogue: every name a rule may use, and how each is derived from a Snapshot.

Facts are computed at an instant `now` (the injectable clock). Hours are measured on the
absolute time line; midnights, days and business days on the hospital's local calendar, so
23- and 25-hour days count as one day each. Time-varying facts say how they move so the
scheduler knows when an encounter next needs a look (see `Derived.hourly` and `daily`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from engine.core.vocabulary import EncounterStatus
from engine.rules import record_dates
from engine.rules.reference import Reference
from engine.rules.scores import charlson, hospital, lace
from engine.rules.snapshot import Period, Snapshot

FactType = Literal["number", "text", "boolean", "list"]
Varies = Literal["", "hourly", "daily", "due"]


@dataclass(frozen=True)
class FactSpec:
    name: str
    type: FactType
    description: str
    unit: str = ""
    # "hourly": grows by one per hour while its clock runs; "daily": changes at local midnight;
    # "due": changes when an open task passes its due time. The clock schedules each kind
    # (engine.planning.rulebook.next_boundary); a fact that moves with time must say so.
    varies: Varies = ""


def _f(name: str, type_: FactType, description: str, unit: str = "",
       varies: Varies = "") -> FactSpec:
    return FactSpec(name, type_, description, unit, varies)


CATALOGUE: tuple[FactSpec, ...] = (
    _f("age", "number", "Age in whole years at evaluation time (changes at the local midnight "
       "that starts the birthday).", "years", "daily"),
    _f("sex", "text", "Administrative sex as sent (PID-8: F, M, O, U...)."),
    _f("encounter_status", "text",
       "planned, in-progress, onleave, finished or cancelled."),
    _f("care_status", "text",
       "inpatient, observation, emergency, outpatient or preadmit (site profile mapping)."),
    _f("patient_class", "text", "PV1-2 as sent."),
    _f("patient_type", "text", "PV1-18 as sent."),
    _f("unit", "text", "Current unit (PV1-3.1)."),
    _f("hospital_service", "text", "PV1-10, e.g. MED, SUR, ONC."),
    _f("admission_type", "text", "PV1-4: E emergency, U urgent, R routine, C elective..."),
    _f("admit_source", "text", "PV1-14 as sent."),
    _f("acute_admission", "boolean",
       "Emergency or urgent admission (PV1-4 E/U) or admitted from the ED."),
    _f("payer_class", "text",
       "medicare, medicare_advantage, medicaid, commercial, self_pay or other."),
    _f("payer_plan", "text", "IN1-2 plan code as sent."),
    _f("ur_review_interval_days", "number",
       "Days between continued-stay UR reviews for this payer class (site profile "
       "`ur_review_days`).", "days"),
    _f("has_authorization", "boolean", "An authorization is on file (IN1-14)."),
    _f("working_drg", "text", "Working MS-DRG (DRG-1)."),
    _f("gmlos_days", "number",
       "Geometric mean length of stay of the working MS-DRG (CMS IPPS Table 5, "
       "rulesets/reference/ms_drg_table5.csv); unknown without a DRG or for a DRG not in the "
       "table.", "days"),
    _f("excess_days", "number",
       "Inpatient days (local midnights as an inpatient, as Medicare counts days) minus "
       "gmlos_days: negative below the norm, above 0 past it.", "days", "daily"),
    _f("discharge_disposition", "text", "PV1-36 discharge disposition code."),
    _f("is_discharged", "boolean", "The encounter has a discharge."),
    _f("is_pending_discharge", "boolean", "A pending discharge (A16) is open."),
    _f("hours_since_admission", "number", "Hours from admission to now or discharge.",
       "hours", "hourly"),
    _f("hours_in_emergency", "number", "Hours spent in emergency status.", "hours", "hourly"),
    _f("hours_in_observation", "number", "Hours spent in observation status.", "hours",
       "hourly"),
    _f("hours_in_inpatient", "number", "Hours spent in inpatient status.", "hours", "hourly"),
    _f("hours_since_discharge", "number", "Hours since discharge (unknown before it).",
       "hours", "hourly"),
    _f("hours_since_pending_discharge", "number",
       "Hours since the pending discharge (A16) was recorded.", "hours", "hourly"),
    _f("midnights_in_emergency", "number", "Local midnights crossed in emergency status.",
       "midnights", "daily"),
    _f("midnights_in_observation", "number", "Local midnights crossed in observation.",
       "midnights", "daily"),
    _f("midnights_in_inpatient", "number", "Local midnights crossed as an inpatient.",
       "midnights", "daily"),
    _f("midnights_in_hospital", "number",
       "Local midnights crossed in any status (ED, observation, inpatient): the two-midnight "
       "benchmark counts them all.", "midnights", "daily"),
    _f("los_days", "number", "Length of stay in local calendar days (discharge or today minus "
       "admission date).", "days", "daily"),
    _f("days_until_expected_discharge", "number",
       "Local calendar days from today to the expected discharge date (PV2-9); negative when "
       "past.", "days", "daily"),
    _f("expected_inpatient_days", "number",
       "Local calendar days from the first inpatient day to the expected discharge day: the "
       "PV2-9 date, or today when that date has passed or when only a pending discharge (A16) "
       "is open. Unknown after discharge.", "days", "daily"),
    _f("expected_midnights_in_hospital", "number",
       "Local midnights from the arrival in hospital care (ED, observation or inpatient) to "
       "the expected discharge day: the PV2-9 date, or today when that date has passed or "
       "when only a pending discharge (A16) is open. Fewer than 2 for an inpatient means the "
       "stay is not expected to meet the two-midnight benchmark. Unknown after discharge.",
       "midnights", "daily"),
    _f("im_delivered_days_before_discharge", "number",
       "Local calendar days from the day the IM task (im-notice) was completed to the "
       "expected discharge day (as expected_inpatient_days counts it): 2 or less means the "
       "first IM already falls within 2 days of discharge. Unknown until it is completed.",
       "days", "daily"),
    _f("business_days_since_discharge", "number",
       "Business days (no weekends, no holidays) after the discharge date, up to today.",
       "days", "daily"),
    _f("icu_stays", "number", "Number of stays on an intensive care unit in this encounter."),
    _f("hours_in_icu", "number",
       "Hours spent on an intensive care unit (site profile `icu_units`) in this encounter, "
       "all ICU stays together (the LTCH criterion counts ICU days of the acute stay).",
       "hours", "hourly"),
    _f("transfers", "number", "Number of location changes after the first location."),
    _f("diagnosis_codes", "list", "ICD-10-CM codes of the encounter's diagnoses."),
    _f("prior_admissions_30d", "number",
       "Other inpatient stays admitted in the 30 days before this admission."),
    _f("prior_admissions_6m", "number", "Other inpatient stays in the 182 days before."),
    _f("prior_admissions_12m", "number", "Other inpatient stays in the 365 days before."),
    _f("ed_visits_6m", "number", "Emergency visits in the 182 days before this admission."),
    _f("days_since_last_discharge", "number",
       "Local calendar days from the last discharge of another stay to this admission."),
    _f("charlson_index", "number", "Charlson comorbidity index (Quan 2005 ICD-10 coding)."),
    _f("charlson_conditions", "list", "Charlson conditions found in the diagnoses."),
    _f("lace_score", "number",
       "LACE index 0-19 (van Walraven 2010): 0-4 low, 5-9 moderate, 10+ high.", "points",
       "daily"),
    _f("lace_l", "number", "LACE: length-of-stay points.", "points", "daily"),
    _f("lace_a", "number", "LACE: acuity points (3 for an acute admission).", "points"),
    _f("lace_c", "number", "LACE: comorbidity points (Charlson, 4+ scores 5).", "points"),
    _f("lace_e", "number", "LACE: ED visits in 6 months (4+ scores 4).", "points"),
    _f("hemoglobin", "number", "Latest hemoglobin on file.", "g/dL"),
    _f("sodium", "number", "Latest sodium on file.", "mmol/L"),
    _f("hospital_score", "number",
       "HOSPITAL score 0-13 (Donze 2013), when hemoglobin and sodium are on file: 0-4 low, "
       "5-6 intermediate, 7+ high. "
       "A procedure counts only when one is on file.", "points", "daily"),
    _f("had_procedure", "boolean", "A procedure is on file for this stay."),
    _f("hospital_h", "number", "HOSPITAL: hemoglobin points (1 below 12 g/dL).", "points"),
    _f("hospital_o", "number", "HOSPITAL: discharge from oncology points (2).", "points"),
    _f("hospital_s", "number", "HOSPITAL: sodium points (1 below 135 mmol/L).", "points"),
    _f("hospital_p", "number", "HOSPITAL: procedure points (1).", "points"),
    _f("hospital_i", "number", "HOSPITAL: urgent index admission points (1).", "points"),
    _f("hospital_a", "number", "HOSPITAL: admissions in 12 months (2-5 score 2, 6+ 5).",
       "points"),
    _f("hospital_l", "number", "HOSPITAL: length-of-stay points (2 at 5 days or more).",
       "points", "daily"),
    _f("open_task_types", "list", "Types of this encounter's tasks still open."),
    _f("completed_task_types", "list",
       "Types of this encounter's completed tasks (notices delivered, reviews done)."),
    _f("chosen_disposition", "text",
       "The disposition a case manager chose when completing the discharge-plan task (irf, "
       "snf, ltach, hospice, home_health, home); unknown until then. The other proposed "
       "dispositions are closed for the stay."),
    _f("closed_dispositions", "list",
       "Transitions a person closed for this stay (a proposal declined, or closed because "
       "another disposition was chosen): not proposed again."),
    _f("overdue_task_types", "list",
       "Types of this encounter's open tasks past their due time (strictly after it).",
       varies="due"),
    # The UR record (engine.work.ur_record): void records are never read.
    _f("open_barriers", "number",
       "Discharge barriers open on the stay now (opened, not resolved)."),
    _f("open_barrier_categories", "list",
       "Delay categories of the open barriers (patient_family, physician, hospital_system, "
       "post_acute_placement, payer, community_resource: rulesets/reference/"
       "delay_reasons.csv)."),
    _f("open_barrier_reasons", "list", "Delay reason codes of the open barriers."),
    _f("oldest_open_barrier_hours", "number",
       "Hours the oldest open barrier has been open (to now, or to the discharge); unknown "
       "without an open barrier.", "hours", "hourly"),
    _f("oldest_open_barrier_reason", "text",
       "Delay reason code of the oldest open barrier (a task's facts name it: PA01...)."),
    _f("oldest_open_barrier_category", "text",
       "Delay category of the oldest open barrier."),
    _f("oldest_open_barrier_opened", "text",
       "When the oldest open barrier was opened, local time (2026-03-03T09:00): names that "
       "barrier, so a task `once_per` it is raised again for the next barrier."),
    _f("avoidable_days", "number",
       "Days of the stay confirmed avoidable (entered by UR, or proposed by the engine and "
       "confirmed by a person); proposed and rejected days do not count.", "days"),
    _f("avoidable_day_streak", "number",
       "Consecutive confirmed avoidable days ending on the latest whole day of the stay "
       "(yesterday; after discharge, the day before the discharge day); 0 when that day is "
       "not a confirmed avoidable day.", "days", "daily"),
    _f("avoidable_run_start", "text",
       "The first day (YYYY-MM-DD) of the latest run of consecutive confirmed avoidable days "
       "(the streak avoidable_day_streak counts, while it lasts); unknown without one: names "
       "the run, so a task `once_per` it is raised again for the next run."),
    _f("proposed_avoidable_days", "number",
       "Days the engine proposed as avoidable (a barrier open on a day past the expected "
       "discharge or the GMLOS) that await a person's confirmation or rejection.", "days"),
    _f("reviews_recorded", "number",
       "Utilization reviews recorded on the stay (any type)."),
    _f("last_review_level_of_care", "text",
       "Level of care of the latest recorded review (by review date): inpatient, "
       "observation or outpatient; unknown before the first review."),
    _f("last_review_criteria_result", "text",
       "Criteria result of the latest recorded review: met, not_met or advisor_referral."),
    _f("last_review_advisor_outcome", "text",
       "The physician advisor's outcome on the latest recorded review (pending, "
       "inpatient_supported, observation_recommended, discharge_recommended, "
       "continued_stay_supported); unknown when it was not referred."),
    _f("last_review_date", "text",
       "The latest recorded review's date (YYYY-MM-DD): names that review, so a task "
       "`once_per` it is raised again for the next review."),
    _f("days_since_last_review", "number",
       "Local calendar days from the latest recorded review's date to today; unknown before "
       "the first review.", "days", "daily"),
    _f("days_until_next_review", "number",
       "Local calendar days from today to the next review date of the latest recorded review "
       "(the site's cadence from that review, or the day the nurse set); negative when past, "
       "unknown without one.", "days", "daily"),
    _f("authorization_status", "text",
       "Status of the latest payer authorization recorded on the stay (pending, approved, "
       "partially_approved, denied, pended; an IN1-14 number opens one as pending)."),
    _f("days_until_approved_through", "number",
       "Local calendar days from today to the last approved day: the latest approved-through "
       "date on the stay's authorizations (a later approval extends it; days approved stay "
       "approved while an extension is pended or denied); 0 on the last approved day, "
       "negative past it, unknown without an approval.",
       "days", "daily"),
    _f("approved_through_date", "text",
       "The last approved day (YYYY-MM-DD), as days_until_approved_through counts it: a new "
       "approval that extends the stay changes it."),
    _f("appeal_deadline_date", "text",
       "The nearest filing deadline (YYYY-MM-DD) of an appeal not yet decided, as "
       "days_until_appeal_deadline counts it."),
    _f("days_until_appeal_deadline", "number",
       "Local calendar days from today to the nearest filing deadline of an appeal not yet "
       "decided (no outcome, or pending); negative when past, unknown without one.", "days",
       "daily"),
)
FACTS: dict[str, FactSpec] = {f.name: f for f in CATALOGUE}

# Which care-status clock drives each hourly fact (None: the fact's own anchor, see derive).
_HOSPITAL_CARE = frozenset({"emergency", "observation", "inpatient"})
_STATUS_HOURS = {"hours_in_emergency": "emergency", "hours_in_observation": "observation",
                 "hours_in_inpatient": "inpatient"}


@dataclass
class Derived:
    """Fact values at `now`, and how they will move from here."""

    values: dict[str, Any]
    hourly: set[str] = field(default_factory=set)  # facts growing one per hour right now
    # Facts whose value changes at the next local midnight: a discharged stay's length is
    # frozen, so only its post-discharge day counts move, and the clock can skip the
    # midnights no rule would see change.
    daily: frozenset[str] = frozenset()
    # Facts that change at one known instant ahead, not at every midnight (age: the local
    # midnight that starts the next birthday).
    changes_at: dict[str, datetime] = field(default_factory=dict)


def _hours(a: datetime, b: datetime) -> float:
    # In UTC: aware datetimes sharing a zone subtract as wall-clock times across DST.
    # Four decimals (a third of a second) keep floats out of exponent notation, which
    # durable_rules' JSON reader refuses.
    return round(max((b.astimezone(UTC) - a.astimezone(UTC)).total_seconds() / 3600.0, 0.0),
                 4)


def _midnights(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    """Local midnights the clock passed in (start, end]: calendar-date difference."""
    if end <= start:
        return 0
    return (end.astimezone(zone).date() - start.astimezone(zone).date()).days


def business_days_between(start: date, end: date, holidays: frozenset[date]) -> int:
    """Business days after `start` up to and including `end`."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            count += 1
    return count


def _status_totals(periods: list[Period], until: datetime, zone: ZoneInfo
                   ) -> tuple[dict[str, float], dict[str, int]]:
    hours: dict[str, float] = {}
    midnights: dict[str, int] = {}
    for p in periods:
        end = min(p.end or until, until)
        if end <= p.start or p.value is None:
            continue
        hours[p.value] = hours.get(p.value, 0.0) + _hours(p.start, end)
        midnights[p.value] = midnights.get(p.value, 0) + _midnights(p.start, end, zone)
    return hours, midnights


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def derive(snap: Snapshot, now: datetime, zone: ZoneInfo, ref: Reference,
           icu_units: frozenset[str] = frozenset({"ICU"}),
           review_days: Callable[[str | None], float | None] | None = None) -> Derived:
    """All catalogue facts for this snapshot at `now` (unknown facts are left out)."""
    v: dict[str, Any] = {}
    discharged = snap.discharge_time is not None and snap.discharge_time <= now
    until = snap.discharge_time if discharged and snap.discharge_time else now
    today = now.astimezone(zone).date()
    hourly: set[str] = set()
    running = (snap.status in (EncounterStatus.IN_PROGRESS, EncounterStatus.ONLEAVE)
               and not discharged)

    if snap.birth_date:
        v["age"] = _age(snap.birth_date, today)
    for name, value in (("sex", snap.sex), ("encounter_status", snap.status),
                        ("care_status", snap.care_status), ("patient_class", snap.patient_class),
                        ("patient_type", snap.patient_type), ("unit", snap.unit),
                        ("hospital_service", snap.hospital_service),
                        ("admission_type", snap.admission_type),
                        ("admit_source", snap.admit_source), ("payer_class", snap.payer_class),
                        ("payer_plan", snap.payer_plan), ("working_drg", snap.working_drg),
                        ("discharge_disposition", snap.discharge_disposition)):
        if value is not None:
            v[name] = value
    interval = review_days(snap.payer_class) if review_days is not None else None
    if interval is not None:
        v["ur_review_interval_days"] = interval
    v["has_authorization"] = bool(snap.authorization)
    v["is_discharged"] = discharged
    v["is_pending_discharge"] = snap.pending_discharge_time is not None and not discharged
    v["acute_admission"] = snap.admission_type in ("E", "U") or any(
        p.value == "emergency" for p in snap.status_periods)

    first = min((p.start for p in snap.status_periods), default=None)
    admitted = snap.admit_time or first
    if admitted is not None:
        v["hours_since_admission"] = _hours(admitted, until)
        v["los_days"] = max((until.astimezone(zone).date() - admitted.astimezone(zone).date()
                             ).days, 0)
        if running:
            hourly.add("hours_since_admission")
    hours, midnights = _status_totals(snap.status_periods, until, zone)
    current = snap.status_periods[-1].value if snap.status_periods else None
    for fact, status in _STATUS_HOURS.items():
        v[fact] = hours.get(status, 0.0)
        v[f"midnights_in_{status}"] = midnights.get(status, 0)
        if running and current == status:
            hourly.add(fact)
    # The two-midnight clock starts with hospital care, not with a pre-admit registration.
    arrived = min((p.start for p in snap.status_periods if p.value in _HOSPITAL_CARE),
                  default=None)
    if arrived is not None:
        v["midnights_in_hospital"] = _midnights(arrived, until, zone)
    if discharged and snap.discharge_time is not None:
        v["hours_since_discharge"] = _hours(snap.discharge_time, now)
        hourly.add("hours_since_discharge")
        v["business_days_since_discharge"] = business_days_between(
            snap.discharge_time.astimezone(zone).date(), today, ref.holidays)
    if v["is_pending_discharge"] and snap.pending_discharge_time is not None:
        v["hours_since_pending_discharge"] = _hours(snap.pending_discharge_time, now)
        hourly.add("hours_since_pending_discharge")
    if snap.expected_discharge_date is not None:
        v["days_until_expected_discharge"] = (snap.expected_discharge_date - today).days
    inpatient_start = min((p.start for p in snap.status_periods if p.value == "inpatient"),
                          default=None)
    expected_end = snap.expected_discharge_date or (today if v["is_pending_discharge"] else None)
    if inpatient_start is not None and expected_end is not None and not discharged:
        v["expected_inpatient_days"] = (max(expected_end, today)
                                        - inpatient_start.astimezone(zone).date()).days
    if arrived is not None and expected_end is not None and not discharged:
        v["expected_midnights_in_hospital"] = max(
            (max(expected_end, today) - arrived.astimezone(zone).date()).days, 0)

    norm = ref.drg(snap.working_drg)
    if norm is not None:
        v["gmlos_days"] = norm.gmlos
        if inpatient_start is not None:
            v["excess_days"] = round(v["midnights_in_inpatient"] - norm.gmlos, 4)

    # A stay is an entry into intensive care: bed moves inside the ICU do not count again.
    v["icu_stays"] = sum(1 for i, p in enumerate(snap.locations) if p.value in icu_units
                         and (i == 0 or snap.locations[i - 1].value not in icu_units))
    icu = [p for p in snap.locations if p.value in icu_units]
    v["hours_in_icu"] = round(sum(_hours(p.start, min(p.end or until, until)) for p in icu
                                  if p.start < until), 4)
    if running and snap.locations and snap.locations[-1].value in icu_units \
            and snap.locations[-1].end is None:
        hourly.add("hours_in_icu")
    v["transfers"] = max(len(snap.locations) - 1, 0)
    codes = [code for code, _type in snap.diagnoses]
    v["diagnosis_codes"] = codes

    if admitted is not None:
        inpatient = [s for s in snap.past_stays if "inpatient" in s.statuses and s.admit_time
                     and s.admit_time < admitted]
        for fact, days in (("prior_admissions_30d", 30), ("prior_admissions_6m", 182),
                           ("prior_admissions_12m", 365)):
            v[fact] = sum(1 for s in inpatient if s.admit_time and
                          admitted - s.admit_time <= timedelta(days=days))
        v["ed_visits_6m"] = sum(1 for s in snap.past_stays if "emergency" in s.statuses
                                and s.admit_time and s.admit_time < admitted
                                and admitted - s.admit_time <= timedelta(days=182))
        last = max((s.discharge_time for s in inpatient if s.discharge_time
                    and s.discharge_time <= admitted), default=None)
        if last is not None:  # calendar days, as HRRP counts them
            v["days_since_last_discharge"] = (admitted.astimezone(zone).date()
                                              - last.astimezone(zone).date()).days

    index, conditions = charlson(codes, ref.charlson)
    v["charlson_index"] = index
    v["charlson_conditions"] = conditions
    if "los_days" in v and "ed_visits_6m" in v:
        score = lace(v["los_days"], v["acute_admission"], index, v["ed_visits_6m"])
        v.update(lace_score=score.total, lace_l=score.l, lace_a=score.a, lace_c=score.c,
                 lace_e=score.e)
    hgb, sodium = snap.labs.get("hemoglobin"), snap.labs.get("sodium")
    if hgb is not None:
        v["hemoglobin"] = hgb
    if sodium is not None:
        v["sodium"] = sodium
    if hgb is not None and sodium is not None and "los_days" in v:
        parts = hospital(
            hgb, snap.hospital_service == "ONC", sodium, bool(snap.had_procedure),
            v["acute_admission"], v.get("prior_admissions_12m", 0), v["los_days"])
        v.update(hospital_score=parts.total, hospital_h=parts.hemoglobin,
                 hospital_o=parts.oncology, hospital_s=parts.sodium,
                 hospital_p=parts.procedure, hospital_i=parts.index_type,
                 hospital_a=parts.admissions, hospital_l=parts.length_of_stay)
    if snap.had_procedure is not None:
        v["had_procedure"] = snap.had_procedure
    if snap.chosen_disposition is not None:
        v["chosen_disposition"] = snap.chosen_disposition
    v["closed_dispositions"] = list(snap.closed_dispositions)
    v.update(_from_outputs(snap, now, zone, today, discharged))
    v.update(_from_record(snap, now, zone, today, discharged))
    if "oldest_open_barrier_hours" in v and not discharged:
        hourly.add("oldest_open_barrier_hours")
    changes_at = {}
    if snap.birth_date is not None:
        birthday = _next_birthday(snap.birth_date, today)
        changes_at["age"] = datetime(birthday.year, birthday.month, birthday.day, tzinfo=zone)
    return Derived(values=v, hourly=hourly,
                   daily=_changing_at_midnight(snap, today, running, discharged),
                   changes_at=changes_at)


def task_facts(snap: Snapshot, now: datetime, zone: ZoneInfo) -> dict[str, Any]:
    """The FROM_OUTPUTS facts alone, as derive computes them: what a reconciliation can
    change, checked without deriving the rest."""
    discharged = snap.discharge_time is not None and snap.discharge_time <= now
    return _from_outputs(snap, now, zone, now.astimezone(zone).date(), discharged)


def _from_outputs(snap: Snapshot, now: datetime, zone: ZoneInfo, today: date,
                  discharged: bool) -> dict[str, Any]:
    v: dict[str, Any] = {
        "open_task_types": list(snap.open_task_types),
        "completed_task_types": list(snap.completed_task_types),
        "overdue_task_types": sorted(code for code, due in snap.open_task_due.items()
                                     if due < now)}
    pending = snap.pending_discharge_time is not None and not discharged
    expected_end = snap.expected_discharge_date or (today if pending else None)
    delivered = snap.last_completed.get("im-notice")
    if delivered is not None and expected_end is not None and not discharged:
        v["im_delivered_days_before_discharge"] = (max(expected_end, today)
                                                   - delivered.astimezone(zone).date()).days
    return v


def _from_record(snap: Snapshot, now: datetime, zone: ZoneInfo, today: date,
                 discharged: bool) -> dict[str, Any]:
    """The facts from the stay's UR record: barriers, avoidable days, reviews and payer
    authorizations."""
    v: dict[str, Any] = {}
    until = snap.discharge_time if discharged and snap.discharge_time else now
    open_now = [b for b in snap.barriers if b.opened_at <= now
                and (b.resolved_at is None or b.resolved_at > now)]
    v["open_barriers"] = len(open_now)
    v["open_barrier_categories"] = sorted({b.category for b in open_now})
    v["open_barrier_reasons"] = sorted({b.reason_code for b in open_now})
    if open_now:
        oldest = min(open_now, key=lambda b: b.opened_at)
        v["oldest_open_barrier_hours"] = _hours(oldest.opened_at, until)
        v["oldest_open_barrier_reason"] = oldest.reason_code
        v["oldest_open_barrier_category"] = oldest.category
        v["oldest_open_barrier_opened"] = oldest.opened_at.astimezone(zone).strftime(
            "%Y-%m-%dT%H:%M")
    confirmed = {d.first_day + timedelta(days=i) for d in snap.avoidable_days
                 if d.status == "confirmed" for i in range((d.last_day - d.first_day).days + 1)}
    v["avoidable_days"] = len(confirmed)
    v["proposed_avoidable_days"] = sum((d.last_day - d.first_day).days + 1
                                       for d in snap.avoidable_days if d.status == "proposed")
    last_whole = (until.astimezone(zone).date() if discharged else today) - timedelta(days=1)
    streak = 0
    while last_whole - timedelta(days=streak) in confirmed:
        streak += 1
    v["avoidable_day_streak"] = streak
    if confirmed:
        start = max(confirmed)
        while start - timedelta(days=1) in confirmed:
            start -= timedelta(days=1)
        v["avoidable_run_start"] = start.isoformat()
    v["reviews_recorded"] = len(snap.reviews)
    last = record_dates.last_review(snap)
    if last is not None:
        v["last_review_level_of_care"] = last.level_of_care
        v["last_review_criteria_result"] = last.criteria_result
        v["last_review_date"] = last.reviewed_on.isoformat()
        if last.advisor_outcome:
            v["last_review_advisor_outcome"] = last.advisor_outcome
        v["days_since_last_review"] = (today - last.reviewed_on).days
        if last.next_review_on is not None:
            v["days_until_next_review"] = (last.next_review_on - today).days
    if snap.authorizations:
        v["authorization_status"] = snap.authorizations[-1].status
    through = record_dates.approved_through(snap)
    if through is not None:
        v["days_until_approved_through"] = (through - today).days
        v["approved_through_date"] = through.isoformat()
    deadline = record_dates.appeal_deadline(snap)
    if deadline is not None:
        v["days_until_appeal_deadline"] = (deadline - today).days
        v["appeal_deadline_date"] = deadline.isoformat()
    return v


def _next_birthday(birth: date, today: date) -> date:
    """The first day after `today` on which the age goes up (1 March for 29 February)."""
    for year in (today.year, today.year + 1):
        try:
            day = birth.replace(year=year)
        except ValueError:  # 29 February in a common year
            day = date(year, 3, 1)
        if day > today:
            return day
    raise AssertionError("unreachable: next year's birthday is after today")


DAILY_FACTS = frozenset(f.name for f in CATALOGUE if f.varies == "daily")
# Facts read from the stay's own stored tasks: when a reconciliation changes the tasks, these
# can change with it, so the rulebook evaluates again until they settle.
FROM_OUTPUTS = frozenset({"open_task_types", "completed_task_types", "overdue_task_types",
                          "im_delivered_days_before_discharge"})
# Daily facts that move at every midnight of a running stay (age: see Derived.changes_at).
_DAILY_WHILE_RUNNING = DAILY_FACTS - {"age"}
# After discharge, what still moves with the calendar (everything else is held at discharge).
_AFTER_DISCHARGE = frozenset({"business_days_since_discharge"})


def _changing_at_midnight(snap: Snapshot, today: date, running: bool,
                          discharged: bool) -> frozenset[str]:
    changing: set[str] = set(_DAILY_WHILE_RUNNING if running else
                             _AFTER_DISCHARGE if discharged else ())
    if snap.expected_discharge_date is not None:
        changing.add("days_until_expected_discharge")
    # Days counted to or from a date in the UR record move at every midnight while known,
    # after the discharge too (an appeal is often filed after the patient left).
    for fact, known in (("days_since_last_review", record_dates.last_review(snap)),
                        ("days_until_next_review", record_dates.next_review_on(snap)),
                        ("days_until_approved_through", record_dates.approved_through(snap)),
                        ("days_until_appeal_deadline", record_dates.appeal_deadline(snap))):
        if known is not None:
            changing.add(fact)
        else:
            changing.discard(fact)
    return frozenset(changing)
