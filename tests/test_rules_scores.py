"""Charlson (Quan 2005 ICD-10) and LACE (van Walraven 2010), checked against their papers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.reference import load_reference
from engine.rules.scores import charlson, lace

TABLE = load_reference(Path(__file__).parent.parent / "rulesets" / "reference").charlson


@pytest.mark.parametrize("codes, index, conditions", [
    ([], 0, []),
    (["I50.9"], 1, ["congestive_heart_failure"]),
    (["i50.23"], 1, ["congestive_heart_failure"]),  # ICD-10-CM subcode, lower case
    (["E11.9", "E11.65"], 1, ["diabetes_without_complication"]),
    (["E11.9", "E11.21"], 2, ["diabetes_with_complication"]),  # severe replaces mild
    (["K70.30", "K72.10"], 3, ["moderate_severe_liver_disease"]),
    (["C34.90", "C78.00"], 6, ["metastatic_solid_tumor"]),
    (["I21.4", "J44.1", "N18.4", "B20"], 1 + 1 + 2 + 6,
     ["chronic_pulmonary_disease", "hiv_aids", "myocardial_infarction", "renal_disease"]),
    (["Z59.01", "S72.001A"], 0, []),
])
def test_charlson_index(codes, index, conditions):
    assert charlson(codes, TABLE) == (index, conditions)


@pytest.mark.parametrize("los, acute, cci, ed, points", [
    (0, False, 0, 0, (0, 0, 0, 0)),
    (1, True, 1, 1, (1, 3, 1, 1)),
    (3, True, 3, 3, (3, 3, 3, 3)),
    (4, False, 4, 4, (4, 0, 5, 4)),
    (6, False, 0, 9, (4, 0, 0, 4)),
    (7, False, 0, 0, (5, 0, 0, 0)),
    (13, False, 0, 0, (5, 0, 0, 0)),
    (14, True, 7, 5, (7, 3, 5, 4)),  # the maximum: 19
])
def test_lace_points(los, acute, cci, ed, points):
    score = lace(los, acute, cci, ed)
    assert (score.l, score.a, score.c, score.e) == points
    assert score.total == sum(points)


def test_a_bed_move_inside_the_icu_is_not_a_second_icu_stay():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from engine.rules.facts import derive
    from engine.rules.snapshot import Period, Snapshot

    zone = ZoneInfo("America/Chicago")
    t = [datetime(2026, 3, 1, h, tzinfo=zone) for h in (8, 10, 12, 14)]
    ward_icu_icu = [Period("4WEST", t[0], t[1]), Period("ICU", t[1], t[2]),
                    Period("ICU", t[2], None)]
    snap = Snapshot(locations=ward_icu_icu)
    ref = load_reference(Path(__file__).parent.parent / "rulesets" / "reference")
    assert derive(snap, t[3], zone, ref).values["icu_stays"] == 1
    snap.locations = [*ward_icu_icu[:2], Period("4WEST", t[2], t[3]), Period("ICU", t[3], None)]
    assert derive(snap, t[3], zone, ref).values["icu_stays"] == 2
