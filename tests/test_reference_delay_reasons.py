"""The delay-reason table a site edits: read whole, and refused with its file and line when a
row would mislead (a code twice, a category or responsible party no one counts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.reference import ReferenceTableError, load_reference

ROOT = Path(__file__).resolve().parents[1]
HEADER = "code,category,responsible_party,text\n"


def _table(tmp_path: Path, rows: str) -> Path:
    (tmp_path / "delay_reasons.csv").write_text(HEADER + rows, encoding="utf-8")
    return tmp_path


def test_the_shipped_list_covers_the_six_categories_with_words():
    reasons = load_reference(ROOT / "rulesets" / "reference").delay_reasons
    assert {r.category for r in reasons.values()} == {
        "patient_family", "physician", "hospital_system", "post_acute_placement", "payer",
        "community_resource"}
    assert reasons["PA01"].text == "No skilled nursing bed available"
    assert reasons["PA01"].responsible_party == "post_acute_provider"


@pytest.mark.parametrize(("rows", "message"), [
    ("PA01,post_acute_placement,post_acute_provider,No bed\n"
     "PA01,payer,payer,Again\n", "delay_reasons.csv:3: reason PA01 is listed twice"),
    ("PA01,post-acute,post_acute_provider,No bed\n",
     "delay_reasons.csv:2: unknown category 'post-acute'"),
    ("PA01,post_acute_placement,facility,No bed\n",
     "delay_reasons.csv:2: unknown responsible_party 'facility'"),
    ("PA01,post_acute_placement,post_acute_provider,\n",
     "delay_reasons.csv:2: code, category, responsible_party and text are all needed"),
])
def test_a_row_that_would_mislead_the_numbers_is_refused_with_its_line(tmp_path, rows,
                                                                         message):
    with pytest.raises(ReferenceTableError, match=message):
        load_reference(_table(tmp_path, rows))
