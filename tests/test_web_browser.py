"""The web worklist end to end: Debian's Chromium, driven by chromedriver, against a real
`engine serve` holding a synthetic week of a 60-bed hospital (the demo's data).

CI (ENGINE_TEST_REQUIRE_BROWSER=1, set by .ci/run) fails here when Chromium is missing;
elsewhere the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.api.runtime import Runtime
from engine.core.config import DEFAULT_STAFFING
from engine.security.users import add_user
from engine.storage.models import RuleOutput
from engine.tools.simulate import simulate
from engine.work.escalation import escalate_overdue
from engine.work.staffing import from_file
from harness.launch import ServerProcess, start_server
from tests.conftest import fresh_database, make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRE = (os.environ.get("ENGINE_TEST_REQUIRE_BROWSER") == "1"
           or os.environ.get("CI", "").lower() == "true")
PASSWORD = "correct horse battery staple"
WIDTH, HEIGHT = 1366, 768


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"browser tests need {', '.join(missing)} (apt-get install chromium " \
              "chromium-driver)"
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def hospital(tmp_path_factory) -> Iterator[tuple[ServerProcess, str]]:
    """A week of a 60-bed hospital through the one path, everyone in staffing signed up."""
    _need_browser()
    folder = tmp_path_factory.mktemp("web")
    databases = fresh_database("sqlite", folder)
    url = next(databases)
    runtime = Runtime.open(make_settings(url))
    week = simulate(60, 7, 1, runtime.site, start=date.today() - timedelta(days=7))
    for raw in week.messages:
        runtime.intake.hl7(raw, channel="file")
    for person in from_file(DEFAULT_STAFFING).people:
        add_user(runtime.sessions, person.name, person.role, PASSWORD)
    runtime.close()
    # The server's clock does not escalate this week's overdue work as it starts; the
    # escalation scenario escalates it itself, at a moment it chooses.
    server = start_server(url, mllp=False, env={"ENGINE_ESCALATION_GRACE_MINUTES": "1000000"})
    yield server, url
    server.kill()


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", f"--window-size={WIDTH},{HEIGHT}",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@dataclass
class Visit:
    driver: Any
    base: str  # the server's address
    database_url: str


@pytest.fixture
def web(browser, hospital) -> Visit:
    """The browser, signed out, pointed at the server."""
    server, url = hospital
    browser.get(server.base_url + "/login")
    browser.delete_all_cookies()
    return Visit(browser, server.base_url, url)


def busiest_case_manager(url: str) -> str:
    """The case manager with the most overdue work this morning."""
    runtime = Runtime.open(make_settings(url), migrate=False)
    names = [p.name for p in from_file(DEFAULT_STAFFING).people if p.role == "case_manager"]
    now = datetime.now(UTC)
    with runtime.readers() as s:
        late = dict(s.execute(
            select(RuleOutput.owner, func.count())
            .where(RuleOutput.kind == "task", RuleOutput.owner.in_(names),
                   RuleOutput.task_status.in_(("ready", "in-progress", "on-hold")),
                   RuleOutput.due_at < now)
            .group_by(RuleOutput.owner)).all())
    runtime.close()
    return max(names, key=lambda n: (late.get(n, 0), n))


def by_css(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def all_css(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def navigating(driver, act: Callable[[], object]) -> None:
    """Do what loads a new page (a click, a key), then wait until that page has loaded:
    a click returns before the navigation it starts has finished."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    old = by_css(driver, "html")
    act()

    def replaced(_driver) -> bool:
        # Chromium reports a node of the page being left either as stale or, mid-navigation,
        # as "does not belong to the document": both mean the old page is gone.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 30).until(replaced)
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver, base: str, name: str) -> None:
    driver.get(base + "/login")
    by_css(driver, "#username").send_keys(name)
    by_css(driver, "#password").send_keys(PASSWORD)
    navigating(driver, by_css(driver, "form.signin button[type=submit]").click)
    assert driver.current_url.endswith("/worklist"), driver.page_source[:2000]


def counted(driver, what: str) -> int:
    return int(by_css(driver, f"#count-{what} strong").text)


def rows(driver) -> list[dict]:
    return driver.execute_script("""
        return [...document.querySelectorAll('#worklist tbody tr[data-task]')].map(tr => ({
            task: tr.dataset.task, overdue: tr.classList.contains('overdue'),
            stat: tr.querySelector('.priority-stat') !== null,
            location: tr.cells[1].innerText, due: tr.cells[6].innerText,
            link: tr.querySelector('a') !== null}));""")


def fits(driver) -> bool:
    return driver.execute_script("return document.body.scrollWidth") <= WIDTH


def test_keyboard_only_sign_in(web):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver, base = web.driver, web.base
    driver.get(base + "/worklist")
    assert "/login" in driver.current_url  # not signed in: sent to sign in first
    keys = ActionChains(driver)
    for _ in range(6):  # Tab until the user name field has the focus
        if driver.switch_to.active_element.get_attribute("id") == "username":
            break
        keys.send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("id") == "username"
    name = busiest_case_manager(web.database_url)
    keys.send_keys(name).send_keys(Keys.TAB).send_keys(PASSWORD).perform()
    navigating(driver, ActionChains(driver).send_keys(Keys.ENTER).perform)
    assert driver.current_url.endswith("/worklist")
    assert by_css(driver, "h1").text == "My worklist"
    # from the top of the page the first Tab reaches the skip link, visibly focused
    driver.get(base + "/worklist")
    ActionChains(driver).send_keys(Keys.TAB).perform()
    focused = driver.switch_to.active_element
    assert focused.get_attribute("href").endswith("#main")
    style = driver.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineStyle, s.outlineWidth, s.top]", )
    assert style[0] != "none" and style[1] != "0px"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    assert driver.switch_to.active_element.get_attribute("id") == "main"


def test_a_case_managers_morning(web, tmp_path):
    from selenium.webdriver.support.ui import Select

    driver, base = web.driver, web.base
    name = busiest_case_manager(web.database_url)
    sign_in(driver, base, name)
    listed = rows(driver)
    assert listed, "the case manager has work"
    stat = [r["stat"] for r in listed]
    assert stat == sorted(stat, reverse=True), "stat work comes first"
    flags = [r["overdue"] for r in listed]
    rest = [r["overdue"] for r in listed if not r["stat"]]
    assert rest == sorted(rest, reverse=True), "then overdue work"
    assert counted(driver, "overdue") == sum(flags) >= 1
    assert counted(driver, "open") == len(listed)
    assert all("overdue by" in r["due"] for r in listed if r["overdue"])
    assert fits(driver)
    driver.save_screenshot(str(tmp_path / "worklist.png"))
    assert (tmp_path / "worklist.png").stat().st_size > 10_000

    # filter by one of her units
    units = [o.get_attribute("value") for o in all_css(driver, "#f-unit option")][1:]
    unit = max(units, key=lambda u: sum(r["location"].startswith(u) for r in listed))
    Select(by_css(driver, "#f-unit")).select_by_value(unit)
    navigating(driver, by_css(driver, "form.filters button[type=submit]").click)
    assert f"unit={unit}" in driver.current_url
    narrowed = rows(driver)
    assert narrowed and all(r["location"].startswith(unit) for r in narrowed)
    assert counted(driver, "open") == len(narrowed)
    assert Select(by_css(driver, "#f-unit")).first_selected_option.get_attribute(
        "value") == unit

    # open the first patient and do the first task
    before = counted(driver, "open")
    task = narrowed[0]["task"]
    navigating(driver, by_css(driver, f'tr[data-task="{task}"] a').click)
    assert re.search(r"/encounters/\d+", driver.current_url)
    card = f"#output-{task}"
    assert "Why: rule" in by_css(driver, card).text
    navigating(driver, by_css(driver, f'{card} form[action$="/start"] button').click)
    assert by_css(driver, ".flash").text == "Task started."
    assert "In progress" in by_css(driver, f"{card} .status").text
    # no outcome yet
    navigating(driver, by_css(driver, f'{card} form[action$="/complete"] button').click)
    assert "needs an outcome" in by_css(driver, ".error[role=alert]").text
    by_css(driver, f"#outcome-{task}").send_keys("Plan agreed with the patient and family")
    navigating(driver, by_css(driver, f'{card} form[action$="/complete"] button').click)
    assert by_css(driver, ".flash").text == "Task completed."
    assert "Completed" in by_css(driver, f"{card} .status").text
    assert "Plan agreed with the patient and family" in by_css(driver, card).text
    assert fits(driver)
    driver.save_screenshot(str(tmp_path / "encounter.png"))

    driver.get(f"{base}/worklist?unit={unit}")
    assert task not in [r["task"] for r in rows(driver)]
    assert counted(driver, "open") != before


def test_a_supervisor_sees_caseloads_and_reassigns(web, tmp_path):
    from selenium.webdriver.support.ui import Select

    driver, base = web.driver, web.base
    sign_in(driver, base, "sup.garcia")
    driver.get(base + "/supervisor")
    people = [tr.get_attribute("data-person") for tr in all_css(driver, "#caseload tbody tr")]
    assert {"cm.alvarez", "cm.baker", "ur.fischer"} <= set(people)
    assert fits(driver)
    driver.save_screenshot(str(tmp_path / "supervisor.png"))
    late = all_css(driver, "tr[data-task] select[id^=late-owner]")
    assert late, "some work is overdue across the team"
    # a case manager's overdue task: its list offers case managers (and supervisors) only
    select = next(e for e in late
                  if Select(e).first_selected_option.get_attribute("value").startswith("cm."))
    task = select.get_attribute("id").rsplit("-", 1)[1]
    owner = Select(select).first_selected_option.get_attribute("value")
    offered = {o.get_attribute("value") for o in Select(select).options}
    assert not {n for n in offered if n.startswith("ur.")}, "no UR nurses for CM work"
    other = "cm.baker" if owner != "cm.baker" else "cm.alvarez"
    Select(select).select_by_value(other)
    navigating(driver, by_css(driver, f'form[action="/tasks/{task}/reassign"] button').click)
    assert by_css(driver, ".flash").text == "Task reassigned."
    driver.get(f"{base}/worklist?for=person:{other}")
    assert task in [r["task"] for r in rows(driver)]


def test_overdue_work_stays_with_its_owner_and_shows_escalated_to_the_supervisor(web):
    """The clock escalates this morning's overdue work (no grace). A case manager still
    sees her late task on her own list, counted overdue; her supervisor sees it under
    "Escalated to you" with the case manager named as owner, and the reassign list offers
    case managers and supervisors only, set to the owner."""
    from selenium.webdriver.support.ui import Select

    driver, base = web.driver, web.base
    staffing = from_file(DEFAULT_STAFFING)
    runtime = Runtime.open(make_settings(web.database_url), migrate=False)
    escalate_overdue(runtime.sessions, datetime.now(UTC), timedelta(0), staffing)
    with runtime.readers() as s:
        task, owner = s.execute(
            select(RuleOutput.id, RuleOutput.owner)
            .where(RuleOutput.kind == "task", RuleOutput.escalated_to == "sup.garcia",
                   RuleOutput.owner.like("cm.%"),
                   RuleOutput.task_status.in_(("ready", "in-progress", "on-hold")))
            .order_by(RuleOutput.id)).first()
    runtime.close()

    sign_in(driver, base, owner)
    mine = rows(driver)
    assert str(task) in [r["task"] for r in mine], "the escalated task is still hers"
    assert counted(driver, "overdue") == sum(r["overdue"] for r in mine) >= 1
    assert "escalated to Rosa Garcia" in by_css(driver, f'tr[data-task="{task}"]').text

    driver.delete_all_cookies()
    sign_in(driver, base, "sup.garcia")
    driver.get(base + "/supervisor")
    from selenium.webdriver.common.by import By

    row = by_css(driver, f"#esc-owner-{task}").find_element(By.XPATH, "./ancestor::tr")
    person = staffing.person(owner)
    assert person is not None and person.display
    assert by_css(row, "td.owner").text == person.display
    assert by_css(row, "td.owner span").get_attribute("title") == owner
    choose = Select(by_css(row, "select"))
    assert choose.first_selected_option.get_attribute("value") == owner
    roles = {staffing.person(o.get_attribute("value")).role  # type: ignore[union-attr]
             for o in choose.options if o.get_attribute("value")}
    assert roles == {"case_manager", "supervisor"}
    assert fits(driver)


def test_the_printed_worklist(web):
    driver, base = web.driver, web.base
    sign_in(driver, base, busiest_case_manager(web.database_url))
    driver.get(base + "/worklist/print")
    assert not all_css(driver, "nav") and not all_css(driver, "form")
    printed = rows(driver)
    assert printed and not any(r["link"] for r in printed)
    assert fits(driver)


def test_a_case_manager_declines_a_plan_that_does_not_apply(web):
    """She declines "Confirm the discharge plan" with a coded reason: the page says so by her
    name, and the same work is not raised again for the stay."""
    from selenium.webdriver.support.ui import Select

    driver, base = web.driver, web.base
    runtime = Runtime.open(make_settings(web.database_url), migrate=False)
    query = select(RuleOutput).where(
        RuleOutput.kind == "task", RuleOutput.code == "confirm-discharge-plan",
        RuleOutput.status == "active", RuleOutput.task_status == "ready",
        RuleOutput.owner.like("cm.%")).order_by(RuleOutput.id)
    with runtime.readers() as s:
        target = s.scalars(query).first()
        assert target is not None, "the week leaves a discharge plan to confirm"
        task, stay, owner = target.id, target.encounter_id, target.owner
    sign_in(driver, base, owner)
    driver.get(f"{base}/encounters/{stay}")
    card = f"#output-{task}"
    decline = f'{card} form[action$="/decline"] button'
    # the words typed, no reason chosen: refused, and the words are still there
    by_css(driver, f"#reason-{task}").send_keys("PT: needs rehab, lives alone")
    navigating(driver, by_css(driver, decline).click)
    assert "choose one from the list" in by_css(driver, ".error[role=alert]").text
    assert by_css(driver, f"#reason-{task}").get_attribute("value") == (
        "PT: needs rehab, lives alone")
    Select(by_css(driver, f"#reason_code-{task}")).select_by_value("not-clinically-appropriate")
    navigating(driver, by_css(driver, decline).click)
    assert by_css(driver, ".flash").text.startswith("Task declined")
    assert "Declined" in by_css(driver, f"{card} .status").text
    assert "Not clinically appropriate: PT: needs rehab, lives alone" in by_css(driver, card).text
    with runtime.readers() as s:
        again = s.scalars(select(RuleOutput).where(
            RuleOutput.encounter_id == stay, RuleOutput.code == "confirm-discharge-plan",
            RuleOutput.status == "active")).all()
    runtime.close()
    assert again == [], "no fresh copy of work she declined"

def open_plan_with_alternatives(url: str) -> tuple[int, int, str, str]:
    """An open discharge-plan task with at least one alternative: (task, encounter, owner,
    the first alternative)."""
    runtime = Runtime.open(make_settings(url), migrate=False)
    with runtime.readers() as s:
        plans = s.scalars(select(RuleOutput).where(
            RuleOutput.code == "confirm-discharge-plan", RuleOutput.status == "active",
            RuleOutput.owner.is_not(None)).order_by(RuleOutput.id))
        found = next(p for p in plans if p.detail["discharge_plan"]["alternatives"])
        picked = (found.id, found.encounter_id, found.owner or "",
                  found.detail["discharge_plan"]["alternatives"][0])
    runtime.close()
    return picked


def test_a_case_manager_confirms_the_ranked_discharge_plan(web):
    from selenium.webdriver.support.ui import Select

    driver = web.driver
    task, encounter, owner, alternative = open_plan_with_alternatives(web.database_url)
    sign_in(driver, web.base, owner)
    driver.get(f"{web.base}/encounters/{encounter}")
    findings = by_css(driver, "section[aria-labelledby=findings-heading]").text
    assert findings.count("primary recommendation") == 1 and "alternative" in findings
    card = f"#output-{task}"
    assert "Primary recommendation:" in by_css(driver, card).text
    choice = Select(by_css(driver, f"#chosen-{task}"))
    assert "(primary recommendation)" in choice.options[1].text
    choice.select_by_value(alternative)
    navigating(driver, by_css(driver, f'{card} form[action$="/complete"] button').click)
    assert by_css(driver, ".flash").text == "Task completed."
    assert "Completed" in by_css(driver, f"{card} .status").text
    chosen = by_css(driver, ".plan-chosen")  # the chosen proposal's card says so
    assert chosen.text == "chosen"
    findings = by_css(driver, "section[aria-labelledby=findings-heading]").text
    assert "primary recommendation" not in findings  # the others are closed
    timeline = by_css(driver, "table.timeline").text
    assert "another disposition chosen" in timeline
    assert fits(driver)
