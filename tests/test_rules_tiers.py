"""Score tiers as the papers publish them, and score parts in words.

HOSPITAL (Donze 2013): 0-4 low, 5-6 intermediate, 7+ high. LACE (van Walraven 2010 gives
no bands; common use, e.g. Wang 2014 table 1): 0-4 low, 5-9 moderate, 10+ high. A ruleset
that writes tiers wrongly is refused with the rule and line named.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.rules.model import ScoreAction
from engine.rules.score_detail import component_texts, record, score_text, tier_ranges
from tests.test_rules_cli import copy_rulesets, edit, line_of, rules_cli

HOSPITAL = ScoreAction.model_validate({
    "name": "hospital", "label": "HOSPITAL", "fact": "hospital_score",
    "tiers": [{"name": "low", "below": 5}, {"name": "intermediate", "below": 7},
              {"name": "high"}],
    "components": [{"fact": "los_days", "points": "hospital_l", "label": "Length of stay"},
                   {"fact": "acute_admission", "points": "hospital_i",
                    "label": "Urgent admission"}]})


@pytest.mark.parametrize("value, tier, high", [
    (0, "low", False), (4, "low", False), (5, "intermediate", False),
    (6, "intermediate", False), (7, "high", True), (13, "high", True)])
def test_hospital_tiers_are_donze_2013(value, tier, high):
    detail = record(HOSPITAL, value, {"los_days": 5, "hospital_l": 2, "acute_admission": True,
                                      "hospital_i": 1}, ())
    assert (detail["tier"], detail["high"], detail["high_at"]) == (tier, high, 7)
    assert score_text("hospital", value, detail) == f"HOSPITAL {value} ({tier})"


def test_parts_read_as_words_with_their_points():
    detail = record(HOSPITAL, 6, {"los_days": 5, "hospital_l": 2, "acute_admission": True,
                                  "hospital_i": 1}, ())
    assert component_texts(detail) == ["Length of stay: 5 days (2 points)",
                                       "Urgent admission: yes (1 point)"]
    assert tier_ranges(detail["tiers"]) == "low 0-4, intermediate 5-6, high 7+"


def test_scores_stored_before_tiers_still_read():
    old = {"components": {"lace_l": 4, "acute_admission": True}, "high": True, "high_at": 10}
    assert score_text("lace", 12, old) == "LACE 12 (high)"
    assert component_texts(old) == ["Acute admission: yes", "Lace l: 4 points"]


def test_high_at_alone_still_works():
    score = ScoreAction.model_validate({"name": "x", "fact": "lace_score", "high_at": 10})
    assert record(score, 10, {}, ())["high"] is True
    assert record(score, 9, {}, ())["high"] is False
    assert record(score, 9, {}, ())["tier"] is None


@pytest.mark.parametrize("tiers, message", [
    ([{"name": "low", "below": 5}, {"name": "high", "below": 10}],
     "every tier but the last gives `below`"),
    ([{"name": "low"}, {"name": "high"}], "every tier but the last gives `below`"),
    ([{"name": "low", "below": 7}, {"name": "mid", "below": 5}, {"name": "high"}],
     "tiers go from low to high"),
    ([{"name": "low", "below": 5}, {"name": "low"}], "tier names are unique"),
])
def test_tiers_written_wrongly_are_refused(tiers, message):
    with pytest.raises(ValidationError, match=message):
        ScoreAction.model_validate({"name": "x", "fact": "lace_score", "tiers": tiers})
    with pytest.raises(ValidationError, match="high_at or tiers, not both"):
        ScoreAction.model_validate({"name": "x", "fact": "lace_score", "high_at": 10,
                                    "tiers": [{"name": "low", "below": 10}, {"name": "high"}]})


def test_check_names_a_points_fact_that_does_not_exist(tmp_path):
    folder = copy_rulesets(tmp_path)
    edit(folder / "complex_patient.yaml", "points: hospital_l,", "points: hospital_len,")
    line = line_of(folder / "complex_patient.yaml", "      - score:\n          name: hospital")
    result = rules_cli("check", "rulesets", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"rulesets/complex_patient.yaml:{line}: rule score-hospital: score 'hospital' "
        "names unknown fact 'hospital_len'"], result.stdout
