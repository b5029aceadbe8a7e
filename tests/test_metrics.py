"""The department's numbers on a month whose answers are known, on both stores.

Four March stays come in through the HL7 path (three inpatient, one observation only), two
of the patients come back (one within 30 days, one after); UR's record (avoidable days,
barriers, authorizations) is written through the ORM; the tasks the rules raised get known
due and completion times. Each metric is checked against the numbers worked out by hand,
then the page: charts and tables for a supervisor and a director, 403 for a case manager,
CSV exports equal to the tables, a clear message for a period that ends before it starts.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api.app import create_app
from engine.core.clock import FixedClock
from engine.hl7.build import adt, drg
from engine.reporting.catalogue import BY_KEY
from engine.reporting.scope import Scope, read
from engine.reporting.table import Context, Table
from engine.rules.reference import load_reference
from engine.storage.models import (
    AuditRecord,
    AvoidableDay,
    Barrier,
    Encounter,
    PayerAuthorization,
    RuleOutput,
)
from tests.conftest import ROOT, sign_in

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 4, 20, 12, 0, tzinfo=CHICAGO)
MARCH = Scope(start=date(2026, 3, 1), end=date(2026, 3, 31))
DRGS = load_reference(ROOT / "rulesets" / "reference").drgs
HEART_FAILURE = "HEART FAILURE AND SHOCK"
HIP_KNEE = "MAJOR HIP AND KNEE JOINT REPLACEMENT OR REATTACHMENT OF LOWER EXTREMITY"
# visit, mrn, unit, class (or OBS: observation), DRG, admitted, discharged (Chicago times)
STAYS = [
    ("V7001", "700001", "4WEST", "I", "291", "202603021000", "202603071100"),  # 5 days, GMLOS 3.8
    ("V7002", "700002", "5EAST", "I", "292", "202603030900", "202603051500"),  # 2 days, 2.9
    ("V7003", "700003", "4WEST", "I", "470", "202603040800", "202603101000"),  # 6 days, 1.9
    ("V7004", "700004", "4WEST", "OBS", "291", "202603050800", "202603061000"),  # observation
    ("V7005", "700001", "4WEST", "I", "", "202603200900", ""),  # back 13 days later
    ("V7006", "700003", "5EAST", "I", "", "202604150900", ""),  # back 36 days later
    ("V7007", "700002", "5EAST", "OBS", "", "202603100900", "202603111000"),  # back in obs
]


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=CHICAGO)


def admit_and_discharge(runtime) -> dict[str, int]:
    for visit, mrn, unit, klass, code, admitted, discharged in STAYS:
        extra = [drg(code)] if code else None
        kind = {"patient_class": "O", "patient_type": "OBS"} if klass == "OBS" \
            else {"patient_class": klass}
        runtime.intake.hl7(adt("A01", admitted, mrn=mrn, visit=visit, admit_time=admitted,
                               location=f"{unit}^1^A^GENHOSP", extra=extra, **kind))
        if discharged:
            runtime.intake.hl7(adt("A03", discharged, mrn=mrn, visit=visit,
                                   admit_time=admitted, discharge_time=discharged,
                                   disposition="01", location=f"{unit}^1^A^GENHOSP",
                                   extra=extra, **kind))
    with runtime.sessions() as s, s.begin():
        ids = {e.visit_number: e.id for e in s.scalars(select(Encounter))}
        s.get(Encounter, ids["V7003"]).hospital_service = "ORT"  # the hip: orthopedics
    return ids


def ur_record(runtime, ids: dict[str, int]) -> None:
    """Avoidable days, barriers and authorizations as UR and case management keep them."""
    entered = {"entered_by": "ur.kim", "entered_at": NOW, "updated_by": "ur.kim",
               "updated_at": NOW}

    def day(visit, first, last, category, party, status="confirmed", **more):
        return AvoidableDay(encounter_id=ids[visit], first_day=date.fromisoformat(first),
                            last_day=date.fromisoformat(last), reason_code="X",
                            category=category, responsible_party=party, status=status,
                            source="person", **entered, **more)

    def barrier(visit, hours, category, **more):
        return Barrier(encounter_id=ids[visit], category=category, reason_code="X",
                       opened_at=NOW - timedelta(hours=hours), opened_by="cm.alvarez",
                       **entered, **more)

    def authorization(visit, status, payer=None, **more):
        return PayerAuthorization(encounter_id=ids[visit], status=status, payer=payer,
                                  source="web", **entered, **more)

    with runtime.sessions() as s, s.begin():
        s.add_all([
            day("V7001", "2026-03-04", "2026-03-06", "post_acute_placement",
                "post_acute_provider"),  # 3 days, week of Monday 2 March
            day("V7003", "2026-03-08", "2026-03-08", "payer", "payer"),  # a Sunday: same week
            day("V7003", "2026-03-09", "2026-03-10", "post_acute_placement",
                "post_acute_provider"),  # 2 days, week of Monday 9 March
            day("V7003", "2026-03-09", "2026-03-09", "payer", "payer", status="proposed"),
            day("V7002", "2026-03-04", "2026-03-04", "payer", "payer", status="rejected"),
            day("V7001", "2026-03-05", "2026-03-05", "physician", "physician",
                voided_at=NOW, void_reason="entered on the wrong stay"),
            barrier("V7005", 2, "payer"),
            barrier("V7005", 30, "post_acute_placement"),
            barrier("V7005", 100, "post_acute_placement"),
            barrier("V7006", 240, "patient_family"),
            barrier("V7006", 50, "payer", resolved_at=NOW, resolved_by="cm.alvarez"),
            barrier("V7006", 50, "payer", voided_at=NOW, void_reason="duplicate"),
            authorization("V7001", "pending", "Acme Health"),
            authorization("V7003", "denied", "Acme Health", denial_reason="not medically "
                          "necessary"),
            authorization("V7002", "pended"),  # no payer on it: the stay's (PAYER MCR001)
            authorization("V7002", "approved", "Acme Health"),
            authorization("V7003", "pending", "Acme Health", voided_at=NOW,
                          void_reason="entered twice"),
        ])


@pytest.fixture
def rt(runtime_factory):
    runtime = runtime_factory(clock=FixedClock(NOW))
    ur_record(runtime, admit_and_discharge(runtime))
    return runtime


def table(rt, key: str, scope: Scope = MARCH):
    with rt.readers() as s:
        return BY_KEY[key].query(s, scope, Context(NOW, CHICAGO, DRGS))


def tasks(rt, *codes: str) -> list[int]:
    with rt.readers() as s:
        return list(s.scalars(select(RuleOutput.id).where(
            RuleOutput.kind == "task", RuleOutput.code.in_(codes)).order_by(RuleOutput.id)))


def set_tasks(rt, states: dict[int, dict]) -> None:
    with rt.sessions() as s, s.begin():
        for task_id, values in states.items():
            row = s.get(RuleOutput, task_id)
            for name, value in values.items():
                setattr(row, name, value)


DUE = datetime(2026, 3, 10, 17, 0, tzinfo=CHICAGO)
ON_TIME = {"due_at": DUE, "task_status": "completed", "ended_at": DUE - timedelta(hours=3)}
AT_DUE = {"due_at": DUE, "task_status": "completed", "ended_at": DUE}
LATE = {"due_at": DUE, "task_status": "completed", "ended_at": DUE + timedelta(hours=1)}
OVERDUE = {"due_at": DUE, "task_status": "ready", "ended_at": None}
FAILED = {"due_at": DUE, "task_status": "failed", "ended_at": None}
CANCELLED = {"due_at": DUE, "task_status": "cancelled", "ended_at": DUE}
NOT_DUE = {"due_at": NOW + timedelta(days=1), "task_status": "ready", "ended_at": None}


def test_los_index_and_excess_days_by_drg_family_unit_and_service(rt):
    # heart failure: 5 + 2 observed days against 3.8 + 2.9; the hip: 6 against 1.9; the
    # observation-only stay (DRG 291 too) is not an inpatient stay and does not count
    assert table(rt, "los-by-drg-family").rows == [
        (HIP_KNEE, 1, 6, 1.9, 3.16, 4.1),
        (HEART_FAILURE, 2, 7, 6.7, 1.04, 0.3),
    ]
    assert table(rt, "los-by-unit").rows == [("4WEST", 2, 11, 5.7, 1.93, 5.3),
                                             ("5EAST", 1, 2, 2.9, 0.69, -0.9)]
    assert table(rt, "los-by-service").rows == [("ORT", 1, 6, 1.9, 3.16, 4.1),
                                                ("MED", 2, 7, 6.7, 1.04, 0.3)]
    # the period is on the discharge: from 6 March only the stays discharged on 7 and 10
    later = Scope(start=date(2026, 3, 6), end=date(2026, 3, 31))
    assert [r[:3] for r in table(rt, "los-by-unit", later).rows] == [("4WEST", 2, 11)]
    assert table(rt, "los-by-unit", Scope(unit="5EAST")).rows[0][:3] == ("5EAST", 1, 2)
    assert table(rt, "los-by-unit", Scope(unit="NOWHERE")).rows == []


def test_confirmed_avoidable_days_by_category_party_and_time(rt):
    assert table(rt, "avoidable-days-by-category").rows == [
        ("Post-acute placement", 5, 2), ("Payer", 1, 1)]
    assert table(rt, "avoidable-days-by-party").rows == [
        ("Post-acute provider", 5, 2), ("Payer", 1, 1)]
    assert table(rt, "avoidable-days-over-time").rows == [("2026-03", 6, 3)]
    weekly = Scope(start=date(2026, 3, 1), end=date(2026, 3, 31), grain="week")
    # every week of the period, from the one holding Sunday 1 March to the one holding the 31st
    assert table(rt, "avoidable-days-over-time", weekly).rows == [
        ("2026-02-23", 0, 0), ("2026-03-02", 4, 2), ("2026-03-09", 2, 1), ("2026-03-16", 0, 0),
        ("2026-03-23", 0, 0), ("2026-03-30", 0, 0)]
    # a run counts where its first day falls: from 9 March only the last run
    ninth = Scope(start=date(2026, 3, 9))
    assert table(rt, "avoidable-days-by-category", ninth).rows == [("Post-acute placement", 2, 1)]


def test_avoidable_days_over_time_count_each_day_in_its_month_and_show_empty_ones(rt):
    # V7005, back on 20 March and still in, waits for a bed from Monday 30 March to
    # Thursday 2 April: two days in March, two in April
    with rt.sessions() as s, s.begin():
        stay = s.scalars(select(Encounter).where(Encounter.visit_number == "V7005")).one()
        s.add(AvoidableDay(encounter_id=stay.id, first_day=date(2026, 3, 30),
                           last_day=date(2026, 4, 2), reason_code="X",
                           category="post_acute_placement", responsible_party="post_acute_provider",
                           status="confirmed", source="person", entered_by="ur.kim",
                           entered_at=NOW, updated_by="ur.kim", updated_at=NOW))
    year = Scope(start=date(2026, 1, 1), end=date(2026, 4, 30))
    assert table(rt, "avoidable-days-over-time", year).rows == [
        ("2026-01", 0, 0), ("2026-02", 0, 0), ("2026-03", 8, 4), ("2026-04", 2, 1)]
    # no period: from the first avoidable day (4 March) to today (20 April)
    assert table(rt, "avoidable-days-over-time", Scope()).rows == [
        ("2026-03", 8, 4), ("2026-04", 2, 1)]
    # March only: the run's April days are outside the period
    assert table(rt, "avoidable-days-over-time").rows == [("2026-03", 8, 4)]
    weekly = Scope(start=date(2026, 3, 9), end=date(2026, 4, 12), grain="week")
    assert table(rt, "avoidable-days-over-time", weekly).rows == [
        ("2026-03-09", 2, 1), ("2026-03-16", 0, 0), ("2026-03-23", 0, 0), ("2026-03-30", 4, 1),
        ("2026-04-06", 0, 0)]


def test_open_barriers_by_age_and_category(rt):
    assert table(rt, "open-barriers-by-age").rows == [
        ("<24 h", 1), ("1-2 d", 1), ("3-7 d", 1), (">7 d", 1)]
    assert table(rt, "open-barriers-by-category").rows == [
        ("Post-acute placement", 2), ("Patient / family", 1), ("Payer", 1)]
    assert table(rt, "open-barriers-by-age", Scope(unit="5EAST")).rows == [
        ("<24 h", 0), ("1-2 d", 0), ("3-7 d", 0), (">7 d", 1)]


def test_im_and_moon_delivered_on_time(rt):
    im, moon = tasks(rt, "im-notice"), tasks(rt, "moon-notice")
    assert len(im) >= 5 and moon, "the rules raise an IM per Medicare inpatient stay and a MOON"
    states = dict.fromkeys(tasks(rt, "im-notice", "im-follow-up-notice", "moon-notice"),
                           CANCELLED)
    states.update({im[0]: ON_TIME, im[1]: AT_DUE, im[2]: LATE, im[3]: OVERDUE,
                   im[4]: NOT_DUE, moon[0]: FAILED})
    set_tasks(rt, states)
    assert table(rt, "notices-on-time", Scope()).rows == [
        ("IM (within 2 days of admission)", 2, 1, 1, 0, 4, 50.0),
        ("MOON (within 36 hours of observation)", 0, 0, 1, 0, 1, 0.0),
        ("All", 2, 1, 2, 0, 5, 40.0),
    ]
    # the period is on the due time: nothing was due in February
    assert table(rt, "notices-on-time", Scope(end=date(2026, 2, 28))).rows == [
        ("All", 0, 0, 0, 0, 0, None)]


def test_reviews_done_on_time(rt):
    initial = tasks(rt, "initial-ur-review")
    assert len(initial) >= 3
    states = dict.fromkeys(tasks(rt, "initial-ur-review", "continued-stay-review",
                                 "status-review", "short-stay-review", "excess-days-review"),
                           CANCELLED)
    states.update({initial[0]: ON_TIME, initial[1]: LATE, initial[2]: LATE})
    set_tasks(rt, states)
    assert table(rt, "reviews-on-time").rows == [
        ("Initial (admission) review", 1, 2, 0, 0, 3, 33.3), ("All", 1, 2, 0, 0, 3, 33.3)]


def test_a_notice_the_discharge_cancelled_after_its_deadline_was_missed(runtime_factory):
    """Two Medicare inpatients, no notice given and no review done: the one discharged
    Friday had his IM due Wednesday 17:00 and his initial review Tuesday 17:00, both ended
    by the discharge after the deadline (missed); the one discharged Tuesday morning left
    before anything was due (excluded), and the short-stay review raised for her and
    declined by a person after its due time stays excluded too."""
    clock = FixedClock(at("202605111500"))
    runtime = runtime_factory(clock=clock)

    def stay(mrn, visit, admitted, discharged):
        where = {"mrn": mrn, "visit": visit, "admit_time": admitted, "patient_class": "I",
                 "location": "4WEST^1^A^GENHOSP"}
        clock.set(at(admitted))
        runtime.intake.hl7(adt("A01", admitted, **where))
        clock.set(at(discharged))
        runtime.intake.hl7(adt("A03", discharged, discharge_time=discharged,
                               disposition="01", **where))

    stay("800001", "V8001", "202605111500", "202605151100")  # Monday to Friday
    stay("800002", "V8002", "202605111600", "202605120900")  # Monday to Tuesday morning
    short = tasks(runtime, "short-stay-review")
    assert len(short) == 1, "the rules ask for a review of the one-day stay"
    set_tasks(runtime, {short[0]: {"task_status": "rejected", "status": "cancelled",
                                   "ended_at": at("202605141000")}})
    may = Scope(start=date(2026, 5, 1), end=date(2026, 5, 31))
    monday = Context(at("202605181200"), CHICAGO, DRGS)
    with runtime.readers() as s:
        notices = BY_KEY["notices-on-time"].query(s, may, monday)
        reviews = BY_KEY["reviews-on-time"].query(s, may, monday)
    assert notices.columns == ("Task type", "On time", "Late", "Overdue", "Missed", "Counted",
                               "On time %")
    assert notices.rows == [("IM (within 2 days of admission)", 0, 0, 0, 1, 1, 0.0),
                            ("All", 0, 0, 0, 1, 1, 0.0)]
    # the continued-stay reviews were due Friday 17:00, after both discharges: excluded
    assert reviews.rows == [("Initial (admission) review", 0, 0, 0, 1, 1, 0.0),
                            ("All", 0, 0, 0, 1, 1, 0.0)]


def test_authorizations_pending_and_denied_by_payer(rt):
    assert table(rt, "authorizations").rows == [("Acme Health", 1, 0, 1),
                                                ("PAYER MCR001", 0, 1, 0)]
    assert table(rt, "authorizations", Scope(payer="medicaid")).rows == []
    assert table(rt, "authorizations", Scope(payer="MCR001")).rows[0][0] == "Acme Health"


def test_30_day_readmissions_by_service(rt):
    # index stays: the three March inpatient discharges; V7001's patient is back in 13
    # days (a readmission), V7003's in 36 (not one), V7002's in 5 but in observation only
    # (not one either); the observation stays are no index stays
    assert table(rt, "readmissions-30d").rows == [("MED", 2, 1, 50.0, 0), ("ORT", 1, 0, 0.0, 0),
                                                  ("All", 3, 1, 33.3, 0)]
    assert table(rt, "readmissions-30d", Scope(service="ORT")).rows == [
        ("ORT", 1, 0, 0.0, 0), ("All", 1, 0, 0.0, 0)]


def test_index_stays_whose_30_days_have_not_passed_are_left_out_of_the_rate(rt):
    # seen on Monday 6 April: V7002's 5 March discharge is 32 days back (its window has
    # closed, no inpatient return: an index stay), V7001's of the 7th is on its 30th day
    # (back on the 20th, but the window is still open) and V7003's of the 10th too
    april = Context(datetime(2026, 4, 6, 12, 0, tzinfo=CHICAGO), CHICAGO, DRGS)
    with rt.readers() as s:
        result = BY_KEY["readmissions-30d"].query(s, MARCH, april)
    assert result.columns[-1] == "Window still open"
    assert result.rows == [("MED", 1, 0, 0.0, 1), ("ORT", 0, 0, None, 1), ("All", 1, 0, 0.0, 2)]
    # a day later V7001's window has closed: an index stay, readmitted
    april_7 = Context(datetime(2026, 4, 7, 8, 0, tzinfo=CHICAGO), CHICAGO, DRGS)
    with rt.readers() as s:
        assert BY_KEY["readmissions-30d"].query(s, MARCH, april_7).rows == [
            ("MED", 2, 1, 50.0, 0), ("ORT", 0, 0, None, 1), ("All", 2, 1, 50.0, 1)]


def test_overdue_work_by_team_and_owner(rt):
    every = tasks(rt, *_task_codes(rt))
    states = {t: {"status": "completed", "task_status": "completed", "ended_at": NOW}
              for t in every}
    hour, still_open = timedelta(hours=1), {"status": "active", "ended_at": None}
    states.update({
        every[0]: {**still_open, "task_status": "ready", "queue": "case_manager",
                   "owner": "cm.alvarez", "due_at": NOW - hour},
        every[1]: {**still_open, "task_status": "on-hold", "queue": "case_manager", "owner": None,
                   "due_at": NOW - 2 * hour},
        every[2]: {**still_open, "task_status": "in-progress", "queue": "ur_nurse",
                   "owner": "ur.kim", "due_at": NOW - 3 * hour, "escalated_to": "sup.garcia"},
        every[3]: {**still_open, "task_status": "ready", "queue": "ur_nurse", "owner": "ur.kim",
                   "due_at": NOW + hour},  # not due yet
    })
    set_tasks(rt, states)
    assert table(rt, "overdue-by-queue").rows == [("case manager", 2, 1, 0),
                                                  ("ur nurse", 1, 0, 1)]
    assert table(rt, "overdue-by-owner").rows == [("(unassigned)", 1, 0), ("cm.alvarez", 1, 0),
                                                  ("ur.kim", 1, 1)]


def _task_codes(rt) -> set[str]:
    with rt.readers() as s:
        return set(s.scalars(select(RuleOutput.code).where(RuleOutput.kind == "task")))


def test_filters_are_checked_and_kept():
    asked = read({"unit": " 4WEST ", "from": "2026-03-31", "to": "2026-03-01"})
    assert asked.typed["unit"] == "4WEST" and "ends (2026-03-01) before it starts" in \
        asked.errors["to"]
    assert read({"from": "31/03/2026"}).errors["from"].startswith("From must be a date")
    assert read({"unit": "NOWHERE"}).errors == {}


@pytest.fixture
def web(rt):
    with TestClient(create_app(rt), base_url="http://testserver") as client:
        yield client


def html_tables(html: str) -> dict[str, list[list[str]]]:
    """Each metric's table on the page, cells as text."""
    out = {}
    for key, body in re.findall(r'data-metric="([^"]+)">(.*?)</table>', html, re.S):
        out[key] = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
                    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    return out


def test_the_page_draws_each_metric_with_its_definition_and_table(web, rt):
    sign_in(web, "supervisor")
    page = web.get("/metrics", params={"from": "2026-03-01", "to": "2026-03-31",
                                       "unit": "4WEST"})
    assert page.status_code == 200, page.text
    html = page.text
    assert 'value="4WEST"' in html and 'value="2026-03-01"' in html  # the filters as typed
    shown = html_tables(html)
    assert set(shown) == set(BY_KEY)
    for key, metric in BY_KEY.items():
        assert f'id="metric-{key}"' in html and metric.definition in html.replace("&#39;", "'")
    charts = re.findall(r'<svg[^>]*role="img"[^>]*>\s*<title id="chart-([^"]+)-title">', html)
    assert "los-by-unit" in charts and "open-barriers-by-age" in charts
    assert re.search(r'<desc id="chart-los-by-unit-desc">[^<]*4WEST; Excess days 5.3', html)
    assert shown["los-by-unit"][1] == ["4WEST", "2", "11", "5.7", "1.93", "5.3"]
    assert "Download this table (CSV)" in html and "patient" not in shown
    with rt.readers() as s:
        audited = s.scalars(select(AuditRecord).where(AuditRecord.resource_type == "Metrics"))
        assert [(a.actor, a.operation, a.path) for a in audited] == [
            ("test.supervisor", "search", "/metrics")]


def test_csv_exports_the_table_with_the_same_filters(web, rt):
    sign_in(web, "supervisor")
    params = {"from": "2026-03-01", "to": "2026-03-31"}
    html = web.get("/metrics", params=params).text
    link = re.search(r'href="(/metrics/los-by-drg-family\.csv[^"]*)"', html)[1]
    assert "from=2026-03-01" in link
    answer = web.get(link.replace("&amp;", "&"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows == html_tables(html)["los-by-drg-family"]
    assert rows[1] == [HIP_KNEE, "1", "6", "1.9", "3.16", "4.1"]
    for key in BY_KEY:
        exported = web.get(f"/metrics/{key}.csv", params=params)
        assert exported.status_code == 200, key
        assert list(csv.reader(io.StringIO(exported.text)))[0] == list(
            table(rt, key).columns)
    assert web.get("/metrics/nothing.csv").status_code == 404


def test_a_spreadsheet_opens_the_csv_without_running_names_from_the_feed(web, rt):
    # the feed names a unit and a service like formulas; the numbers stay numbers
    with rt.sessions() as s, s.begin():
        for stay in s.scalars(select(Encounter).where(Encounter.unit == "5EAST")):
            stay.unit = '=HYPERLINK("http://example.invalid","5EAST")'
        for stay in s.scalars(select(Encounter).where(Encounter.hospital_service == "ORT")):
            stay.hospital_service = "@SUM(1+1)"
    sign_in(web, "supervisor")
    params = {"from": "2026-03-01", "to": "2026-03-31"}
    units = list(csv.reader(io.StringIO(web.get("/metrics/los-by-unit.csv",
                                                params=params).text)))
    assert units[2] == ["'=HYPERLINK(\"http://example.invalid\",\"5EAST\")", "1", "2",
                        "2.9", "0.69", "-0.9"]
    services = list(csv.reader(io.StringIO(web.get("/metrics/los-by-service.csv",
                                                   params=params).text)))
    assert services[1] == ["'@SUM(1+1)", "1", "6", "1.9", "3.16", "4.1"]
    quoted = Table(("Name", "n"), [("+1", -2), ("-x", 1.5), ("\tx", 0), ("\rx", 0), ("a=b", 0)])
    assert list(csv.reader(io.StringIO(quoted.csv()))) == [
        ["Name", "n"], ["'+1", "-2"], ["'-x", "1.5"], ["'\tx", "0"], ["'\rx", "0"],
        ["a=b", "0"]]


def test_names_with_dollar_signs_are_drawn_as_they_are(web, rt):
    # $...$ is mathtext to matplotlib, and A$B^^$C a mathtext error: it is a payer's name
    with rt.sessions() as s, s.begin():
        for record in s.scalars(select(PayerAuthorization)):
            record.payer = "A$B^^$C"
        for stay in s.scalars(select(Encounter).where(Encounter.unit == "4WEST")):
            stay.unit = "$4^^WEST$"
    sign_in(web, "supervisor")
    page = web.get("/metrics", params={"from": "2026-03-01", "to": "2026-03-31"})
    assert page.status_code == 200, page.text[:500]
    assert ">A$B^^$C</text>" in page.text and ">$4^^WEST$</text>" in page.text


def test_a_period_ending_before_it_starts_is_explained_and_kept(web):
    sign_in(web, "supervisor")
    page = web.get("/metrics", params={"from": "2026-03-31", "to": "2026-03-01",
                                       "service": "MED"})
    assert page.status_code == 400
    assert "The period ends (2026-03-01) before it starts (2026-03-31)" in page.text
    assert 'value="2026-03-31"' in page.text and 'value="MED"' in page.text
    assert "<svg" not in page.text
    assert web.get("/metrics/los-by-unit.csv", params={"from": "x"}).status_code == 400


def test_directors_see_the_numbers_and_case_managers_do_not(web):
    signed_in = sign_in(web, "director")
    assert signed_in.headers["location"] == "/metrics"  # not the worklist they may not read
    assert web.get("/metrics").status_code == 200
    web.cookies.clear()
    sign_in(web, "case_manager")
    refused = web.get("/metrics")
    assert refused.status_code == 403 and "does not allow this page" in refused.text
    assert web.get("/metrics/los-by-unit.csv").status_code == 403
