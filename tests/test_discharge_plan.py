"""One discharge plan per stay: a complex stroke patient's proposals ranked into a primary
recommendation and alternatives, one task to confirm it, and a case manager's choice that
closes the others for good, through the lifecycle, the web page and FHIR; SQLite and
PostgreSQL.

Mrs Story, 80, traditional Medicare, is admitted to the ICU on Monday 2 March 2026 with a
stroke, acute respiratory failure, heart failure, a secondary malignancy and hemiplegia
after an earlier stroke. On Thursday, after three ICU days, the rules propose long-term
acute care first (42 CFR 412.522(b)), then inpatient rehab, skilled nursing and home
health; not hospice (a cancer diagnosis at 80 is not a hospice criterion), and one task to
confirm the plan, with early outpatient follow-up beside it (heart failure, HRRP).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api.app import create_app
from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.planning import evaluation
from engine.planning.tick import tick
from engine.storage.models import Decision, RuleOutput
from engine.work import lifecycle, proposals
from engine.work.lifecycle import Refused
from tests.conftest import auth_headers, csrf, sign_in

CHICAGO = ZoneInfo("America/Chicago")
ADMIT = datetime(2026, 3, 2, 10, 0, tzinfo=CHICAGO)
THURSDAY = datetime(2026, 3, 5, 11, 0, tzinfo=CHICAGO)  # 73 hours in the ICU
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")
DIAGNOSES = [("I63.511", "Cerebral infarction"), ("J96.01", "Acute respiratory failure"),
             ("I50.9", "Heart failure"), ("C78.00", "Secondary malignant neoplasm of lung"),
             ("I69.351", "Hemiplegia following cerebral infarction")]
PLAN_TASK = "confirm-discharge-plan"
DG1 = [f"DG1|{n}||{code}^{text}^I10||20260302|W" for n, (code, text) in enumerate(DIAGNOSES, 1)]


@pytest.fixture
def rt(runtime_factory):
    clock = FixedClock(ADMIT)
    runtime = runtime_factory(clock=clock)
    runtime.intake.hl7(adt("A01", "202603021000", admit_time="202603021000", plan="MCR001",
                           location="ICU^01^A^GENHOSP", extra=DG1))
    clock.set(THURSDAY)
    tick(runtime.sessions, runtime.rules.current, THURSDAY, all_open=True)
    return runtime


def outputs(rt, kind: str, **where) -> list[RuleOutput]:
    with rt.readers() as s:
        query = select(RuleOutput).where(RuleOutput.kind == kind)
        for name, value in where.items():
            query = query.where(getattr(RuleOutput, name) == value)
        return list(s.scalars(query.order_by(RuleOutput.id)))


def plan_of(rt) -> dict[str, str]:
    """The stay's active proposals: transition -> place in the plan."""
    return {p.code: (p.detail or {}).get("plan", "beside")
            for p in outputs(rt, "proposal", status="active")}


def choose(rt, chosen: str, *, when: datetime = THURSDAY, outcome: str | None = None) -> None:
    with rt.sessions() as s, s.begin():
        task_id = s.scalar(select(RuleOutput.id).where(RuleOutput.code == PLAN_TASK,
                                                       RuleOutput.status == "active"))
        task = lifecycle.load(s, task_id)
        lifecycle.transition(s, task, "complete", ALVAREZ, now=when, outcome=outcome,
                             chosen=chosen)
        evaluation.after_work(s, rt.rules.current, task, when)


def test_the_complex_stroke_patient_gets_one_ranked_plan_and_one_task(rt):
    assert plan_of(rt) == {"ltach": "primary", "irf": "alternative", "snf": "alternative",
                           "home_health": "alternative", "outpatient_followup": "beside"}
    tasks = [t.code for t in outputs(rt, "task", status="active")]
    assert tasks.count(PLAN_TASK) == 1
    assert not [t for t in tasks if t.startswith("confirm-transition-")
                and t != "confirm-transition-outpatient-followup"]
    (task,) = outputs(rt, "task", code=PLAN_TASK)
    assert (task.title, task.queue, task.priority) == (
        "Confirm the discharge plan", "case_manager", "routine")
    said = task.detail["instructions"]
    assert ("Primary recommendation: Long-term acute care hospital. Why: Respiratory failure "
            "or ventilator dependence with 3 or more ICU days in this stay.") in said
    assert said.endswith("Alternatives: Inpatient rehabilitation, Skilled nursing facility, "
                         "Home health.")
    assert task.detail["discharge_plan"]["primary"] == "ltach"


def test_choosing_skilled_nursing_closes_the_others_for_the_rest_of_the_stay(rt):
    choose(rt, "snf")
    (snf,) = outputs(rt, "proposal", code="snf")
    assert (snf.status, snf.detail["chosen"]) == ("completed", True)
    closed = {p.code: p.end_reason for p in outputs(rt, "proposal", status="cancelled")}
    assert closed == dict.fromkeys(("ltach", "irf", "home_health"),
                                   "another disposition chosen: Skilled nursing facility")
    (task,) = outputs(rt, "task", code=PLAN_TASK)
    assert (task.task_status, task.outcome, task.detail["chosen"]) == (
        "completed", "disposition chosen: Skilled nursing facility", "snf")
    # the next morning, and after a new diagnosis: nothing closed comes back
    later = THURSDAY + timedelta(days=1)
    rt.clock.set(later)
    rt.intake.hl7(adt("A08", "202603061100", plan="MCR001", location="ICU^01^A^GENHOSP",
                      extra=[*DG1, "DG1|6||Z99.81^Dependence on oxygen^I10||20260306|W"]))
    tick(rt.sessions, rt.rules.current, later, all_open=True)
    assert plan_of(rt) == {"outpatient_followup": "beside"}
    assert len(outputs(rt, "task", code=PLAN_TASK)) == 1
    assert len(outputs(rt, "proposal", code="irf")) == 1


def test_follow_up_stands_beside_the_plan_and_outlives_the_choice(rt):
    choose(rt, "home", outcome="Patient and daughter choose home with outpatient rehab")
    assert plan_of(rt) == {"outpatient_followup": "beside"}
    assert [t.code for t in outputs(rt, "task", status="active")
            if t.code.startswith("confirm")] == ["confirm-transition-outpatient-followup"]
    (task,) = outputs(rt, "task", code=PLAN_TASK)
    assert task.outcome == "Patient and daughter choose home with outpatient rehab"


def test_the_plan_task_needs_a_known_disposition_and_only_it_takes_one(rt):
    with rt.sessions() as s, s.begin():
        task = s.scalars(select(RuleOutput).where(RuleOutput.code == PLAN_TASK)).one()
        with pytest.raises(Refused, match="needs the chosen disposition"):
            lifecycle.transition(s, task, "complete", ALVAREZ, now=THURSDAY, outcome="done")
        with pytest.raises(Refused, match="'rehab' is not a disposition"):
            lifecycle.transition(s, task, "complete", ALVAREZ, now=THURSDAY, chosen="rehab")
        im = s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).one()
        with pytest.raises(Refused, match="only when completing the discharge plan"):
            lifecycle.transition(s, im, "complete", ALVAREZ, now=THURSDAY, outcome="IM signed",
                                 chosen="snf")
        lifecycle.transition(s, task, "start", ALVAREZ, now=THURSDAY)  # other steps as usual
    assert plan_of(rt)["ltach"] == "primary"


def test_the_case_manager_chooses_on_the_encounter_page(rt):
    (task,) = outputs(rt, "task", code=PLAN_TASK)
    with TestClient(create_app(rt), base_url="http://testserver") as web:
        sign_in(web, "case_manager")
        html = web.get(f"/encounters/{task.encounter_id}").text
        assert f'<label for="chosen-{task.id}">Disposition chosen</label>' in html
        assert re.search(r'<option value="ltach">Long-term acute care hospital \(primary '
                         r'recommendation\)</option>', html)
        assert '<option value="irf">Inpatient rehabilitation (alternative)</option>' in html
        assert '<option value="hospice">Hospice</option>' in html.split("Not proposed")[1]
        assert "primary recommendation</span>" in html
        refused = web.post(f"/tasks/{task.id}/complete", data={"csrf_token": csrf(web)})
        assert refused.status_code == 422 and "needs the chosen disposition" in refused.text
        done = web.post(f"/tasks/{task.id}/complete",
                        data={"csrf_token": csrf(web), "chosen": "irf"}, follow_redirects=False)
        assert done.status_code == 303
        html = web.get(f"/encounters/{task.encounter_id}").text
    assert 'plan-chosen">chosen</span>' in html
    assert "disposition chosen: Inpatient rehabilitation" in html
    assert "another disposition chosen: Inpatient rehabilitation" in html  # the timeline
    assert plan_of(rt) == {"outpatient_followup": "beside"}


def test_fhir_shows_the_plan_and_a_task_update_chooses_the_disposition(rt):
    with TestClient(create_app(rt), base_url="http://testserver") as web:
        headers = auth_headers(web)
        bundle = web.get("/fhir/ServiceRequest", params={"status": "active"},
                         headers=headers).json()
        places = {e["resource"]["code"]["coding"][0]["code"]:
                  e["resource"].get("category", [{}])[0].get("coding", [{}])[0].get("code")
                  for e in bundle["entry"]}
        assert places == {"ltach": "primary", "irf": "alternative", "snf": "alternative",
                          "home_health": "alternative", "outpatient_followup": None}
        (task,) = outputs(rt, "task", code=PLAN_TASK)
        answer = web.patch(f"/fhir/Task/{task.id}", headers={
            **headers, "Content-Type": "application/merge-patch+json"}, json={
            "status": "completed", "output": [{
                "type": {"coding": [{"system": "urn:engine:task-output",
                                     "code": "chosen-disposition"}]},
                "valueCodeableConcept": {"coding": [{"system": "urn:engine:transition",
                                                     "code": "ltach"}]}}]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "completed"
        assert body["output"][0]["valueString"] == ("disposition chosen: Long-term acute care "
                                                    "hospital")
        assert body["output"][1]["valueCodeableConcept"]["coding"][0]["code"] == "ltach"
        by_code = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in web.get(
            "/fhir/ServiceRequest", params={"encounter": str(task.encounter_id)},
            headers=headers).json()["entry"]}
    assert by_code["ltach"]["status"] == "completed"
    assert by_code["ltach"]["category"][0]["coding"][0]["code"] == "chosen"
    assert by_code["irf"]["status"] == "revoked"
    assert {"text": "revoked: another disposition chosen: Long-term acute care hospital"} \
        in by_code["irf"]["note"]


def test_a_disposition_a_person_closed_is_neither_proposed_again_nor_in_the_plan(rt):
    """The interface a decline uses: a cancelled proposal whose detail names who closed it
    (`closed_by`) stays closed (fact closed_dispositions), and the plan re-ranks without it."""
    with rt.sessions() as s, s.begin():
        ltach = s.scalars(select(RuleOutput).where(RuleOutput.code == "ltach")).one()
        ltach.status, ltach.end_reason = "cancelled", "declined by cm.alvarez: family declines"
        ltach.detail = {**ltach.detail, "closed_by": "cm.alvarez"}
    later = THURSDAY + timedelta(hours=2)
    rt.clock.set(later)
    tick(rt.sessions, rt.rules.current, later, all_open=True)
    assert plan_of(rt) == {"irf": "primary", "snf": "alternative",
                           "home_health": "alternative", "outpatient_followup": "beside"}
    assert len(outputs(rt, "proposal", code="ltach")) == 1
    (task,) = outputs(rt, "task", code=PLAN_TASK)
    assert "Primary recommendation: Inpatient rehabilitation" in task.detail["instructions"]
    assert "Long-term acute care" not in task.detail["instructions"]


def decline(rt, code: str, *, when: datetime = THURSDAY) -> None:
    with rt.sessions() as s, s.begin():
        proposal = proposals.load(s, s.scalar(select(RuleOutput.id).where(
            RuleOutput.kind == "proposal", RuleOutput.code == code,
            RuleOutput.status == "active")))
        proposals.decline(s, proposal, ALVAREZ, now=when, reason_code="patient-declined",
                          reason="will not go to a facility far from her husband",
                          staffing=rt.staffing)
        evaluation.after_work(s, rt.rules.current, proposal, when)


def test_a_declined_disposition_is_no_alternative_and_the_choice_still_closes_the_rest(rt):
    """Declining rehab (an alternative), then LTACH (the primary): each leaves the plan, the
    next in rank leads, and neither comes back as an alternative as the stay goes on; the
    disposition she then chooses closes the others as before."""
    decline(rt, "irf")
    assert plan_of(rt) == {"ltach": "primary", "snf": "alternative",
                           "home_health": "alternative", "outpatient_followup": "beside"}
    (task,) = outputs(rt, "task", code=PLAN_TASK, status="active")
    assert task.detail["instructions"].endswith(
        "Alternatives: Skilled nursing facility, Home health.")
    assert task.detail["discharge_plan"]["alternatives"] == ["snf", "home_health"]
    decline(rt, "ltach", when=THURSDAY + timedelta(minutes=5))
    later = THURSDAY + timedelta(hours=6)
    rt.clock.set(later)
    tick(rt.sessions, rt.rules.current, later, all_open=True)
    assert plan_of(rt) == {"snf": "primary", "home_health": "alternative",
                           "outpatient_followup": "beside"}
    (task,) = outputs(rt, "task", code=PLAN_TASK, status="active")
    assert "Primary recommendation: Skilled nursing facility." in task.detail["instructions"]
    assert "Inpatient rehabilitation" not in task.detail["instructions"]
    assert "Long-term acute care" not in task.detail["instructions"]
    choose(rt, "snf", when=later)
    closed = {p.code: p.end_reason for p in outputs(rt, "proposal", status="cancelled")}
    assert closed["home_health"] == "another disposition chosen: Skilled nursing facility"
    assert closed["irf"].startswith("declined by cm.alvarez: Patient or family declined")
    assert plan_of(rt) == {"outpatient_followup": "beside"}
    with rt.sessions() as s:
        assert {d.output_key for d in s.scalars(select(Decision))} == {
            "propose-irf/proposal/irf", "propose-ltach/proposal/ltach"}

