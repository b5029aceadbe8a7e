"""Why a rule fired or not: the explanation interpreter, held to durable_rules.

The interpreter in engine/rules/explain.py re-reads the condition tree in Python so it can
say which condition failed. If it ever disagreed with the engine, an informaticist would be
told a story that is not true; the differential tests below make that a test failure.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.core.clock import FixedClock
from engine.hl7.build import adt
from engine.rules.compile import Book, compile_book
from engine.rules.explain import Explanation, explain, fires
from engine.rules.facts import Derived
from engine.rules.loader import RulesetError, RulesetFile, load_folder
from engine.rules.matching import Matcher
from engine.rules.model import Ruleset
from engine.rules.reference import CodeSet, Reference, load_reference
from tests.conftest import ROOT

RULESETS = ROOT / "rulesets"
CHICAGO = ZoneInfo("America/Chicago")
_versions = itertools.count()


def shipped_book() -> Book:
    return compile_book(load_folder(RULESETS), load_reference(RULESETS / "reference"))


def engine_fires(evaluator: Matcher, values: dict[str, Any],
                 diagnoses: list[tuple[str, str | None]]) -> set[str]:
    return {f.rule.id for f in evaluator.match(Derived(dict(values)), diagnoses)}


def by_id(explanations: list[Explanation]) -> dict[str, Explanation]:
    return {e.rule.id: e for e in explanations}


# -- random facts near the thresholds the rules use ---------------------------------------

TEXT = {
    "care_status": ["inpatient", "observation", "emergency", "outpatient", "preadmit"],
    "encounter_status": ["planned", "in-progress", "onleave", "finished", "cancelled"],
    "payer_class": ["medicare", "medicare_advantage", "medicaid", "commercial", "self_pay"],
}
NUMBERS = {
    "hours_in_observation": [0, 23.99, 24, 24.01, 36, 48, 48.5],
    "midnights_in_hospital": [0, 1, 2, 3],
    "lace_score": [0, 9, 10, 10.0, 19],
    "days_since_last_discharge": [0.5, 29.9, 30, 30.01, 45],
    "age": [17, 18, 64, 65, 65.5, 90],
}
BOOLEANS = ["is_discharged", "acute_admission", "has_authorization"]
CODES = ["I50.9", "I63.9", "J44.9", "Z59.01", "Z59.1", "Z60.2", "Z60.0", "R55"]


def maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def fact_dicts(draw) -> tuple[dict[str, Any], list[tuple[str, str | None]]]:
    values: dict[str, Any] = {}
    for name, choices in TEXT.items():
        values[name] = draw(maybe(st.sampled_from(choices)))
    for name, choices in NUMBERS.items():
        values[name] = draw(maybe(st.one_of(st.sampled_from(choices), st.floats(
            -5, 100, allow_nan=False).map(lambda x: round(x, 3)))))  # see the xfail below
    for name in BOOLEANS:
        values[name] = draw(maybe(st.booleans()))
    values["open_task_types"] = draw(maybe(st.lists(
        st.sampled_from(["moon-notice", "im-notice", "status-review"]), max_size=2)))
    diagnoses = draw(st.lists(st.tuples(st.sampled_from(CODES),
                                        st.sampled_from(["A", "W", "F", None])), max_size=3))
    values["diagnosis_codes"] = [code for code, _ in diagnoses]
    return {k: v for k, v in values.items() if v is not None}, diagnoses


SHIPPED = shipped_book()
SHIPPED_EVALUATOR = Matcher(SHIPPED)


@settings(max_examples=400, deadline=None)
@given(fact_dicts())
def test_interpreter_fires_exactly_what_durable_rules_fires_on_the_shipped_rulesets(sample):
    values, diagnoses = sample
    assert fires(SHIPPED, values, diagnoses) == engine_fires(SHIPPED_EVALUATOR, values,
                                                             diagnoses)


def test_a_float_python_writes_in_exponent_form_reaches_durable_rules():
    # durable_rules' JSON reader refuses 5e-05 and 1e+16: the Matcher writes plain floats.
    values = {"care_status": "observation", "encounter_status": "in-progress",
              "hours_in_observation": 5e-05}  # 0.18 seconds of observation
    book = shipped_book()
    book.version = f"shipped{next(_versions)}"  # its own engine: a failed retract stays there
    assert engine_fires(Matcher(book), values, []) == fires(book, values, [])


# -- random rules: every operator, nested all/any/not, output references ------------------

def leaf_strategy() -> st.SearchStrategy[dict[str, Any]]:
    text = st.sampled_from(list(TEXT)).flatmap(lambda f: st.one_of(
        st.sampled_from(TEXT[f]).map(lambda v: {"fact": f, "equals": v}),
        st.sampled_from(TEXT[f]).map(lambda v: {"fact": f, "not_equals": v}),
        st.lists(st.sampled_from(TEXT[f]), min_size=1, max_size=3).map(
            lambda v: {"fact": f, "in": v}),
        st.lists(st.sampled_from(TEXT[f]), min_size=1, max_size=3).map(
            lambda v: {"fact": f, "not_in": v}),
        st.sampled_from(["^obs", "patient$", "care|vice", "^m.*e$"]).map(
            lambda v: {"fact": f, "matches": v}),
    ))
    number = st.sampled_from(list(NUMBERS)).flatmap(lambda f: st.one_of(
        st.tuples(st.sampled_from(["greater_than", "at_least", "less_than", "at_most",
                                   "equals", "not_equals"]),
                  st.sampled_from(NUMBERS[f])).map(lambda p: {"fact": f, p[0]: p[1]}),
        st.lists(st.sampled_from(NUMBERS[f]), min_size=2, max_size=2).map(
            lambda v: {"fact": f, "between": sorted(v)}),
    ))
    boolean = st.tuples(st.sampled_from(BOOLEANS), st.booleans(),
                        st.sampled_from(["equals", "not_equals"])).map(
        lambda p: {"fact": p[0], p[2]: p[1]})
    known = st.tuples(st.sampled_from([*TEXT, *NUMBERS, *BOOLEANS, "open_task_types"]),
                      st.booleans()).map(lambda p: {"fact": p[0], "is_set": p[1]})
    contains = st.sampled_from(["moon-notice", "im-notice"]).map(
        lambda v: {"fact": "open_task_types", "contains": v})
    diagnosis = st.one_of(
        st.lists(st.sampled_from(["I50", "Z59.0", "J44"]), min_size=1, max_size=2).map(
            lambda c: {"diagnosis": {"codes": c}}),
        st.just({"diagnosis": {"value_set": "social_risk", "types": ["W"]}}),
    )
    return st.one_of(text, number, boolean, known, contains, diagnosis)


def condition_strategy(outputs: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    leaves = leaf_strategy()
    if outputs:
        leaves = st.one_of(leaves, st.sampled_from(outputs).map(
            lambda code: {"output": {"flag": code}}))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ), max_leaves=6)


@st.composite
def rulesets(draw) -> dict[str, Any]:
    rules = []
    for i in range(draw(st.integers(1, 5))):
        earlier = [f"flag-{j}" for j in range(i)]
        rules.append({"id": f"r{i}", "title": f"rule {i}", "citation": "test",
                      "enabled": draw(st.booleans()) if i else True,
                      "when": draw(condition_strategy(earlier)),
                      "then": [{"flag": {"code": f"flag-{i}", "text": "x"}}]})
    return {"name": "random", "version": "1", "owner": "tests", "rules": rules}


REFERENCE = Reference(value_sets={"social_risk": CodeSet.of(["Z59.0", "Z59.1", "Z60.2"])},
                      digest="test")


def compiled(data: dict[str, Any]) -> Book:
    source = RulesetFile(Path("random.yaml"), Ruleset.model_validate(data), "random")
    book = compile_book([source], REFERENCE)
    book.version = f"random{next(_versions)}"  # one durable_rules ruleset name per book
    return book


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(fact_dicts(), min_size=1, max_size=15))
def test_interpreter_agrees_with_durable_rules_on_random_rules_and_facts(data, samples):
    try:
        book = compiled(data)
    except RulesetError:
        assume(False)  # a contradiction or a reference to a disabled rule: refused anyway
        return
    evaluator = Matcher(book)
    for values, diagnoses in samples:
        assert fires(book, values, diagnoses) == engine_fires(evaluator, values, diagnoses), (
            data, values, diagnoses)


# -- what an explanation says ------------------------------------------------------------

def leaves(node) -> list:
    return [node] if not node.children else [x for c in node.children for x in leaves(c)]


def test_one_midnight_short_the_status_review_says_which_condition_failed_and_the_value():
    values = {"payer_class": "medicare", "care_status": "observation",
              "encounter_status": "in-progress", "midnights_in_hospital": 1,
              "hours_in_observation": 20.5}
    e = by_id(explain(SHIPPED, values, []))["ur-two-midnight-observation"]

    assert e.status == "not fired" and e.tree.truth is False
    texts = {leaf.text: (leaf.truth, leaf.actual) for leaf in leaves(e.tree)}
    assert texts["midnights_in_hospital at least 2"] == (False, "1 midnights")
    assert texts["payer_class is one of [medicare, medicare_advantage]"] == (True, "medicare")
    ur = next(f for f in SHIPPED.files if f.model.name == "utilization_review")
    assert e.line == ur.rule_line("ur-two-midnight-observation")


def test_an_unknown_fact_is_unknown_and_so_is_its_negation(tmp_path):
    book = book_from(tmp_path, """
      - id: not-readmitted
        title: Not a readmission
        citation: test
        when: {not: {fact: days_since_last_discharge, at_most: 30}}
        then: [{flag: {code: first-stay, text: First stay}}]
      - id: never-admitted-before
        title: No earlier discharge known
        citation: test
        when: {not: {fact: days_since_last_discharge, is_set: true}}
        then: [{flag: {code: no-history, text: No history}}]
    """)
    found = by_id(explain(book, {}, []))

    negated = found["not-readmitted"]
    assert negated.status == "not fired" and negated.tree.truth is None
    assert negated.tree.children[0].actual == "unknown"
    assert found["never-admitted-before"].status == "fired"  # "is known" is never unknown
    assert fires(book, {}, []) == engine_fires(Matcher(book), {}, [])


def test_disabled_rules_are_listed_with_what_they_would_do(tmp_path):
    book = book_from(tmp_path, """
      - id: draft-rule
        title: A draft
        citation: test
        enabled: false
        when: {fact: care_status, equals: inpatient}
        then: [{flag: {code: draft, text: Draft}}]
      - id: live-rule
        title: Live
        citation: test
        when: {fact: care_status, equals: inpatient}
        then: [{flag: {code: live, text: Live}}]
    """)
    found = by_id(explain(book, {"care_status": "inpatient"}, []))

    assert found["draft-rule"].status == "disabled" and found["draft-rule"].would_fire
    assert found["live-rule"].status == "fired"


def test_output_references_say_who_raised_them_and_diagnoses_which_code_matched():
    values = {"care_status": "inpatient", "encounter_status": "in-progress"}
    found = by_id(explain(SHIPPED, values, [("I10", "A"), ("Z59.01", "W")]))

    social = found["flag-social-risk"]
    assert social.status == "fired" and social.tree.actual == "found Z59.01 (W)"
    evaluation = found["task-discharge-planning-evaluation"]
    assert evaluation.status == "fired" and evaluation.layer == 1
    refs = {leaf.text: leaf.actual for leaf in leaves(evaluation.tree)}
    assert refs["flag social-risk is raised"] == "raised by flag-social-risk"
    assert refs["flag readmission-30d is raised"] == "not raised"


def book_from(folder: Path, rules_yaml: str) -> Book:
    (folder / "draft.yaml").write_text(
        'name: draft\nversion: "1"\nowner: tests\nrules:\n' + _dedent(rules_yaml))
    book = compile_book(load_folder(folder), Reference(digest="t"))
    book.version = f"draft{next(_versions)}"
    return book


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.indent(textwrap.dedent(text).strip("\n"), "  ") + "\n"


# -- the command, against a real database -------------------------------------------------

def engine_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENGINE_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "engine", "rules", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_explain_shows_a_ur_nurse_why_the_status_review_fired_and_writes_nothing(
        runtime_factory, database_url):
    clock = FixedClock(datetime(2026, 3, 1, 20, 0, tzinfo=CHICAGO))
    rt = runtime_factory(clock=clock)
    assert rt.intake.hl7(adt("A04", "202603012000", visit="VX1", patient_class="O",
                             patient_type="OBS", plan="MCR001")).outcome == "accepted"

    result = engine_cli("explain", "VX1", "--at", "2026-03-03 00:30", database_url=database_url)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "encounter VX1" in text and "2026-03-03 00:30 CST" in text
    assert "FIRED  ur-two-midnight-observation" in text
    assert "met        midnights_in_hospital at least 2  (actual: 2 midnights)" in text
    assert "NOT FIRED  ur-observation-48-hours" in text
    assert "not met    hours_in_observation greater than 48  (actual: 28.5 hours)" in text
    assert "unknown    days_since_last_discharge at most 30  (actual: unknown)" in text

    from sqlalchemy import func, select

    from engine.storage.models import RuleOutput

    with rt.sessions() as s:  # the explanation wrote no outputs: only intake's remain
        assert "status-review" not in set(s.scalars(select(RuleOutput.code)))
        assert s.scalar(select(func.count()).select_from(RuleOutput)) == 3  # LACE, home, task


def test_explain_json_and_the_one_line_errors(runtime_factory, database_url):
    clock = FixedClock(datetime(2026, 3, 2, 10, 15, tzinfo=CHICAGO))
    rt = runtime_factory(clock=clock)
    receipt = rt.intake.hl7(adt("A01", "202603021015", visit="VX2", plan="MCR001"))

    import json

    result = engine_cli("explain", f"id:{receipt.encounter_id}", "--at",
                        "2026-03-02T16:30:00+00:00", "--json", "--rule", "notice-im-first",
                        database_url=database_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["encounter"]["visit_number"] == "VX2"
    assert [r["rule"] for r in data["rules"]] == ["notice-im-first"]
    assert data["rules"][0]["status"] == "fired"
    assert data["facts"]["care_status"] == "inpatient"

    missing = engine_cli("explain", "NOPE", database_url=database_url)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no encounter NOPE"
    bad_time = engine_cli("explain", "VX2", "--at", "next tuesday", database_url=database_url)
    assert bad_time.returncode == 1 and "is not a time" in bad_time.stderr
    assert "Traceback" not in bad_time.stderr
    no_rule = engine_cli("explain", "VX2", "--rule", "no-such-rule", database_url=database_url)
    assert no_rule.stderr.strip() == "error: no rule no-such-rule in the rulesets"


@pytest.mark.parametrize("when", ["2026-03-08 02:30"])
def test_explain_refuses_a_local_time_that_never_happened(when, database_url):
    result = engine_cli("explain", "V1", "--at", when, database_url=database_url)
    assert result.returncode == 1
    assert "never happened in America/Chicago" in result.stderr
