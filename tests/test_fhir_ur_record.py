"""The UR record over FHIR, against a real `engine serve` process on SQLite and PostgreSQL.

A UR nurse reviews Mrs Alpha's stay (and corrects the review), marks two days avoidable,
the case manager opens a barrier and resolves another, and the payer approves three days
with a call logged. The EHR reads all of it back with fhirpy (Observation, Flag,
ClaimResponse, Communication), by stay, patient and MRN, and every resource is valid R4B.
Then the EHR posts the authorization number the payer portal gave it, and a through-date
before the admission is refused naming the element.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhirpy import SyncFHIRClient
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.core.roles import Permission, Principal
from engine.hl7.build import adt
from engine.storage.models import (
    AuditRecord,
    Encounter,
    PayerAuthorization,
    PayerCommunication,
)
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews, revisions
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    CommunicationInput,
    ReviewInput,
)
from harness.launch import ServerProcess, start_server
from tests.conftest import BOTH_STORES, auth_headers, fresh_database, make_settings

CHICAGO = ZoneInfo("America/Chicago")
QUIET = {"ENGINE_ESCALATION_GRACE_MINUTES": "100000000", "ENGINE_CLOCK_INTERVAL_S": "3600"}
SOCIAL_RISK = "DG1|1||Z59.01^Sheltered homelessness^I10||20260101|A"
NURSE = Principal("test.ur-nurse", "user", "ur_nurse")
CASE_MANAGER = Principal("test.case-manager", "user", "case_manager")
ALPHA, BRAVO = "940001", "940002"
JSON = {"Content-Type": "application/fhir+json"}
ENCOUNTER_EXT = "urn:engine:fhir:StructureDefinition:encounter"
AUTH_EXT = "urn:engine:fhir:StructureDefinition:authorization"
AUTH_NUMBER = "urn:engine:payer-authorization"


def _stamp(when: datetime) -> str:
    return when.astimezone(CHICAGO).strftime("%Y%m%d%H%M")


def stay_of(store: Runtime, visit: str) -> Encounter:
    with store.readers() as session:
        return session.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()


@pytest.fixture(scope="module", params=BOTH_STORES)
def store(request, tmp_path_factory) -> Iterator[Runtime]:
    """Mrs Alpha (social risk flag) admitted three days ago with her UR record; Mr Bravo
    admitted with one review."""
    for url in fresh_database(request.param, tmp_path_factory.mktemp("ur_fhir")):
        rt = Runtime.open(make_settings(url))
        admitted = _stamp(datetime.now(CHICAGO) - timedelta(days=3))
        for mrn, visit, extra in ((ALPHA, "UR1", [SOCIAL_RISK]), (BRAVO, "UR2", None)):
            receipt = rt.intake.hl7(adt("A01", admitted, admit_time=admitted, mrn=mrn,
                                        visit=visit, name=f"TESTUR^{visit}^Q", extra=extra))
            assert receipt.outcome == "accepted", receipt.reason
        record_the_stays(rt)
        yield rt
        rt.close()


def record_the_stays(rt: Runtime) -> None:
    now = rt.clock.now()
    today = now.astimezone(rt.site.zone).date()
    assert rt.rules.current is not None
    ref = rt.rules.current.book.reference
    with rt.sessions() as session, session.begin():
        alpha = session.scalars(select(Encounter).where(Encounter.visit_number == "UR1")).one()
        bravo = session.scalars(select(Encounter).where(Encounter.visit_number == "UR2")).one()
        first = ReviewInput("initial", today - timedelta(days=2), "inpatient", "met",
                            criteria_set="InterQual 2026", clinical_summary="Sepsis, on IV")
        review = reviews.record(session, alpha, first, NURSE, now, rt.site,
                                by_display="Una Nurse")
        reviews.correct(session, review, alpha, ReviewInput(
            "initial", today - timedelta(days=2), "inpatient", "advisor_referral",
            criteria_set="InterQual 2026", clinical_summary="Sepsis, on IV antibiotics",
            condition_code_44=False), NURSE, now, rt.site, reason="advisor asked")
        reviews.record(session, bravo, ReviewInput("initial", today - timedelta(days=1),
                                                   "observation", "not_met"),
                       NURSE, now, rt.site)
        avoidable_days.record(session, alpha, AvoidableDayInput(
            today - timedelta(days=1), today, "PF01", note="family meeting moved"),
            NURSE, now, rt.site, ref)
        opened = barriers.open_barrier(session, alpha, BarrierInput(
            "PF03", text="Daughter flies in Friday", owner="test.case-manager"),
            CASE_MANAGER, now, rt.site, ref)
        done = barriers.open_barrier(session, alpha, BarrierInput(
            "PF01", opened_at=now - timedelta(hours=30)), CASE_MANAGER, now, rt.site, ref)
        barriers.resolve(session, done, CASE_MANAGER, now, resolution="family chose home")
        assert opened.resolved_at is None
        auth = authorizations.record(session, alpha, AuthorizationInput(
            "approved", reference_number="AUTH-7781", payer="Acme Health",
            level_of_care="inpatient", approved_days=3), NURSE, now, rt.site)
        authorizations.communicate(session, alpha, auth, CommunicationInput(
            now - timedelta(hours=1), "inbound", "phone", "Acme approved 3 days, call back "
            "Thursday"), NURSE, now)
        voided = authorizations.record(session, bravo, AuthorizationInput(
            "pending", reference_number="WRONG-1"), NURSE, now, rt.site)
        revisions.void(session, voided, NURSE.name, now, "entered on the wrong patient",
                       permission=Permission.UR_WRITE)


@pytest.fixture(scope="module")
def api(store) -> Iterator[ServerProcess]:
    srv = start_server(store.settings.database_url, mllp=False, env=QUIET)
    yield srv
    srv.kill()


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def everything(fhir: SyncFHIRClient, kind: str, **params) -> list[dict]:
    found = [r.serialize() for r in fhir.resources(kind).search(**params).fetch_all()]
    return [valid(r) for r in found]


def by_code(resources: list[dict], code: str) -> list[dict]:
    return [r for r in resources if r["code"]["coding"][0]["code"] == code]


# -- reading the record back ---------------------------------------------------------------------
def test_the_review_reads_back_as_an_amended_observation_with_its_determination(fhir, store):
    alpha = stay_of(store, "UR1")
    found = everything(fhir, "Observation", encounter=f"Encounter/{alpha.id}")
    review = by_code(found, "utilization-review")[0]
    assert review["id"].startswith("review-")
    assert review["status"] == "amended"  # corrected once: version 2
    assert review["meta"]["versionId"] == "2"
    assert review["valueCodeableConcept"]["coding"][0]["code"] == "advisor_referral"
    assert review["subject"] == {"reference": f"Patient/{alpha.patient_id}"}
    assert review["performer"][0]["display"] == "Una Nurse"
    parts = {c["code"]["coding"][0]["code"]: c for c in review["component"]}
    assert parts["level-of-care"]["valueCodeableConcept"]["coding"][0]["code"] == "inpatient"
    assert parts["criteria-set"]["valueString"] == "InterQual 2026"
    assert parts["advisor-referral"]["valueBoolean"] is True
    assert parts["advisor-outcome"]["valueCodeableConcept"]["coding"][0]["code"] == "pending"
    assert parts["condition-code-44"]["valueBoolean"] is False
    assert "next-review" in parts
    assert review["note"][0]["text"] == "Sepsis, on IV antibiotics"
    day = by_code(found, "avoidable-day")[0]
    assert day["status"] == "final"  # entered by UR: confirmed
    assert day["valueCodeableConcept"]["coding"][0] == {
        "system": "urn:engine:delay-reason", "code": "PF01",
        "display": "Patient or family undecided about the discharge plan"}
    assert day["effectivePeriod"]["start"] < day["effectivePeriod"]["end"]
    assert {c["code"]["coding"][0]["code"] for c in day["component"]} == {
        "delay-category", "responsible-party"}
    read = fhir.reference("Observation", day["id"]).to_resource().serialize()
    assert read == day
    assert [r["id"] for r in everything(fhir, "Observation", _id=review["id"])] == [
        review["id"]]
    subset = everything(fhir, "Observation", encounter=alpha.id, _elements="valueCodeableConcept")
    assert {tuple(sorted(r)) for r in subset} == {(
        "code", "id", "meta", "resourceType", "status", "valueCodeableConcept")}


def test_search_by_patient_and_mrn_finds_only_that_patients_record(fhir, store):
    alpha, bravo = stay_of(store, "UR1"), stay_of(store, "UR2")
    mine = everything(fhir, "Observation", patient=f"Patient/{alpha.patient_id}")
    by_mrn = everything(fhir, "Observation", **{"patient.identifier": ALPHA})
    chained = everything(fhir, "Observation", **{"subject:Patient.identifier": ALPHA})
    assert {r["id"] for r in mine} == {r["id"] for r in by_mrn} == {r["id"] for r in chained}
    assert len(mine) == 2 and all(r["subject"]["reference"] == f"Patient/{alpha.patient_id}"
                                  for r in mine)
    theirs = everything(fhir, "Observation", **{"patient.identifier": BRAVO},
                        code="urn:engine:ur-record|utilization-review")
    assert [r["encounter"]["reference"] for r in theirs] == [f"Encounter/{bravo.id}"]
    assert everything(fhir, "Observation", encounter=f"Encounter/{alpha.id}",
                      status="entered-in-error") == []


def test_the_authorization_and_the_call_read_back_as_claim_response_and_communication(
        fhir, store):
    alpha = stay_of(store, "UR1")
    claims = everything(fhir, "ClaimResponse", **{"patient.identifier": ALPHA})
    assert len(claims) == 1
    claim = claims[0]
    assert claim["preAuthRef"] == "AUTH-7781"
    assert claim["use"] == "preauthorization" and claim["outcome"] == "complete"
    assert claim["insurer"]["display"] == "Acme Health"
    assert claim["disposition"] == "Approved"
    assert claim["extension"][0] == {"url": ENCOUNTER_EXT,
                                     "valueReference": {"reference": f"Encounter/{alpha.id}"}}
    start, end = claim["preAuthPeriod"]["start"], claim["preAuthPeriod"]["end"]
    assert (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days == 2  # 3 days
    calls = everything(fhir, "Communication", encounter=alpha.id)
    assert len(calls) == 1
    call = calls[0]
    assert call["about"] == [{"reference": f"ClaimResponse/{claim['id']}"}]
    assert call["category"][0]["coding"][0]["code"] == "inbound" and "received" in call
    assert call["sender"]["display"] == "Acme Health"
    assert call["medium"][0]["coding"][0]["code"] == "phone"
    assert call["payload"][0]["contentString"].startswith("Acme approved 3 days")
    voided = everything(fhir, "ClaimResponse", **{"patient.identifier": BRAVO})
    assert [c["status"] for c in voided] == ["entered-in-error"]
    assert everything(fhir, "ClaimResponse", identifier="AUTH-7781")[0]["id"] == claim["id"]


def test_barriers_share_the_flag_search_with_the_rules_flags_and_page_together(fhir, http,
                                                                               store):
    alpha = stay_of(store, "UR1")
    flags = everything(fhir, "Flag", patient=alpha.patient_id)
    barrier = [f for f in flags if f["id"].startswith("barrier-")]
    rule = [f for f in flags if not f["id"].startswith("barrier-")]
    assert rule, "the social-risk diagnosis raised a rule flag"
    assert sorted(f["status"] for f in barrier) == ["active", "inactive"]
    open_one = next(f for f in barrier if f["status"] == "active")
    assert open_one["category"][0]["coding"][0]["code"] == "discharge-barrier"
    assert open_one["code"]["coding"][0]["code"] == "PF03"
    assert open_one["code"]["text"] == "Daughter flies in Friday"
    assert open_one["author"]["identifier"]["value"] == "test.case-manager"
    closed = next(f for f in barrier if f["status"] == "inactive")
    assert "end" in closed["period"]
    for sort in (None, "_lastUpdated", "-_lastUpdated"):  # one a page, both ways
        params = {"patient": alpha.patient_id, "_count": 1, **({"_sort": sort} if sort else {})}
        pages, url, seen = 0, "/Flag", []
        body = http.get(url, params=params).json()
        while True:
            Bundle.model_validate(body)
            assert body["total"] == len(flags)
            seen += [e["resource"]["id"] for e in body.get("entry", ())]
            pages += 1
            following = [li["url"] for li in body["link"] if li["relation"] == "next"]
            if not following:
                break
            body = http.get(following[0]).json()
        assert sorted(seen) == sorted(f["id"] for f in flags) and pages == len(flags), sort
        back = [li["url"] for li in body["link"] if li["relation"] == "previous"]
        if len(flags) > 1:
            before = http.get(back[0]).json()
            assert [e["resource"]["id"] for e in before["entry"]] == [seen[-2]]
    active = everything(fhir, "Flag", **{"patient.identifier": ALPHA}, status="active")
    assert open_one["id"] in {f["id"] for f in active}
    assert closed["id"] not in {f["id"] for f in active}
    read = fhir.reference("Flag", open_one["id"]).to_resource().serialize()
    assert read == open_one


def test_lab_results_the_ehr_posts_stay_observations_beside_the_ur_record(fhir, http, store):
    bravo = stay_of(store, "UR2")
    taken = (datetime.now(CHICAGO) - timedelta(hours=2)).isoformat(timespec="seconds")
    lab = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
           "subject": {"identifier": {"system": "urn:engine:id:GENHOSP", "value": BRAVO}},
           "encounter": {"reference": f"Encounter/{bravo.id}"}, "effectiveDateTime": taken,
           "valueQuantity": {"value": 9.1, "unit": "g/dL", "system": "http://unitsofmeasure.org",
                             "code": "g/dL"}}
    posted = http.post("/Observation", headers=JSON, json=lab)
    assert posted.status_code == 201, posted.text
    lab_id = posted.headers["location"].rpartition("/")[2]
    assert lab_id.isdigit()  # the inbound path and its numeric ids are unchanged
    assert http.get(f"/Observation/{lab_id}").json()["valueQuantity"]["value"] == 9.1
    found = everything(fhir, "Observation", **{"patient.identifier": BRAVO})
    assert {r["code"]["coding"][0]["code"] for r in found} == {"718-7", "utilization-review"}
    labs = everything(fhir, "Observation", encounter=bravo.id, code="http://loinc.org|718-7")
    assert [r["id"] for r in labs] == [lab_id]


def test_flag_pages_walk_forward_and_back_through_ties_across_both_tables(http, store):
    """Six barriers opened in one moment (one _lastUpdated) beside the rules' flags."""
    now = store.clock.now()
    assert store.rules.current is not None
    with store.sessions() as session, session.begin():
        bravo = session.scalars(select(Encounter).where(Encounter.visit_number == "UR2")).one()
        for code in ("PF01", "PF02", "PF03", "PF04", "PF01", "PF02"):
            barriers.open_barrier(session, bravo, BarrierInput(code), CASE_MANAGER, now,
                                  store.site, store.rules.current.book.reference)
        patient = bravo.patient_id
    everyone = [e["resource"]["id"] for e in http.get("/Flag", params={
        "_count": 500, "_sort": "-_lastUpdated"}).json()["entry"]]
    for params in ({"patient": patient}, {}):
        for sort in ("-_lastUpdated", "_lastUpdated", None):
            asked = {**params, "_count": 2, **({"_sort": sort} if sort else {})}
            page = http.get("/Flag", params=asked).json()
            forward, pages = [], [page]
            while True:
                forward += [e["resource"]["id"] for e in page.get("entry", ())]
                following = [li["url"] for li in page["link"] if li["relation"] == "next"]
                if not following:
                    break
                page = http.get(following[0]).json()
                pages.append(page)
            assert len(forward) == len(set(forward)) == page["total"], (params, sort)
            if not params and sort == "-_lastUpdated":
                assert forward == everyone
            backward = [e["resource"]["id"] for e in page.get("entry", ())]
            while True:
                before = [li["url"] for li in page["link"] if li["relation"] == "previous"]
                if not before:
                    break
                page = http.get(before[0]).json()
                backward = [e["resource"]["id"] for e in page["entry"]] + backward
            assert backward == forward, (params, sort)
    assert sum(i.startswith("barrier-") for i in everyone) >= 8


# -- who may read, and the trail -----------------------------------------------------------------
def test_reads_need_patient_read_and_writes_need_ur_write(api, store):
    alpha = stay_of(store, "UR1")
    with httpx.Client(base_url=api.fhir, headers=auth_headers(api, "director")) as director:
        assert director.get("/ClaimResponse", params={"encounter": alpha.id}).status_code == 403
        assert director.get("/Observation").status_code == 403
    with httpx.Client(base_url=api.fhir, headers=auth_headers(api, "case_manager")) as cm:
        assert cm.get("/Flag", params={"encounter": alpha.id}).status_code == 200
        refused = cm.post("/ClaimResponse", headers=JSON,
                          json=claim_response(alpha, "AUTH-CM", "queued"))
        assert refused.status_code == 403
        assert refused.json()["resourceType"] == "OperationOutcome"


def test_every_read_and_search_is_audited_with_the_patient(fhir, store):
    alpha = stay_of(store, "UR1")
    claim = everything(fhir, "ClaimResponse", encounter=alpha.id)[0]
    fhir.reference("ClaimResponse", claim["id"]).to_resource()
    with store.readers() as session:
        rows = list(session.scalars(select(AuditRecord).where(
            AuditRecord.resource_type == "ClaimResponse",
            AuditRecord.resource_id == claim["id"])))
    assert {r.operation for r in rows} >= {"search", "read"}
    assert {r.patient_id for r in rows} == {alpha.patient_id}
    assert all(r.actor == "test.integration" for r in rows)


# -- the EHR writes the payer's answer -----------------------------------------------------------
def claim_response(stay: Encounter, number: str, outcome: str, **extra) -> dict:
    body = {"resourceType": "ClaimResponse", "status": "active",
            "extension": [{"url": ENCOUNTER_EXT,
                           "valueReference": {"reference": f"Encounter/{stay.id}"}}],
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                 "code": "institutional"}]},
            "use": "preauthorization", "patient": {"reference": f"Patient/{stay.patient_id}"},
            "created": "2026-03-02T10:00:00Z", "insurer": {"display": "Medicare Advantage"},
            "outcome": outcome, "preAuthRef": number}
    body.update(extra)
    return body


def test_the_ehr_posts_the_portals_authorization_number_and_updates_it(fhir, http, store):
    bravo = stay_of(store, "UR2")
    admitted = bravo.admit_time.astimezone(store.site.zone).date()
    made = fhir.resource("ClaimResponse", **claim_response(bravo, "PA-55120", "queued"))
    made.save()
    assert made["id"] and made["preAuthRef"] == "PA-55120" and made["outcome"] == "queued"
    with store.readers() as session:
        auth = session.get(PayerAuthorization, int(made["id"]))
        assert auth is not None
        assert (auth.reference_number, auth.status, auth.source, auth.encounter_id) == (
            "PA-55120", "pending", "fhir", bravo.id)
    decided = (datetime.now(CHICAGO) - timedelta(minutes=30)).isoformat(timespec="seconds")
    approved = claim_response(bravo, "PA-55120", "complete", preAuthPeriod={
        "start": admitted.isoformat(), "end": (admitted + timedelta(days=4)).isoformat()})
    approved["extension"].append({"url": AUTH_EXT,
                                  "extension": [{"url": "level-of-care",
                                                 "valueCode": "inpatient"},
                                                {"url": "decided", "valueDateTime": decided}]})
    again = http.post("/ClaimResponse", headers=JSON, json=approved)
    assert again.status_code == 200, again.text  # the same number: that authorization
    assert again.json()["id"] == made["id"] and again.headers["ETag"] == 'W/"2"'
    assert http.get(f"/ClaimResponse/{made['id']}/_history/2").json() == again.json()
    assert http.get(f"/ClaimResponse/{made['id']}/_history/1").status_code == 404  # current only
    stale = http.put(f"/ClaimResponse/{made['id']}", json={**approved, "id": made["id"]},
                     headers={**JSON, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    denied = {**approved, "id": made["id"], "outcome": "complete", "disposition":
              "Not medically necessary past day 2"}
    del denied["preAuthPeriod"]
    denied["extension"] = [approved["extension"][0], {
        "url": AUTH_EXT, "extension": [*approved["extension"][1]["extension"],
                                       {"url": "status", "valueCode": "denied"}]}]
    put = http.put(f"/ClaimResponse/{made['id']}", json=denied,
                   headers={**JSON, "If-Match": 'W/"2"'})
    assert put.status_code == 200, put.text
    valid(put.json())
    with store.readers() as session:
        auth = session.get(PayerAuthorization, int(made["id"]))
        assert auth is not None
        assert (auth.status, auth.denial_reason, auth.version) == (
            "denied", "Not medically necessary past day 2", 3)
    as_read = http.get(f"/ClaimResponse/{made['id']}")
    same = http.put(f"/ClaimResponse/{made['id']}", json=as_read.json(),
                    headers={**JSON, "If-Match": as_read.headers["ETag"]})
    assert same.status_code == 200 and same.json() == as_read.json()  # nothing changed
    call = {"resourceType": "Communication", "status": "completed",
            "about": [{"reference": f"ClaimResponse/{made['id']}"}],
            "sent": datetime.now(CHICAGO).isoformat(),
            "medium": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                              "v3-ParticipationMode", "code": "FAXWRIT"}]}],
            "payload": [{"contentString": "Faxed the peer-to-peer request"}]}
    quiet = http.post("/Communication", headers={**JSON, "Prefer": "return=minimal"},
                      json={**call, "payload": [{"contentString": "Called: fax received"}]})
    assert quiet.status_code == 201 and quiet.content == b"" and quiet.headers["location"]
    assert http.get(quiet.headers["location"]).json()["payload"][0]["contentString"] == (
        "Called: fax received")  # the Location resolves
    logged = http.post("/Communication", headers=JSON, json=call)
    assert logged.status_code == 201, logged.text
    with store.readers() as session:
        entry = session.get(PayerCommunication, int(logged.json()["id"]))
        assert entry is not None
        assert (entry.direction, entry.channel, entry.authorization_id, entry.encounter_id) == (
            "outbound", "fax", int(made["id"]), bravo.id)
    del call["medium"]
    unsaid = http.post("/Communication", headers=JSON, json=call)
    assert unsaid.status_code == 422
    assert unsaid.json()["issue"][0]["expression"] == ["Communication.medium"]


def test_a_through_date_before_the_admission_is_a_422_naming_the_element(http, store):
    bravo = stay_of(store, "UR2")
    admitted = bravo.admit_time.astimezone(store.site.zone).date()
    early = claim_response(bravo, "PA-EARLY", "complete", preAuthPeriod={
        "end": (admitted - timedelta(days=2)).isoformat()})
    answer = http.post("/ClaimResponse", headers=JSON, json=early)
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["ClaimResponse.preAuthPeriod.end"]
    assert "before the admission" in issue["diagnostics"]
    unknown = claim_response(bravo, "PA-X", "queued")
    unknown["extension"][0]["valueReference"] = {"reference": "Encounter/999999"}
    lost = http.post("/ClaimResponse", headers=JSON, json=unknown)
    assert lost.status_code == 422
    assert lost.json()["issue"][0]["expression"] == [
        f"ClaimResponse.extension('{ENCOUNTER_EXT}')"]
    with store.readers() as session:
        assert session.scalars(select(PayerAuthorization).where(
            PayerAuthorization.reference_number.in_(["PA-EARLY", "PA-X"]))).all() == []
        refusals = session.scalars(select(AuditRecord.status_code).where(
            AuditRecord.resource_type == "ClaimResponse", AuditRecord.operation == "create",
            AuditRecord.outcome == "4")).all()
    assert refusals.count(422) >= 2  # refused writes are in the trail too


def test_the_capability_statement_lists_the_ur_types_and_their_searches(http):
    statement = http.get("/metadata").json()
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind in ("Observation", "Flag", "ClaimResponse", "Communication"):
        names = {p["name"] for p in served[kind]["searchParam"]}
        assert {"patient", "encounter", "patient.identifier", "_lastUpdated", "_id"} <= names
        assert {"code": "search-type"} in served[kind]["interaction"]
    assert {"code": "create"} in served["ClaimResponse"]["interaction"]
    assert {"code": "update"} in served["ClaimResponse"]["interaction"]
    assert {"code": "create"} in served["Communication"]["interaction"]


# -- what the EHR sends never wipes what UR recorded ---------------------------------------------
def admit(store: Runtime, mrn: str, visit: str) -> Encounter:
    """Another patient admitted three days ago, for a story of its own."""
    admitted = _stamp(datetime.now(CHICAGO) - timedelta(days=3))
    receipt = store.intake.hl7(adt("A01", admitted, admit_time=admitted, mrn=mrn, visit=visit,
                                   name=f"TESTUR^{visit}^Q"))
    assert receipt.outcome == "accepted", receipt.reason
    return stay_of(store, visit)


def first_day(store: Runtime, stay: Encounter):
    return stay.admit_time.astimezone(store.site.zone).date()


def test_the_payer_portals_short_answer_keeps_the_denial_work_ur_recorded(http, store):
    """UR recorded a denial of A-1: the payer's reviewer and contact, a peer-to-peer held and
    upheld, an appeal at level 1 due in two weeks, the secondary payer. The payer portal then
    POSTs only its number, complete and a through-date: the authorization is approved to
    that day and everything UR typed stays. A PUT without the authorization extension
    replaces the period and the payer only; with it, the engine's values too."""
    charlie = admit(store, "940003", "UR3")
    now = store.clock.now()
    day_one = first_day(store, charlie)
    due = now.astimezone(store.site.zone).date() + timedelta(days=14)
    with store.sessions() as session, session.begin():
        stay_row = session.get(Encounter, charlie.id)
        assert stay_row is not None
        auth = authorizations.record(session, stay_row, AuthorizationInput(
            "denied", reference_number="A-1", payer="Acme Secondary",
            payer_reviewer="Dr Payer Reviewer", payer_contact="555-0100 ext 4",
            denial_reason="Not medically necessary", peer_to_peer="held",
            peer_to_peer_at=now - timedelta(hours=2), peer_to_peer_outcome="upheld",
            appeal_level=1, appeal_deadline=due), NURSE, now, store.site)
        auth_id = auth.id
    portal = claim_response(charlie, "A-1", "complete", insurer={
        "identifier": {"value": "ACME-PORTAL"}},  # no display: the payer is not restated
        preAuthPeriod={"end": (day_one + timedelta(days=4)).isoformat()})
    answer = http.post("/ClaimResponse", headers=JSON, json=portal)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == str(auth_id)
    with store.readers() as session:
        kept = session.get(PayerAuthorization, auth_id)
        assert kept is not None
        assert (kept.status, kept.approved_through) == ("approved", day_one + timedelta(days=4))
        assert (kept.payer, kept.payer_reviewer, kept.payer_contact) == (
            "Acme Secondary", "Dr Payer Reviewer", "555-0100 ext 4")
        assert (kept.peer_to_peer, kept.peer_to_peer_outcome, kept.peer_to_peer_at) == (
            "held", "upheld", auth.peer_to_peer_at)
        assert (kept.appeal_level, kept.appeal_deadline) == (1, due)
        assert kept.denial_reason == "Not medically necessary"
    shown = answer.json()
    plain = {**shown, "extension": [shown["extension"][0]],  # an EHR that knows no extension
             "insurer": {"display": "Acme Tertiary"},
             "preAuthPeriod": {"end": (day_one + timedelta(days=5)).isoformat()}}
    put = http.put(f"/ClaimResponse/{auth_id}", json=plain,
                   headers={**JSON, "If-Match": answer.headers["ETag"]})
    assert put.status_code == 200, put.text
    with store.readers() as session:
        kept = session.get(PayerAuthorization, auth_id)
        assert kept is not None
        assert (kept.payer, kept.approved_through, kept.approved_days) == (
            "Acme Tertiary", day_one + timedelta(days=5), 6)  # the days counted from the period
        assert (kept.payer_reviewer, kept.peer_to_peer, kept.appeal_level) == (
            "Dr Payer Reviewer", "held", 1)  # the engine's own values: not in the document
    restated = {**plain, "extension": [shown["extension"][0], {"url": AUTH_EXT, "extension": [
        {"url": "status", "valueCode": "approved"},
        {"url": "payer-reviewer", "valueString": "Dr Second Reviewer"}]}]}
    full = http.put(f"/ClaimResponse/{auth_id}", json=restated,
                    headers={**JSON, "If-Match": put.headers["ETag"]})
    assert full.status_code == 200, full.text
    with store.readers() as session:
        kept = session.get(PayerAuthorization, auth_id)
        assert kept is not None
        assert (kept.payer_reviewer, kept.payer_contact, kept.peer_to_peer, kept.appeal_level,
                kept.denial_reason) == ("Dr Second Reviewer", None, None, None, None)
        assert kept.version == 4  # every state before is in the history


def test_complete_without_a_period_is_refused_not_read_as_a_denial(http, store):
    """`complete` with the disposition "Approved" and no period is not a denial whose reason
    is "Approved": the EHR is told what complete needs. A denial is the status extension."""
    delta = admit(store, "940004", "UR4")
    unclear = claim_response(delta, "A-2", "complete", disposition="Approved")
    answer = http.post("/ClaimResponse", headers=JSON, json=unclear)
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["ClaimResponse.outcome"]
    assert "complete needs the approved period (preAuthPeriod), the approved days, or the " \
           "status extension saying denied" in issue["diagnostics"]
    with store.readers() as session:
        assert session.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == delta.id)).all() == []
    denial = claim_response(delta, "A-2", "complete", disposition="Not medically necessary")
    denial["extension"].append({"url": AUTH_EXT, "extension": [
        {"url": "status", "valueCode": "denied"}]})
    denied = http.post("/ClaimResponse", headers=JSON, json=denial)
    assert denied.status_code == 201, denied.text
    with store.readers() as session:
        auth = session.get(PayerAuthorization, int(denied.json()["id"]))
        assert auth is not None
        assert (auth.status, auth.denial_reason) == ("denied", "Not medically necessary")


def test_the_identifier_search_matches_the_identifier_shown(fhir, store):
    alpha = stay_of(store, "UR1")
    claim = everything(fhir, "ClaimResponse", encounter=alpha.id)[0]
    assert claim["identifier"] == [{"system": AUTH_NUMBER, "value": "AUTH-7781"}]
    assert [c["id"] for c in everything(fhir, "ClaimResponse",
                                        identifier=f"{AUTH_NUMBER}|AUTH-7781")] == [claim["id"]]
    assert everything(fhir, "ClaimResponse", identifier="urn:other|AUTH-7781") == []
    statement = fhir.execute("metadata", method="get")
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    param = {p["name"]: p for p in served["ClaimResponse"]["searchParam"]}["identifier"]
    assert AUTH_NUMBER in param["documentation"]
    assert AUTH_NUMBER in served["ClaimResponse"]["documentation"]


def test_days_already_approved_show_whatever_the_status(fhir, store):
    """An extension pended, or the continued stay denied: the days approved stay approved,
    and the ClaimResponse shows them (preAuthPeriod)."""
    echo = admit(store, "940005", "UR5")
    day_one = first_day(store, echo)
    now = store.clock.now()
    with store.sessions() as session, session.begin():  # the row as the service will keep it
        for status, number in (("pended", "A-5P"), ("denied", "A-5D"), ("pending", "A-5Q")):
            session.add(PayerAuthorization(
                encounter_id=echo.id, reference_number=number, status=status,
                approved_days=3, approved_from=day_one,
                approved_through=day_one + timedelta(days=2), source="web",
                denial_reason="Continued stay not necessary" if status == "denied" else None,
                entered_by=NURSE.name, entered_at=now, updated_by=NURSE.name, updated_at=now,
                version=1))
    claims = everything(fhir, "ClaimResponse", encounter=echo.id)
    assert len(claims) == 3
    for claim in claims:
        assert claim["preAuthPeriod"] == {"start": day_one.isoformat(),
                                          "end": (day_one + timedelta(days=2)).isoformat()}
        parts = {p["url"]: p for p in claim["extension"][1]["extension"]}
        assert parts["approved-days"]["valueUnsignedInt"] == 3
    assert sorted(c["outcome"] for c in claims) == ["complete", "queued", "queued"]
