"""The UR record in Chromium against a real `engine serve`: a UR nurse's day on one Medicare
stay (an initial and a continued-stay review, an authorization with approved days, then the
payer's denial with a peer-to-peer) and the case manager's barrier, asserting what the page
shows after each step; then, on a Medicare Advantage stay, how the record sets the clocks
(the next review, approved days running out, an avoidable-day streak to the supervisor).
Skipped like test_web_browser.py when Chromium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.hl7.build import adt
from engine.security.users import add_user
from engine.storage.models import Encounter, RuleOutput
from harness.launch import ServerProcess, start_server
from tests.conftest import fresh_database, make_settings
from tests.test_web_browser import (
    PASSWORD,
    _need_browser,
    all_css,
    by_css,
    fits,
    navigating,
    sign_in,
)
from tests.test_web_browser import browser as browser  # noqa: PLC0414 - the shared fixture

NURSE, CASE_MANAGER = "ur.fischer", "cm.alvarez"


@pytest.fixture(scope="module")
def stay(tmp_path_factory) -> Iterator[tuple[ServerProcess, int, int, Runtime]]:
    """Mr Okafor, Medicare, admitted to 4 West two days ago; the server; his review task."""
    _need_browser()
    url = next(fresh_database("sqlite", tmp_path_factory.mktemp("ur-browser")))
    runtime = Runtime.open(make_settings(url))
    admitted = (datetime.now(runtime.site.zone) - timedelta(days=2)).strftime("%Y%m%d") + "0915"
    runtime.intake.hl7(adt("A01", admitted, admit_time=admitted, plan="MCR001", visit="V8801",
                           mrn="880100", name="OKAFOR^SAMUEL^Q"))
    for name, role in ((NURSE, "ur_nurse"), (CASE_MANAGER, "case_manager")):
        add_user(runtime.sessions, name, role, PASSWORD)
    with runtime.sessions() as s:
        encounter = s.scalars(select(Encounter.id).where(Encounter.visit_number == "V8801")).one()
        task = s.scalars(select(RuleOutput.id).where(
            RuleOutput.encounter_id == encounter, RuleOutput.code == "initial-ur-review")).one()
    server = start_server(url, mllp=False)
    yield server, encounter, task, runtime
    server.kill()
    runtime.close()


def _open(driver, details: str) -> None:
    """Open a closed form (<details>) by its summary, as a person clicks it."""
    box = by_css(driver, details)
    if box.get_attribute("open") is None:
        by_css(driver, f"{details} > summary").click()


def _set(driver, css: str, value: str) -> None:
    """A date or time field's value (Chromium's date pickers take keys by locale)."""
    driver.execute_script("document.querySelector(arguments[0]).value = arguments[1]",
                          css, value)


def test_a_ur_nurses_day_and_the_case_managers_barrier(browser, stay, tmp_path):
    from selenium.webdriver.support.ui import Select

    server, encounter, task, runtime = stay
    driver, base = browser, server.base_url
    today = datetime.now(runtime.site.zone).date()
    driver.get(base + "/login")
    driver.delete_all_cookies()
    sign_in(driver, base, NURSE)
    driver.get(f"{base}/encounters/{encounter}")
    # the forms are closed: the page reads as sections, and fits the screen
    assert not [d for d in all_css(driver, "details.ur-form-box") if d.get_attribute("open")]
    assert fits(driver)

    # 1. the initial review, from the review task
    navigating(driver, by_css(driver, f"#output-{task} a.button-link").click)
    assert by_css(driver, "#review-new").get_attribute("open") is not None
    assert fits(driver)  # the open form too
    driver.save_screenshot(str(tmp_path / "review-form.png"))
    assert by_css(driver, "#review-reviewed_on").get_attribute("value") == today.isoformat()
    assert Select(by_css(driver, "#review-review_type")).first_selected_option.text == (
        "Initial (admission) review")
    by_css(driver, "#review-criteria_set").send_keys("InterQual")
    Select(by_css(driver, "#review-criteria_result")).select_by_value("met")
    by_css(driver, "#review-clinical_summary").send_keys("CAP, on IV ceftriaxone, 4 L O2")
    navigating(driver, by_css(driver, "#review-new button[type=submit]").click)
    assert by_css(driver, ".flash").text == "Review recorded."
    reviews = by_css(driver, "#ur-reviews").text
    assert "Initial (admission) review · Inpatient · InterQual: Criteria met" in reviews
    assert "by Anna Fischer, RN (UR)" in reviews
    next_review = (today + timedelta(days=3)).strftime("%a %d %b %Y")
    assert f"next review {next_review}" in reviews  # Medicare: every 3 days
    assert "Review recorded" in by_css(driver, f"#output-{task}").text

    # 2. a continued-stay review, referred to the physician advisor
    _open(driver, "#review-new")
    assert Select(by_css(driver, "#review-review_type")).first_selected_option.text == (
        "Continued-stay review")
    assert by_css(driver, "#review-criteria_set").get_attribute("value") == "InterQual"
    Select(by_css(driver, "#review-criteria_result")).select_by_value("advisor_referral")
    by_css(driver, "#review-advisor_name").send_keys("Dr. Patel")
    navigating(driver, by_css(driver, "#review-new button[type=submit]").click)
    entries = all_css(driver, "#ur-reviews article.ur-entry")
    assert len(entries) == 2
    assert "Continued-stay review" in entries[0].text  # newest first
    assert "Physician advisor Dr. Patel: Physician advisor review pending" in entries[0].text
    assert "Reviews (2;" in by_css(driver, "#ur-reviews-heading").text

    # 3. the payer approves three days
    _open(driver, "#authorization-new")
    by_css(driver, "#authorization-reference_number").send_keys("MCR-AUTH-3308")
    Select(by_css(driver, "#authorization-status")).select_by_value("approved")
    Select(by_css(driver, "#authorization-level_of_care")).select_by_value("inpatient")
    by_css(driver, "#authorization-approved_days").send_keys("3")
    by_css(driver, "#authorization-payer_reviewer").send_keys("L. Chen, RN")
    navigating(driver, by_css(driver, "#authorization-new button[type=submit]").click)
    assert by_css(driver, ".flash").text == "Authorization recorded."
    card = by_css(driver, "#ur-authorizations article.ur-entry")
    first = today - timedelta(days=2)
    assert "MCR-AUTH-3308 · Approved" in card.text
    assert (f"approved 3 days from {first.strftime('%a %d %b %Y')} through "
            f"{(first + timedelta(days=2)).strftime('%a %d %b %Y')}") in card.text
    auth = card.get_attribute("id")

    # 4. then denies the continued stay; a peer-to-peer is scheduled for tomorrow 14:00
    _open(driver, f"#{auth} details.ur-form-box")
    form = f"#{auth} form"
    Select(by_css(driver, f"{form} [name=status]")).select_by_value("denied")
    by_css(driver, f"{form} [name=denial_reason]").send_keys(
        "Continued stay not medically necessary")
    Select(by_css(driver, f"{form} [name=peer_to_peer]")).select_by_value("scheduled")
    tomorrow = today + timedelta(days=1)
    _set(driver, f"{form} [name=peer_to_peer_at]", f"{tomorrow.isoformat()}T14:00")
    by_css(driver, f"{form} [name=change_reason]").send_keys("payer's call, 10:40")
    # the form keeps the approved period whatever the status; this payer retracts the
    # approval, so the nurse clears it herself (its history keeps it)
    assert by_css(driver, f"{form} [name=approved_days]").get_attribute("value") == "3"
    by_css(driver, f"{form} [name=approved_days]").clear()
    by_css(driver, f"{form} [name=approved_through]").clear()
    navigating(driver, by_css(driver, f"{form} button[type=submit]").click)
    assert by_css(driver, ".flash").text.startswith("Authorization updated")
    card = by_css(driver, f"#{auth}")
    assert "MCR-AUTH-3308 · Denied" in card.text
    assert "Denied: Continued stay not medically necessary" in card.text
    assert f"Peer-to-peer: Scheduled {tomorrow.strftime('%a %d %b')} 14:00" in card.text
    by_css(driver, f"#{auth} details.history > summary").click()
    history = by_css(driver, f"#{auth} .history").text
    assert "status was Approved, now Denied" in history
    assert "approved days was 3, now —" in history
    assert not all_css(driver, "#barrier-new")  # barriers are the case manager's
    assert fits(driver)
    driver.save_screenshot(str(tmp_path / "ur-record.png"))

    # 5. the case manager records the barrier
    driver.delete_all_cookies()
    sign_in(driver, base, CASE_MANAGER)
    driver.get(f"{base}/encounters/{encounter}#ur-barriers")
    assert not all_css(driver, "#review-new")  # reviews are the UR nurse's
    _open(driver, "#barrier-new")
    Select(by_css(driver, "#barrier-reason_code")).select_by_value("PA01")
    by_css(driver, "#barrier-text").send_keys("Two SNFs declined; a third is reviewing")
    navigating(driver, by_css(driver, "#barrier-new button[type=submit]").click)
    assert by_css(driver, ".flash").text == "Barrier opened."
    assert "(1 open, 0 resolved)" in by_css(driver, "#ur-barriers-heading").text
    row = by_css(driver, "#ur-barriers tbody tr").text
    assert "Open" in row and "Post-acute placement" in row
    assert "Two SNFs declined; a third is reviewing" in row
    assert "Maria Alvarez, RN" in row  # the owner, by name
    assert fits(driver)
    driver.save_screenshot(str(tmp_path / "barrier.png"))

    # 6. she corrects its reason, then finds it was the wrong patient's: entered in error
    barrier = by_css(driver, "#ur-barriers tbody tr").get_attribute("id")
    _open(driver, f"#{barrier} details.ur-form-box:nth-of-type(2)")
    Select(by_css(driver, f"#{barrier}-correct-reason_code")).select_by_value("PF01")
    by_css(driver, f"#{barrier}-correct-correction_reason").send_keys("the family holds it")
    navigating(driver, by_css(driver, f"#{barrier} form[action$='/{barrier[8:]}'] "
                                      "button[type=submit]").click)
    assert by_css(driver, ".flash").text.startswith("Barrier corrected")
    _open(driver, f"#{barrier} details.ur-form-box:nth-of-type(3)")
    by_css(driver, f"#{barrier}-void-void_reason").send_keys("opened on the wrong patient")
    navigating(driver, by_css(driver, f"#{barrier} form[action$='/void'] "
                                      "button[type=submit]").click)
    assert by_css(driver, ".flash").text.startswith("Barrier marked entered in error")
    assert "(0 open, 0 resolved)" in by_css(driver, "#ur-barriers-heading").text
    row = by_css(driver, f"#{barrier}")
    assert "Entered in error" in row.text and "opened on the wrong patient" in row.text
    reason_cell = by_css(driver, f"#{barrier} td:nth-child(3)")
    assert "line-through" in driver.execute_script(
        "return getComputedStyle(arguments[0]).textDecorationLine", reason_cell)  # struck
    assert fits(driver)


SUPERVISOR = "sup.garcia"  # the case-management supervisor (fixtures/staffing.yaml)


@pytest.fixture(scope="module")
def ma_stay(tmp_path_factory) -> Iterator[tuple[ServerProcess, int, Runtime]]:
    """Mrs Brandt, Medicare Advantage (reviewed daily), inpatient on 4 West since three days
    ago at 09:15; the server."""
    _need_browser()
    url = next(fresh_database("sqlite", tmp_path_factory.mktemp("ur-browser-clocks")))
    runtime = Runtime.open(make_settings(url))
    admitted = (datetime.now(runtime.site.zone) - timedelta(days=3)).strftime("%Y%m%d") + "0915"
    runtime.intake.hl7(adt("A01", admitted, admit_time=admitted, plan="MCA100", visit="V8802",
                           mrn="880200", name="BRANDT^HELGA"))
    for name, role in ((NURSE, "ur_nurse"), (SUPERVISOR, "supervisor")):
        add_user(runtime.sessions, name, role, PASSWORD)
    with runtime.sessions() as s:
        encounter = s.scalars(select(Encounter.id).where(Encounter.visit_number == "V8802")).one()
    server = start_server(url, mllp=False)
    yield server, encounter, runtime
    server.kill()
    runtime.close()


def _task(runtime: Runtime, encounter: int, code: str) -> RuleOutput | None:
    """The stay's open task of a type, as the engine keeps it (its exact due time)."""
    with runtime.sessions() as s:
        return s.scalars(select(RuleOutput).where(
            RuleOutput.encounter_id == encounter, RuleOutput.code == code,
            RuleOutput.status == "active")).first()


def test_the_record_sets_the_clocks_next_review_approved_days_and_the_avoidable_streak(
        browser, ma_stay):
    """What the nurse records moves the work: the next continued-stay review comes due on
    the review's next review date, approved days running out raise a task the day before
    the last approved day, and two avoidable days in a row go to the supervisor."""
    from selenium.webdriver.support.ui import Select

    server, encounter, runtime = ma_stay
    driver, base, zone = browser, server.base_url, runtime.site.zone
    today = datetime.now(zone).date()
    admitted = today - timedelta(days=3)
    driver.get(base + "/login")
    driver.delete_all_cookies()
    sign_in(driver, base, NURSE)
    initial = _task(runtime, encounter, "initial-ur-review")
    assert initial is not None

    # the initial review cannot be completed before it is recorded
    driver.get(f"{base}/encounters/{encounter}")
    by_css(driver, f"#outcome-{initial.id}").send_keys("Reviewed")
    navigating(driver, by_css(driver, f"#output-{initial.id} form[action$='/complete'] "
                                      "button[type=submit]").click)
    assert "record the review, then complete the task" in by_css(driver, "main").text
    assert _task(runtime, encounter, "initial-ur-review") is not None  # still open

    # recorded from the task (Medicare Advantage: the next review tomorrow), then completed
    navigating(driver, by_css(driver, f"#output-{initial.id} a.button-link").click)
    by_css(driver, "#review-criteria_set").send_keys("MCG")
    Select(by_css(driver, "#review-criteria_result")).select_by_value("met")
    navigating(driver, by_css(driver, "#review-new button[type=submit]").click)
    assert by_css(driver, ".flash").text == "Review recorded."
    tomorrow = today + timedelta(days=1)
    assert f"next review {tomorrow.strftime('%a %d %b %Y')}" in by_css(driver,
                                                                        "#ur-reviews").text
    by_css(driver, f"#outcome-{initial.id}").send_keys("Criteria met (MCG)")
    navigating(driver, by_css(driver, f"#output-{initial.id} form[action$='/complete'] "
                                      "button[type=submit]").click)
    assert _task(runtime, encounter, "initial-ur-review") is None
    continued = _task(runtime, encounter, "continued-stay-review")
    assert continued is not None  # due at 17:00 on the next review date
    assert continued.due_at.astimezone(zone).replace(tzinfo=None) == datetime.combine(
        tomorrow, datetime.min.time()).replace(hour=17)
    assert "due tomorrow 17:00" in by_css(driver, f"#output-{continued.id}").text

    # the payer approves six days from the admission: the last approved day is the day
    # after tomorrow, so asking for more days is due tomorrow at 10:00
    _open(driver, "#authorization-new")
    by_css(driver, "#authorization-reference_number").send_keys("MA-77120")
    Select(by_css(driver, "#authorization-status")).select_by_value("approved")
    by_css(driver, "#authorization-approved_days").send_keys("6")
    navigating(driver, by_css(driver, "#authorization-new button[type=submit]").click)
    assert by_css(driver, ".flash").text == "Authorization recorded."
    last = admitted + timedelta(days=5)
    assert f"through {last.strftime('%a %d %b %Y')}" in by_css(driver,
                                                                "#ur-authorizations").text
    ending = _task(runtime, encounter, "approved-days-ending")
    assert ending is not None and ending.queue == "ur_nurse"
    assert ending.due_at.astimezone(zone).replace(tzinfo=None) == datetime.combine(
        last - timedelta(days=1), datetime.min.time()).replace(hour=10)
    # the card says it as the page words due times: "due tomorrow 10:00", or after 22:00
    # "due in 11 h 30 min" (under 12 hours away); the exact time is checked above
    shown = by_css(driver, f"#output-{ending.id}").text
    if ending.due_at - datetime.now(UTC) > timedelta(hours=12, minutes=1):
        assert "due tomorrow 10:00" in shown
    else:
        assert "due in " in shown

    # one avoidable day is not a streak; the day before it too makes two in a row
    assert _task(runtime, encounter, "avoidable-days-escalation") is None
    for first in (today - timedelta(days=1), today - timedelta(days=2)):
        _open(driver, "#avoidable-days-new")
        _set(driver, "#avoidable-days-first_day", first.isoformat())
        Select(by_css(driver, "#avoidable-days-reason_code")).select_by_value("PA01")
        navigating(driver, by_css(driver, "#avoidable-days-new button[type=submit]").click)
        if first == today - timedelta(days=1):
            assert _task(runtime, encounter, "avoidable-days-escalation") is None
    streak = _task(runtime, encounter, "avoidable-days-escalation")
    assert streak is not None and streak.queue == "case_management_supervisor"
    assert by_css(driver, f"#output-{streak.id}")

    # the supervisor sees it
    driver.delete_all_cookies()
    sign_in(driver, base, SUPERVISOR)
    driver.get(f"{base}/encounters/{encounter}")
    assert "Avoidable days in a row" in by_css(driver, f"#output-{streak.id}").text
