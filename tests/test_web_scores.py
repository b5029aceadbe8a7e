"""Readmission scores as a nurse reads them, on both stores: the published tier beside the
number, each part in words with its points, Charlson with its conditions, times on the
hospital's clock, and the same tier in FHIR RiskAssessment.qualitativeRisk.

The story: an oncology patient admitted urgently on Monday with heart failure, diabetes and
lung cancer with bone metastases; anemic on Saturday's labs with a normal sodium. On day 5
HOSPITAL is 6 (Donze 2013: 5-6 is intermediate, not "not high"), LACE 12 (high), Charlson 8.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.riskassessment import RiskAssessment
from sqlalchemy import select

from engine.api.app import create_app
from engine.core.clock import FixedClock
from engine.hl7.build import StoryStep, site_message
from engine.security.users import add_user
from engine.storage.models import RuleOutput, TaskEvent
from tests.conftest import auth_headers

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 7, 8, 0, tzinfo=CHICAGO)  # Saturday morning, day 5 of the stay
PASSWORD = "correct horse battery staple"
DIAGNOSES = [("I50.9", "W"), ("E11.9", "W"), ("C34.90", "W"), ("C79.51", "W")]


def admit_oncology_patient(rt) -> None:
    steps = [(StoryStep("A01", visit="V7001", mrn="MRN7001", payer="medicare",
                        admission_type="U", service="ONC", diagnoses=DIAGNOSES),
              datetime(2026, 3, 2, 10, 0, tzinfo=CHICAGO)),
             (StoryStep("R01", visit="V7001", mrn="MRN7001",
                        labs={"hemoglobin": 10.9, "sodium": 138}),
              datetime(2026, 3, 7, 6, 0, tzinfo=CHICAGO))]
    for n, (step, when) in enumerate(steps):
        receipt = rt.intake.hl7(site_message(step, when, rt.site, f"SC{n}"))
        assert receipt.ack_code == "AA", receipt


@pytest.fixture
def rt(runtime_factory):
    runtime = runtime_factory(clock=FixedClock(NOW))
    admit_oncology_patient(runtime)
    add_user(runtime.sessions, "cm.alvarez", "case_manager", PASSWORD)
    return runtime


@pytest.fixture
def web(rt):
    with TestClient(create_app(rt), base_url="http://testserver") as client:
        yield client


def sign_in(client: TestClient) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    answer = client.post("/login", data={"username": "cm.alvarez", "password": PASSWORD,
                                         "csrf_token": token.group(1), "next": "/worklist"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def score(rt, code: str) -> RuleOutput:
    with rt.readers() as s:
        row = s.scalars(select(RuleOutput).where(RuleOutput.code == code,
                                                 RuleOutput.status == "active")).one()
        s.expunge(row)
        return row


def text_of(page: str) -> str:
    """The page's words, without tags, as a person reads them."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_hospital_6_reads_intermediate_with_its_parts_in_words(web, rt):
    hospital, lace, charlson = score(rt, "hospital"), score(rt, "lace"), score(rt, "charlson")
    assert (hospital.value, hospital.detail["tier"]) == (6, "intermediate")
    assert (lace.value, lace.detail["tier"]) == (12, "high")
    assert charlson.value == 8
    sign_in(web)
    page = web.get(f"/encounters/{hospital.encounter_id}")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "HOSPITAL 6 (intermediate)" in words
    assert "not high" not in words
    assert "risk intermediate (low 0-4, intermediate 5-6, high 7+)" in words
    assert "LACE 12 (high)" in words and "low 0-4, moderate 5-9, high 10+" in words
    for part in ("Hemoglobin at discharge: 10.9 g/dL (1 point)",
                 "Discharging service: ONC (2 points)",
                 "Sodium at discharge: 138 mmol/L (0 points)",
                 "Urgent admission: yes (1 point)",
                 "Admissions in the previous 12 months: 0 (0 points)",
                 "Length of stay: 5 days (2 points)",
                 "Emergency admission: yes (3 points)",
                 "Charlson index: 8 (5 points)"):
        assert part in words, part
    assert "acute_admission True" not in words and "lace_l" not in words


def test_charlson_is_shown_with_its_conditions_in_words(web, rt):
    sign_in(web)
    words = text_of(web.get(f"/encounters/{score(rt, 'charlson').encounter_id}").text)
    assert "Charlson 8" in words
    assert ("Conditions: Congestive heart failure (1 point), Diabetes without chronic "
            "complication (1 point), Metastatic solid tumor (6 points)") in words
    assert "Malignancy" not in words  # metastatic disease replaces it (Charlson weights)
    assert "Quan H et al. Med Care 2005" in words
    assert "Proposal: Early outpatient follow-up" in words  # its rule's title
    assert "Propose " not in words  # not "Propose outpatient followup"


def test_flags_and_scores_read_as_words_on_the_worklist_and_times_carry_the_zone(web, rt):
    lace = score(rt, "lace")
    with rt.sessions() as s, s.begin():
        task = s.scalars(select(RuleOutput).where(RuleOutput.kind == "task",
                                                  RuleOutput.status == "active")).first()
        assert task is not None
        task.owner = "cm.alvarez"
        s.add(TaskEvent(output_id=task.id, at=datetime(2026, 3, 6, 15, 0, tzinfo=CHICAGO),
                        action="escalated", actor="engine",
                        text="overdue since 2026-03-06T20:00:00+00:00"))
    sign_in(web)
    worklist = text_of(web.get("/worklist").text)
    assert "HOSPITAL 6 (intermediate)" in worklist and "LACE 12 (high)" in worklist
    assert "Readmission risk (LACE)" in worklist  # the flag's label, not "Readmission risk"
    assert "CST" in worklist  # due times say whose clock they are on
    page = web.get("/worklist").text  # task types by their rule's title, not "Im notice"
    assert re.search(r'<option value="im-notice" >Deliver the Important Message from '
                     r'Medicare</option>', page), page
    words = text_of(web.get(f"/encounters/{lace.encounter_id}").text)
    assert "Fri 06 Mar 15:00 CST · escalated by engine: overdue since Fri 06 Mar 14:00 CST" \
        in words
    assert "2026-03-06T20:00" not in words


def test_risk_assessment_carries_the_tier_as_qualitative_risk(web, rt):
    headers = auth_headers(web)
    found = web.get("/fhir/RiskAssessment", params={"method": "hospital"},
                    headers=headers).json()
    resource = found["entry"][0]["resource"]
    RiskAssessment.model_validate(resource)
    prediction = resource["prediction"][0]
    assert prediction["qualitativeRisk"] == {
        "text": "intermediate",
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                    "code": "moderate", "display": "Moderate likelihood"}]}
    assert prediction["rationale"] == ("HOSPITAL 6 (intermediate); tiers low 0-4, "
                                       "intermediate 5-6, high 7+")
    assert {"display": "Length of stay: 5 days (2 points)"} in resource["basis"]
    lace = web.get("/fhir/RiskAssessment", params={"method": "lace"},
                   headers=headers).json()["entry"][0]["resource"]
    assert lace["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "high"
    charlson = web.get("/fhir/RiskAssessment", params={"method": "charlson"},
                       headers=headers).json()["entry"][0]["resource"]
    assert "qualitativeRisk" not in charlson["prediction"][0]  # no tiers in the ruleset
    assert charlson["basis"][0]["display"].startswith("Conditions: Congestive heart failure")
