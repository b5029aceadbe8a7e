"""What a FHIR client may send to change a Task, checked without a server: merge patches
as fhirpy sends them, and the elements the rules own."""

from __future__ import annotations

import pytest

from engine.api.fhir.task_update import diff, merge_patch
from engine.api.http_errors import status_of
from engine.core.errors import EngineError

CURRENT = {
    "resourceType": "Task", "id": "7", "meta": {"versionId": "3"}, "status": "in-progress",
    "intent": "order", "priority": "routine", "description": "Deliver the IM",
    "for": {"reference": "Patient/1"}, "note": [{"text": "first"}],
    "owner": {"identifier": {"system": "urn:engine:user", "value": "cm.alvarez"}},
}


def test_a_merge_patch_merges_objects_replaces_lists_and_null_removes():
    patched = merge_patch(CURRENT, {"status": "completed", "owner": None,
                                    "note": [{"text": "first"}, {"text": "second"}],
                                    "meta": {"tag": None}})
    assert patched["status"] == "completed" and "owner" not in patched
    assert patched["note"][1] == {"text": "second"} and patched["meta"] == {"versionId": "3"}
    assert CURRENT["status"] == "in-progress"  # the original is untouched


def test_the_change_is_status_owner_and_new_notes_only():
    change = diff(CURRENT, merge_patch(CURRENT, {
        "status": "completed", "output": [{"type": {"text": "outcome"}, "valueString": "ok"}],
        "note": [{"text": "first"}, {"text": "second"}],
        "owner": {"identifier": {"value": "cm.baker"}}}))
    assert (change.status, change.outcome, change.notes, change.owner) == (
        "completed", "ok", ["second"], ("cm.baker",))
    assert diff(CURRENT, dict(CURRENT, meta={"versionId": "9"})).empty


@pytest.mark.parametrize("edit, words, status", [
    ({"priority": "stat"}, "priority", 422),
    ({"note": [{"text": "rewritten"}]}, "notes cannot be edited", 422),
    ({"statusReason": {"text": "why"}}, "with the status change", 422),
    ({"owner": {"display": "someone"}}, "must name a user", 422),
    ({"owner": {**CURRENT["owner"], "reference": "Practitioner/cm.baker"}}, "must name a user",
     422),
    ({"id": "8"}, "Task.id must be 7", 400),
])
def test_anything_else_is_refused_with_the_reason(edit, words, status):
    with pytest.raises(EngineError, match=words) as refused:
        diff(CURRENT, dict(CURRENT, **edit))
    assert status_of(refused.value) == status  # what the FHIR API answers with
