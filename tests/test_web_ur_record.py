"""The UR record on the stay page, over HTTP against a real `engine serve`, on both stores.

Anna Fischer (UR nurse) records the reviews, authorizations, payer calls and avoidable days
of Medicare stays admitted two days ago; Maria Alvarez (case manager) records the barriers.
Each form saves and shows; a refused value comes back beside its field with everything that
was typed; roles write only their own records; a correction keeps the original.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.api.web import ur_record_input
from engine.hl7.build import adt
from engine.security.users import add_user
from engine.storage.models import (
    AuditRecord,
    AvoidableDay,
    Barrier,
    Encounter,
    PayerAuthorization,
    PayerCommunication,
    RecordRevision,
    RuleOutput,
    UtilizationReview,
)
from harness.launch import ServerProcess
from tests.conftest import csrf

PASSWORD = "correct horse battery staple"
NURSE, CASE_MANAGER = "ur.fischer", "cm.alvarez"


@pytest.fixture(scope="module")
def people(store: Runtime) -> None:
    add_user(store.sessions, NURSE, "ur_nurse", PASSWORD)
    add_user(store.sessions, CASE_MANAGER, "case_manager", PASSWORD)


def _client(api: ServerProcess, name: str) -> httpx.Client:
    client = httpx.Client(base_url=api.base_url, timeout=30, follow_redirects=False)
    answer = client.post("/login", data={"username": name, "password": PASSWORD,
                                         "csrf_token": csrf(client), "next": "/worklist"})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture(scope="module")
def nurse(api: ServerProcess, people: None) -> Iterator[httpx.Client]:
    client = _client(api, NURSE)
    yield client
    client.close()


@pytest.fixture(scope="module")
def case_manager(api: ServerProcess, people: None) -> Iterator[httpx.Client]:
    client = _client(api, CASE_MANAGER)
    yield client
    client.close()


_visits = iter(range(7100, 7200))


def admitted(store: Runtime, *, days_ago: int = 2, discharged_ago: int | None = None,
             extra: list[str] | None = None) -> int:
    """A Medicare inpatient admitted `days_ago` days ago at 09:15 (hospital time)."""
    n = next(_visits)
    today = datetime.now(store.site.zone).date()
    admit = (today - timedelta(days=days_ago)).strftime("%Y%m%d") + "0915"
    store.intake.hl7(adt("A01", admit, admit_time=admit, plan="MCR001", visit=f"V{n}",
                         mrn=f"{n}", name=f"PATIENT{n}^UR^Q", extra=extra))
    if discharged_ago is not None:
        out = (today - timedelta(days=discharged_ago)).strftime("%Y%m%d") + "1100"
        store.intake.hl7(adt("A03", out, admit_time=admit, discharge_time=out, plan="MCR001",
                             visit=f"V{n}", mrn=f"{n}", name=f"PATIENT{n}^UR^Q"))
    with store.sessions() as s:
        return s.scalars(select(Encounter.id).where(Encounter.visit_number == f"V{n}")).one()


def today(store: Runtime) -> date:
    return datetime.now(store.site.zone).date()


def post(client: httpx.Client, path: str, form: dict[str, str]) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **form})


def shown(client: httpx.Client, encounter_id: int) -> str:
    """The stay page as text, the way a person reads it."""
    page = client.get(f"/encounters/{encounter_id}")
    assert page.status_code == 200, page.text
    return text_of(page.text)


def followed(client: httpx.Client, answer: httpx.Response) -> str:
    """The page a form's redirect leads back to (with its one-line confirmation), as text."""
    assert answer.status_code == 303, text_of(answer.text)[:1000]
    return text_of(client.get(answer.headers["location"]).text)


def text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def part(markup: str, start: str, end: str) -> str:
    return markup[markup.index(start):markup.index(end, markup.index(start))]


def field_value(markup: str, form: str, name: str) -> str:
    """What a field of a form holds on the page (input value, textarea text, selected option)."""
    ident = f"{form}-{name}"
    found = re.search(rf'<input id="{ident}"[^>]*value="([^"]*)"', markup)
    if found:
        return html.unescape(found[1])
    found = re.search(rf'<textarea id="{ident}"[^>]*>([^<]*)</textarea>', markup)
    if found:
        return html.unescape(found[1])
    found = re.search(rf'<select id="{ident}".*?</select>', markup, re.S)
    assert found, f"no field {ident} on the page"
    chosen = re.search(r'<option value="([^"]*)" selected', found[0])
    return html.unescape(chosen[1]) if chosen else ""


def message_beside(markup: str, form: str, name: str) -> str:
    found = re.search(rf'<span class="field-error" id="err-{form}-{name}">([^<]*)</span>', markup)
    assert found, f"no message beside {form}-{name}"
    return html.unescape(found[1])


def test_the_nurse_records_an_initial_review_and_the_page_shows_it(store, nurse):
    stay = admitted(store)
    day = today(store)
    page = nurse.get(f"/encounters/{stay}").text
    assert field_value(page, "review", "reviewed_on") == day.isoformat()  # today, by default
    assert field_value(page, "review", "review_type") == "initial"  # no review yet
    assert "every 3 day(s)" in text_of(part(page, 'id="review-new"', "</details>"))
    answer = post(nurse, f"/encounters/{stay}/reviews", {
        "review_type": "initial", "reviewed_on": day.isoformat(), "level_of_care": "inpatient",
        "criteria_set": "InterQual", "criteria_result": "met",
        "clinical_summary": "Sepsis, lactate 4.1, on IV antibiotics", "condition_code_44": ""})
    assert answer.headers["location"].endswith("done=review-recorded#ur-reviews")
    text = followed(nurse, answer)
    assert "Review recorded." in text
    next_review = (day + timedelta(days=3)).strftime("%a %d %b %Y")
    assert (f"{day.strftime('%a %d %b %Y')} · Initial (admission) review · Inpatient · "
            f"InterQual: Criteria met · next review {next_review} · by Anna Fischer, RN (UR)"
            ) in text
    assert "Sepsis, lactate 4.1, on IV antibiotics" in text
    assert ("UR Initial (admission) review recorded by Anna Fischer, RN (UR): Criteria met"
            in text)  # the stay's timeline
    with store.sessions() as s:
        (review,) = s.scalars(select(UtilizationReview).where(
            UtilizationReview.encounter_id == stay)).all()
        assert (review.reviewer, review.next_review_on) == (NURSE, day + timedelta(days=3))
        audited = s.scalars(select(AuditRecord).where(
            AuditRecord.resource_type == "UtilizationReview",
            AuditRecord.actor == NURSE)).all()
    assert {"create", "read"} <= {a.operation for a in audited}
    # the next review defaults to a continued-stay review, with the criteria set kept
    page = nurse.get(f"/encounters/{stay}").text
    assert field_value(page, "review", "review_type") == "continued_stay"
    assert field_value(page, "review", "criteria_set") == "InterQual"


def test_record_the_review_from_the_review_task(store, nurse):
    stay = admitted(store)
    with store.sessions() as s:
        task = s.scalars(select(RuleOutput).where(RuleOutput.encounter_id == stay,
                                                  RuleOutput.code == "initial-ur-review")).one()
    page = nurse.get(f"/encounters/{stay}").text
    link = f'href="/encounters/{stay}?review_task={task.id}#review-new">Record the review</a>'
    assert link in part(page, f'id="output-{task.id}"', "</article>")
    opened = nurse.get(f"/encounters/{stay}?review_task={task.id}").text
    form = part(opened, 'id="review-new"', "</details>")
    assert 'id="review-new" open' in opened
    assert f'<input type="hidden" name="task_id" value="{task.id}">' in form
    assert post(nurse, f"/encounters/{stay}/reviews", {
        "task_id": str(task.id), "review_type": "initial",
        "reviewed_on": today(store).isoformat(), "level_of_care": "inpatient",
        "criteria_result": "met"}).status_code == 303
    with store.sessions() as s:
        assert s.scalars(select(UtilizationReview.task_id).where(
            UtilizationReview.encounter_id == stay)).one() == task.id
    card = text_of(part(nurse.get(f"/encounters/{stay}").text, f'id="output-{task.id}"',
                        "</article>"))
    assert f"Review recorded {today(store).strftime('%a %d %b %Y')}" in card
    # a task of another stay is not this stay's review task
    other = admitted(store)
    refused = post(nurse, f"/encounters/{other}/reviews", {
        "task_id": str(task.id), "review_type": "initial",
        "reviewed_on": today(store).isoformat(), "level_of_care": "inpatient",
        "criteria_result": "met"})
    assert refused.status_code == 422
    assert "is not a review task of this stay" in text_of(refused.text)


def test_an_authorization_with_approved_days_then_a_denial_with_a_peer_to_peer(store, nurse):
    stay = admitted(store)
    first = today(store) - timedelta(days=2)
    assert post(nurse, f"/encounters/{stay}/authorizations", {
        "reference_number": "AUTH-5521", "status": "approved", "level_of_care": "inpatient",
        "approved_days": "3", "payer_reviewer": "J. Ortiz, RN",
        "payer_contact": "800-555-0100"}).status_code == 303
    text = shown(nurse, stay)
    through = first + timedelta(days=2)
    assert "AUTH-5521 · Approved ·" in text
    assert (f"Inpatient · approved 3 days from "
            f"{first.strftime('%a %d %b %Y')} through {through.strftime('%a %d %b %Y')}"
            ) in text
    assert "Payer's reviewer J. Ortiz, RN · contact 800-555-0100" in text
    with store.sessions() as s:
        auth = s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).one()
    p2p = datetime.now(store.site.zone).replace(second=0, microsecond=0) + timedelta(days=1)
    answer = post(nurse, f"/encounters/{stay}/authorizations/{auth.id}", {
        "version": str(auth.version), "reference_number": "AUTH-5521", "status": "denied",
        "level_of_care": "inpatient", "denial_reason": "Does not meet inpatient criteria",
        "peer_to_peer": "scheduled", "peer_to_peer_at": p2p.strftime("%Y-%m-%dT%H:%M"),
        "appeal_level": "1", "appeal_deadline": (today(store) + timedelta(days=60)).isoformat(),
        "change_reason": "payer called with the denial"})
    assert answer.status_code == 303, text_of(answer.text)[:500]
    text = shown(nurse, stay)
    assert "AUTH-5521 · Denied" in text
    assert "Denied: Does not meet inpatient criteria" in text
    assert f"Peer-to-peer: Scheduled {p2p.strftime('%a %d %b %H:%M')}" in text
    assert "Appeal level 1, file by" in text
    assert "status was Approved , now Denied" in text  # the history keeps the approval
    assert post(nurse, f"/encounters/{stay}/communications", {
        "authorization_id": str(auth.id),
        "at": datetime.now(store.site.zone).strftime("%Y-%m-%dT%H:%M"),
        "direction": "inbound", "channel": "phone",
        "summary": "Dr Lee (payer) offers the peer-to-peer tomorrow"}).status_code == 303
    assert ("From the payer · Phone · Dr Lee (payer) offers the peer-to-peer tomorrow"
            in shown(nurse, stay))


def test_more_approved_days_extend_the_through_date(store, nurse):
    stay = admitted(store)
    assert post(nurse, f"/encounters/{stay}/authorizations", {
        "reference_number": "AUTH-9001", "status": "approved",
        "approved_days": "2"}).status_code == 303
    with store.sessions() as s:
        auth = s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).one()
    assert auth.approved_through == today(store) - timedelta(days=1)
    page = nurse.get(f"/encounters/{stay}").text
    form = {name: field_value(page, f"authorization-{auth.id}", name) for name in (
        "reference_number", "status", "approved_days", "approved_from", "approved_through")}
    assert form["approved_days"] == "2"
    form.update(approved_days="4", status="partially_approved", version=str(auth.version),
                approved_days_was="2", approved_through_was=form["approved_through"])
    assert post(nurse, f"/encounters/{stay}/authorizations/{auth.id}", form).status_code == 303
    extended = (today(store) + timedelta(days=1)).strftime("%a %d %b %Y")
    assert "approved 4 days from" in shown(nurse, stay)
    assert f"through {extended}" in shown(nurse, stay)


def test_the_case_manager_opens_and_resolves_a_barrier(store, case_manager):
    stay = admitted(store)
    page = case_manager.get(f"/encounters/{stay}").text
    assert '<optgroup label="Post-acute placement">' in page  # the reasons, by category
    assert f'action="/encounters/{stay}/reviews"' not in page  # not hers to record
    answer = post(case_manager, f"/encounters/{stay}/barriers", {
        "reason_code": "PA01", "text": "Three SNFs declined; awaiting a fourth",
        "owner": CASE_MANAGER})
    text = followed(case_manager, answer)
    assert "Barrier opened." in text
    assert "Discharge barriers (1 open, 0 resolved)" in text
    row = text_of(part(case_manager.get(f"/encounters/{stay}").text, 'id="barrier-', "</tr>"))
    assert "Open Post-acute placement" in row
    assert "Three SNFs declined; awaiting a fourth" in row
    assert "Maria Alvarez, RN" in row
    with store.sessions() as s:
        barrier = s.scalars(select(Barrier).where(Barrier.encounter_id == stay)).one()
    assert post(case_manager, f"/encounters/{stay}/barriers/{barrier.id}/resolve", {
        "version": str(barrier.version), "resolution": "SNF bed accepted"}).status_code == 303
    text = shown(case_manager, stay)
    assert "Discharge barriers (0 open, 1 resolved)" in text
    assert "SNF bed accepted" in text
    # the same form sent again (a second tab, a double click): refused, nothing changes
    again = post(case_manager, f"/encounters/{stay}/barriers/{barrier.id}/resolve", {
        "version": str(barrier.version), "resolution": "SNF bed accepted"})
    assert again.status_code == 422
    assert "Not saved: this barrier is already resolved" in text_of(again.text)


def test_the_nurse_enters_avoidable_days_and_confirms_a_proposed_one(store, nurse):
    stay = admitted(store, days_ago=4)
    first, last = today(store) - timedelta(days=3), today(store) - timedelta(days=2)
    assert post(nurse, f"/encounters/{stay}/avoidable-days", {
        "first_day": first.isoformat(), "last_day": last.isoformat(), "reason_code": "PA01",
        "note": "no SNF bed"}).status_code == 303
    text = shown(nurse, stay)
    assert (f"{first.strftime('%a %d %b %Y')} to {last.strftime('%a %d %b %Y')} (2 days)"
            in text)
    assert "Avoidable days (2 confirmed)" in text
    now = datetime.now(store.site.zone)
    with store.sessions() as s, s.begin():
        proposal = AvoidableDay(
            encounter_id=stay, first_day=today(store) - timedelta(days=1),
            last_day=today(store) - timedelta(days=1), reason_code="PA01",
            category="post_acute_placement", responsible_party="post_acute_provider",
            status="proposed", source="engine", entered_by="engine", entered_at=now,
            updated_by="engine", updated_at=now, version=1)
        s.add(proposal)
        s.flush()
        proposed = proposal.id
    row = part(nurse.get(f"/encounters/{stay}").text, f'id="avoidable-day-{proposed}"',
               "</tr>")
    assert "Proposed by the engine" in text_of(row) and 'value="confirm"' in row
    text = followed(nurse, post(nurse, f"/encounters/{stay}/avoidable-days/{proposed}/decide", {
        "version": "1", "decision": "confirm", "note": "agreed"}))
    assert "Proposed avoidable days confirmed." in text
    assert "Avoidable days (3 confirmed)" in text


def test_a_through_date_before_admission_keeps_every_typed_value(store, nurse):
    stay = admitted(store)
    typed = {"reference_number": "AUTH-77", "status": "approved", "level_of_care": "inpatient",
             "approved_days": "", "approved_from": "",
             "approved_through": (today(store) - timedelta(days=5)).isoformat(),
             "payer_reviewer": "K. Wu", "payer_contact": "fax 555-0199",
             "requested_at": f"{today(store) - timedelta(days=1)}T08:30", "decided_at": "",
             "denial_reason": "", "peer_to_peer": "requested",
             "peer_to_peer_at": "", "peer_to_peer_outcome": "", "appeal_level": "",
             "appeal_deadline": "", "appeal_outcome": ""}
    answer = post(nurse, f"/encounters/{stay}/authorizations", typed)
    assert answer.status_code == 422
    admission = (today(store) - timedelta(days=2)).isoformat()
    assert message_beside(answer.text, "authorization", "approved_through") == (
        f"the approved through-date {typed['approved_through']} is before the admission on "
        f"{admission}")
    assert 'id="authorization-new" open' in answer.text
    for name, value in typed.items():
        assert field_value(answer.text, "authorization", name) == value, name
    with store.sessions() as s:
        assert not s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).all()


def test_avoidable_days_beyond_the_stay_are_refused_with_what_was_typed(store, nurse):
    inside = admitted(store)
    tomorrow = today(store) + timedelta(days=1)
    typed = {"first_day": today(store).isoformat(), "last_day": tomorrow.isoformat(),
             "reason_code": "PF01", "responsible_party": "patient_family",
             "note": "family wants to wait for the weekend"}
    answer = post(nurse, f"/encounters/{inside}/avoidable-days", typed)
    assert answer.status_code == 422
    assert message_beside(answer.text, "avoidable-days", "last_day") == (
        f"the last avoidable day {tomorrow.isoformat()} is after today, "
        f"{today(store).isoformat()}")
    for name, value in typed.items():
        assert field_value(answer.text, "avoidable-days", name) == value, name
    gone = admitted(store, days_ago=6, discharged_ago=3)
    after = today(store) - timedelta(days=1)
    answer = post(nurse, f"/encounters/{gone}/avoidable-days", {
        "first_day": after.isoformat(), "reason_code": "PF01"})
    assert answer.status_code == 422
    discharge = (today(store) - timedelta(days=3)).isoformat()
    assert message_beside(answer.text, "avoidable-days", "first_day") == (
        f"the first avoidable day {after.isoformat()} is after the discharge on {discharge}")
    with store.sessions() as s:
        assert not s.scalars(select(AvoidableDay).where(
            AvoidableDay.encounter_id.in_((inside, gone)))).all()


def test_an_unknown_reason_code_is_refused_and_the_barrier_form_keeps_its_text(
        store, case_manager):
    stay = admitted(store)
    typed = {"reason_code": "ZZ99", "text": "Waiting on the <b>guardianship</b> hearing",
             "owner": "social.work"}
    answer = post(case_manager, f"/encounters/{stay}/barriers", typed)
    assert answer.status_code == 422
    assert message_beside(answer.text, "barrier", "reason_code").startswith(
        "unknown reason code 'ZZ99'; the site's delay reasons are ")
    assert field_value(answer.text, "barrier", "reason_code") == "ZZ99"
    assert field_value(answer.text, "barrier", "text") == typed["text"]
    assert "<b>guardianship" not in answer.text  # what was typed is text, never markup
    owner = re.search(r'<input id="barrier-owner"[^>]*value="([^"]*)"', answer.text)
    assert owner and owner[1] == "social.work"
    assert "Not saved: unknown reason code" in text_of(answer.text)


def test_each_role_writes_only_its_own_records(store, nurse, case_manager):
    stay = admitted(store)
    review = {"review_type": "initial", "reviewed_on": today(store).isoformat(),
              "level_of_care": "inpatient", "criteria_result": "met"}
    refused = post(case_manager, f"/encounters/{stay}/reviews", review)
    assert refused.status_code == 403
    assert "may not ur:write" in text_of(refused.text)
    refused = post(nurse, f"/encounters/{stay}/barriers", {"reason_code": "PA01"})
    assert refused.status_code == 403
    assert "may not barrier:write" in text_of(refused.text)
    page = nurse.get(f"/encounters/{stay}").text
    assert f'action="/encounters/{stay}/barriers"' not in page  # not offered to her
    assert f'action="/encounters/{stay}/reviews"' in page
    with store.sessions() as s:
        assert not s.scalars(select(UtilizationReview).where(
            UtilizationReview.encounter_id == stay)).all()
        refusals = s.scalars(select(AuditRecord).where(
            AuditRecord.actor == CASE_MANAGER, AuditRecord.resource_type == "UtilizationReview",
            AuditRecord.operation == "create")).all()
    assert refusals and all(a.status_code == 403 for a in refusals)
    assert post(nurse, "/encounters/999999/reviews", review).status_code == 404
    # a form without the session's CSRF token is refused before anything is read
    forged = nurse.post(f"/encounters/{stay}/reviews", data=review)
    assert forged.status_code == 403


def test_a_correction_keeps_the_original_in_the_history(store, nurse):
    stay = admitted(store)
    day = today(store).isoformat()
    assert post(nurse, f"/encounters/{stay}/reviews", {
        "review_type": "initial", "reviewed_on": day, "level_of_care": "inpatient",
        "criteria_set": "MCG", "criteria_result": "met"}).status_code == 303
    with store.sessions() as s:
        review = s.scalars(select(UtilizationReview).where(
            UtilizationReview.encounter_id == stay)).one()
    form = f"review-{review.id}"
    correction = {"version": "1", "review_type": "initial", "reviewed_on": day,
                  "level_of_care": "observation", "criteria_set": "MCG",
                  "criteria_result": "not_met", "clinical_summary": "", "next_review_on": "",
                  "advisor_name": "", "advisor_outcome": "", "correction_reason": ""}
    refused = post(nurse, f"/encounters/{stay}/reviews/{review.id}", correction)
    assert refused.status_code == 422
    assert message_beside(refused.text, form, "correction_reason").startswith(
        "say why the review is corrected")
    assert field_value(refused.text, form, "level_of_care") == "observation"
    assert field_value(refused.text, form, "criteria_result") == "not_met"
    correction["correction_reason"] = "criteria applied to the wrong day"
    assert post(nurse, f"/encounters/{stay}/reviews/{review.id}",
                correction).status_code == 303
    entry = text_of(part(nurse.get(f"/encounters/{stay}").text, f'id="review-{review.id}"',
                         "</article>"))
    assert "Observation · MCG: Criteria not met" in entry and "corrected" in entry
    assert "criteria applied to the wrong day" in entry
    assert "level of care was Inpatient , now Observation" in entry
    assert "result was Criteria met , now Criteria not met" in entry
    with store.sessions() as s:
        (kept,) = s.scalars(select(RecordRevision).where(
            RecordRevision.kind == "utilization_review",
            RecordRevision.record_id == review.id)).all()
    assert (kept.body["level_of_care"], kept.body["criteria_result"]) == ("inpatient", "met")
    assert kept.changed_by == NURSE and kept.version == 1
    # a correction made on the page as it was before the first one: refused, kept as typed
    stale = post(nurse, f"/encounters/{stay}/reviews/{review.id}", {
        **correction, "criteria_set": "InterQual", "correction_reason": "wrong set"})
    assert stale.status_code == 409
    assert "someone changed it since you opened it" in text_of(stale.text)
    assert field_value(stale.text, form, "criteria_set") == "InterQual"


def test_a_next_review_before_the_review_keeps_the_whole_review_form(store, nurse):
    stay = admitted(store)
    day = today(store)
    typed = {"review_type": "continued_stay", "reviewed_on": day.isoformat(),
             "level_of_care": "inpatient", "criteria_set": "InterQual",
             "criteria_result": "advisor_referral",
             "clinical_summary": "Still on 4 L O2; PT says not safe for home",
             "next_review_on": (day - timedelta(days=1)).isoformat(),
             "advisor_referred": "on", "advisor_name": "Dr. Patel", "advisor_outcome": "",
             "condition_code_44": "on"}
    answer = post(nurse, f"/encounters/{stay}/reviews", typed)
    assert answer.status_code == 422
    assert message_beside(answer.text, "review", "next_review_on").startswith(
        f"the next review date {typed['next_review_on']} is ")
    for name, value in typed.items():
        if name in ("advisor_referred", "condition_code_44"):
            box = re.search(rf'<input type="checkbox" name="{name}" value="on" ([^>]*)>',
                            part(answer.text, 'id="review-new"', "</details>"))
            assert box and "checked" in box[1], name
        else:
            assert field_value(answer.text, "review", name) == value, name


def _form(markup: str, form: str, names: tuple[str, ...]) -> dict[str, str]:
    """A form's fields as the page shows them, as a person sends it without changing them."""
    return {name: field_value(markup, form, name) for name in names}


def _hidden(markup: str, form_action: str, name: str) -> str:
    chunk = part(markup, f'action="{form_action}"', "</form>")
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', chunk)
    assert found, f"no hidden {name} in {form_action}"
    return html.unescape(found[1])


BARRIER_FIELDS = ("reason_code", "text", "owner", "opened_at")


def test_the_case_manager_corrects_a_barrier_then_marks_it_entered_in_error(
        store, case_manager, nurse):
    stay = admitted(store)
    assert post(case_manager, f"/encounters/{stay}/barriers", {
        "reason_code": "PA01", "text": "Awaiting SNF bed", "owner": CASE_MANAGER}
    ).status_code == 303
    with store.sessions() as s:
        barrier = s.scalars(select(Barrier).where(Barrier.encounter_id == stay)).one()
    page = case_manager.get(f"/encounters/{stay}").text
    form = f"barrier-{barrier.id}-correct"
    typed = {**_form(page, form, BARRIER_FIELDS), "version": "1", "reason_code": "PF01",
             "text": "Family choosing between two SNFs", "correction_reason": ""}
    assert typed["opened_at"]  # shown to the minute, as the page read it
    refused = post(case_manager, f"/encounters/{stay}/barriers/{barrier.id}", typed)
    assert refused.status_code == 422  # a correction says why
    assert message_beside(refused.text, form, "correction_reason").startswith(
        "say why the barrier is corrected")
    assert field_value(refused.text, form, "reason_code") == "PF01"
    assert field_value(refused.text, form, "text") == typed["text"]
    typed["correction_reason"] = "the family's choice, not the placement, holds it"
    text = followed(case_manager,
                    post(case_manager, f"/encounters/{stay}/barriers/{barrier.id}", typed))
    assert "Barrier corrected" in text
    with store.sessions() as s:
        fixed = s.get(Barrier, barrier.id)
        (kept,) = s.scalars(select(RecordRevision).where(
            RecordRevision.kind == "barrier", RecordRevision.record_id == barrier.id)).all()
    assert (fixed.reason_code, fixed.version) == ("PF01", 2)
    assert fixed.opened_at == barrier.opened_at  # left as shown: its seconds kept
    assert kept.body["reason_code"] == "PA01"
    # the same correction from the page as it was: refused, as typed
    stale = post(case_manager, f"/encounters/{stay}/barriers/{barrier.id}",
                 {**typed, "text": "another tab"})
    assert stale.status_code == 409
    assert field_value(stale.text, form, "text") == "another tab"
    # voiding is the case manager's, with a reason
    void = f"/encounters/{stay}/barriers/{barrier.id}/void"
    assert post(nurse, void, {"version": "2", "void_reason": "wrong patient"}
                ).status_code == 403
    refused = post(case_manager, void, {"version": "2", "void_reason": " "})
    assert refused.status_code == 422
    assert message_beside(refused.text, f"barrier-{barrier.id}-void", "void_reason"
                          ).startswith("say why the record is void")
    text = followed(case_manager, post(case_manager, void, {
        "version": "2", "void_reason": "opened on the wrong patient"}))
    assert "Barrier marked entered in error" in text
    assert "Discharge barriers (0 open, 0 resolved)" in text  # not counted
    page = case_manager.get(f"/encounters/{stay}").text
    row = part(page, f'id="barrier-{barrier.id}"', "</tr>")
    assert 'class="voided"' in row  # struck through
    assert "Entered in error" in text_of(row) and "opened on the wrong patient" in text_of(row)
    assert f'action="{void}"' not in row and "/resolve" not in row  # nothing more to do
    with store.sessions() as s:
        gone = s.get(Barrier, barrier.id)
        assert gone.voided_at is not None and gone.void_reason == "opened on the wrong patient"
        assert len(s.scalars(select(RecordRevision).where(
            RecordRevision.kind == "barrier", RecordRevision.record_id == barrier.id)).all()) == 2
        audited = {(a.operation, a.status_code) for a in s.scalars(select(AuditRecord).where(
            AuditRecord.resource_type == "Barrier", AuditRecord.resource_id == str(barrier.id),
            AuditRecord.actor == CASE_MANAGER))}
    assert ("update", 303) in audited and ("update", 409) in audited


def test_the_nurse_corrects_avoidable_days_then_voids_them(store, nurse):
    stay = admitted(store, days_ago=4)
    first, last = today(store) - timedelta(days=3), today(store) - timedelta(days=2)
    assert post(nurse, f"/encounters/{stay}/avoidable-days", {
        "first_day": first.isoformat(), "last_day": last.isoformat(),
        "reason_code": "PA01"}).status_code == 303
    with store.sessions() as s:
        day = s.scalars(select(AvoidableDay).where(AvoidableDay.encounter_id == stay)).one()
    page = nurse.get(f"/encounters/{stay}").text
    form = f"avoidable-day-{day.id}-correct"
    typed = {**_form(page, form, ("first_day", "last_day", "responsible_party",
                                  "reason_code", "note")),
             "version": "1", "last_day": first.isoformat(), "note": "bed offered on day 2",
             "correction_reason": "the SNF offered a bed on the second day"}
    assert typed["responsible_party"] == "post_acute_provider"
    text = followed(nurse, post(nurse, f"/encounters/{stay}/avoidable-days/{day.id}", typed))
    assert "Avoidable days corrected" in text
    assert "Avoidable days (1 confirmed)" in text
    assert "last day was" in text  # the history
    void = f"/encounters/{stay}/avoidable-days/{day.id}/void"
    stale = post(nurse, void, {"version": "1", "void_reason": "entered on the wrong stay"})
    assert stale.status_code == 409
    assert field_value(stale.text, f"avoidable-day-{day.id}-void", "void_reason") == (
        "entered on the wrong stay")
    text = followed(nurse, post(nurse, void, {"version": "2",
                                              "void_reason": "entered on the wrong stay"}))
    assert "Avoidable days (0 confirmed)" in text
    row = text_of(part(nurse.get(f"/encounters/{stay}").text, f'id="avoidable-day-{day.id}"',
                       "</tr>"))
    assert "Entered in error" in row and "entered on the wrong stay" in row
    with store.sessions() as s:
        assert s.get(AvoidableDay, day.id).voided_at is not None


def test_a_review_an_authorization_and_a_payer_call_entered_in_error(store, nurse):
    stay = admitted(store)
    day = today(store).isoformat()
    assert post(nurse, f"/encounters/{stay}/reviews", {
        "review_type": "initial", "reviewed_on": day, "level_of_care": "inpatient",
        "criteria_result": "met"}).status_code == 303
    assert post(nurse, f"/encounters/{stay}/authorizations", {
        "reference_number": "AUTH-404", "status": "pending"}).status_code == 303
    with store.sessions() as s:
        review = s.scalars(select(UtilizationReview).where(
            UtilizationReview.encounter_id == stay)).one()
        auth = s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).one()
    assert post(nurse, f"/encounters/{stay}/communications", {
        "authorization_id": str(auth.id),
        "at": datetime.now(store.site.zone).strftime("%Y-%m-%dT%H:%M"),
        "direction": "outbound", "channel": "fax",
        "summary": "Clinicals faxed to the wrong payer"}).status_code == 303
    text = followed(nurse, post(nurse, f"/encounters/{stay}/reviews/{review.id}/void", {
        "version": "1", "void_reason": "reviewed the wrong chart"}))
    assert "Review marked entered in error" in text
    assert "Reviews (0)" in text  # not counted, no next review
    page = nurse.get(f"/encounters/{stay}").text
    entry = part(page, f'id="review-{review.id}"', "</article>")
    assert 'class="ur-entry voided"' in page
    assert "Entered in error" in text_of(entry) and "reviewed the wrong chart" in text_of(entry)
    assert "Correct this review" not in entry
    assert field_value(page, "review", "review_type") == "initial"  # none left: initial again
    with store.sessions() as s:
        comm = s.scalars(select(PayerCommunication).where(
            PayerCommunication.encounter_id == stay)).one()
    text = followed(nurse, post(nurse, f"/encounters/{stay}/communications/{comm.id}/void", {
        "version": "1", "void_reason": "sent to the wrong payer"}))
    assert "Payer communication marked entered in error" in text
    item = text_of(part(nurse.get(f"/encounters/{stay}").text,
                        f'id="communication-{comm.id}"', "</li>"))
    assert "Clinicals faxed to the wrong payer" in item and "sent to the wrong payer" in item
    text = followed(nurse, post(nurse, f"/encounters/{stay}/authorizations/{auth.id}/void", {
        "version": "1", "void_reason": "a duplicate of the feed's number"}))
    assert "Payer authorizations (0)" in text
    assert "a duplicate of the feed's number" in text
    assert post(nurse, f"/encounters/{stay}/authorizations/{auth.id}/void", {
        "version": "2", "void_reason": "again"}).status_code == 422  # already void
    with store.sessions() as s:
        for row in (s.get(UtilizationReview, review.id), s.get(PayerAuthorization, auth.id),
                    s.get(PayerCommunication, comm.id)):
            assert row.voided_at is not None and row.version == 2
        kept = s.scalars(select(RecordRevision.kind).where(
            RecordRevision.encounter_id == stay)).all()
    assert sorted(kept) == ["payer_authorization", "payer_communication",
                            "utilization_review"]


def test_correcting_the_review_date_moves_the_next_review_on_the_cadence(store, nurse):
    stay = admitted(store)
    yesterday, day = today(store) - timedelta(days=1), today(store)
    assert post(nurse, f"/encounters/{stay}/reviews", {
        "review_type": "initial", "reviewed_on": yesterday.isoformat(),
        "level_of_care": "inpatient", "criteria_result": "met"}).status_code == 303
    with store.sessions() as s:
        review = s.scalars(select(UtilizationReview).where(
            UtilizationReview.encounter_id == stay)).one()
    assert review.next_review_on == yesterday + timedelta(days=3)
    action = f"/encounters/{stay}/reviews/{review.id}"
    page = nurse.get(f"/encounters/{stay}").text
    form = f"review-{review.id}"
    shown_form = {**_form(page, form, ("review_type", "reviewed_on", "level_of_care",
                                       "criteria_set", "criteria_result", "next_review_on",
                                       "clinical_summary", "advisor_name", "advisor_outcome")),
                  "version": "1",
                  "next_review_on_was": _hidden(page, action, "next_review_on_was")}
    assert shown_form["next_review_on"] == shown_form["next_review_on_was"] == (
        yesterday + timedelta(days=3)).isoformat()
    assert post(nurse, action, {**shown_form, "reviewed_on": day.isoformat(),
                                "correction_reason": "done today, not yesterday"}
                ).status_code == 303
    with store.sessions() as s:
        fixed = s.get(UtilizationReview, review.id)
    assert fixed.next_review_on == day + timedelta(days=3)  # the cadence, from the new date
    assert not fixed.next_review_overridden
    # a next review date the nurse changes herself is hers
    mine = (day + timedelta(days=1)).isoformat()
    assert post(nurse, action, {**shown_form, "version": "2", "reviewed_on": day.isoformat(),
                                "next_review_on": mine, "next_review_on_was":
                                    (day + timedelta(days=3)).isoformat(),
                                "correction_reason": "the attending expects discharge"}
                ).status_code == 303
    with store.sessions() as s:
        fixed = s.get(UtilizationReview, review.id)
    assert (fixed.next_review_on.isoformat(), fixed.next_review_overridden) == (mine, True)


def test_every_task_that_requires_a_review_offers_to_record_it(store, nurse):
    # MS-DRG 065 (GMLOS 2.8 days), in since four days ago: the excess-days review
    stay = admitted(store, days_ago=4, extra=["DRG|065^INTRACRANIAL HEMORRHAGE^MS-DRG"])
    with store.sessions() as s:
        task = s.scalars(select(RuleOutput).where(RuleOutput.encounter_id == stay,
                                                  RuleOutput.code == "excess-days-review",
                                                  RuleOutput.status == "active")).one()
    assert task.detail["requires_record"] == "utilization_review"
    card = part(nurse.get(f"/encounters/{stay}").text, f'id="output-{task.id}"', "</article>")
    assert f'href="/encounters/{stay}?review_task={task.id}#review-new">Record the review' in card
    assert "Enter avoidable days</a>" in card  # still offered beside it
    opened = nurse.get(f"/encounters/{stay}?review_task={task.id}").text
    assert 'id="review-new" open' in opened
    assert field_value(opened, "review", "review_type") == "continued_stay"
    assert post(nurse, f"/encounters/{stay}/reviews", {
        "task_id": str(task.id), "review_type": "continued_stay",
        "reviewed_on": today(store).isoformat(), "level_of_care": "inpatient",
        "criteria_result": "not_met"}).status_code == 303
    with store.sessions() as s:
        assert s.scalars(select(UtilizationReview.task_id).where(
            UtilizationReview.encounter_id == stay)).one() == task.id


AUTH_FIELDS = ("reference_number", "status", "level_of_care", "approved_days", "approved_from",
               "approved_through", "payer_reviewer", "payer_contact", "requested_at",
               "decided_at", "denial_reason", "peer_to_peer", "peer_to_peer_at",
               "peer_to_peer_outcome", "appeal_level", "appeal_deadline", "appeal_outcome")


def _auth_form(page: str, stay: int, auth: PayerAuthorization) -> dict[str, str]:
    action = f"/encounters/{stay}/authorizations/{auth.id}"
    return {**_form(page, f"authorization-{auth.id}", AUTH_FIELDS),
            "version": str(auth.version),
            "approved_days_was": _hidden(page, action, "approved_days_was"),
            "approved_through_was": _hidden(page, action, "approved_through_was")}


def test_an_extension_pended_never_takes_the_approved_days_away(store, nurse):
    stay = admitted(store)
    assert post(nurse, f"/encounters/{stay}/authorizations", {
        "reference_number": "AUTH-3030", "status": "approved",
        "approved_days": "3"}).status_code == 303
    with store.sessions() as s:
        auth = s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).one()
    through = auth.approved_through
    form = _auth_form(nurse.get(f"/encounters/{stay}").text, stay, auth)
    answer = post(nurse, f"/encounters/{stay}/authorizations/{auth.id}",
                  {**form, "status": "pended", "change_reason": "extension asked, pended"})
    # the days already approved stay approved while the extension is pended
    assert answer.status_code == 303
    with store.sessions() as s:
        kept = s.get(PayerAuthorization, auth.id)
    assert (kept.status, kept.approved_days, kept.approved_through) == ("pended", 3, through)


def test_the_form_sends_the_approved_period_whatever_the_status():
    zone = ZoneInfo("America/Chicago")
    for status in ("pended", "pending", "denied"):
        data = ur_record_input.authorization({
            "status": status, "approved_days": "3", "approved_days_was": "3",
            "approved_from": "2026-03-02", "approved_through": "2026-03-04",
            "approved_through_was": "2026-03-04", "denial_reason": "continued stay"}, zone)
        assert (data.approved_days, data.approved_through) == (3, date(2026, 3, 4)), status
        assert data.approved_from == date(2026, 3, 2)


def test_saving_an_authorization_unchanged_keeps_the_seconds_a_fhir_client_sent(store, nurse):
    stay = admitted(store)
    assert post(nurse, f"/encounters/{stay}/authorizations", {
        "reference_number": "AUTH-6060", "status": "pending"}).status_code == 303
    asked = datetime.now(store.site.zone).replace(microsecond=0) - timedelta(hours=2)
    asked = asked.replace(second=41)
    with store.sessions() as s, s.begin():  # as the FHIR edge stores it, to the second
        auth = s.scalars(select(PayerAuthorization).where(
            PayerAuthorization.encounter_id == stay)).one()
        auth.requested_at = auth.decided_at = asked
    with store.sessions() as s:
        auth = s.get(PayerAuthorization, auth.id)
    page = nurse.get(f"/encounters/{stay}").text
    form = _auth_form(page, stay, auth)
    assert form["requested_at"] == asked.strftime("%Y-%m-%dT%H:%M")  # shown to the minute
    same = post(nurse, f"/encounters/{stay}/authorizations/{auth.id}", form)
    assert same.status_code == 422
    assert "nothing changed: the authorization is as recorded" in text_of(same.text)
    with store.sessions() as s:
        assert s.get(PayerAuthorization, auth.id).requested_at == asked
        assert not s.scalars(select(RecordRevision).where(
            RecordRevision.kind == "payer_authorization",
            RecordRevision.record_id == auth.id)).all()
    # a time the nurse does change is taken to the minute she typed
    later = asked.replace(second=0) + timedelta(minutes=5)
    assert post(nurse, f"/encounters/{stay}/authorizations/{auth.id}", {
        **form, "decided_at": later.strftime("%Y-%m-%dT%H:%M"),
        "change_reason": "the payer's decision time"}).status_code == 303
    with store.sessions() as s:
        changed = s.get(PayerAuthorization, auth.id)
    assert (changed.requested_at, changed.decided_at) == (asked, later)


def test_a_time_in_the_repeated_autumn_hour_is_the_first_one(store, nurse):
    chicago = ZoneInfo("America/Chicago")  # clocks go back at 02:00 CDT on 1 Nov 2026
    moment = ur_record_input.parse_local("at", "2026-11-01T01:30", chicago)
    assert moment is not None and moment.fold == 0
    assert moment.utcoffset() == timedelta(hours=-5)  # 01:30 CDT, the first 01:30
    stay = admitted(store)
    form = text_of(part(nurse.get(f"/encounters/{stay}").text, 'id="communication-new"',
                        "</details>"))
    assert ("hospital time; in the hour repeated when the clocks go back, the first one "
            "(daylight time)") in form
