"""The synthetic hospital: reproducible, realistic enough, and the engine agrees with its truth."""

from __future__ import annotations

from sqlalchemy import select

from engine.storage.models import Encounter, PatientIdentifier
from engine.tools.simulate import simulate


def engine_state(rt) -> dict[str, dict]:
    with rt.readers() as s:
        mrns = {pid: value for pid, value in s.execute(
            select(PatientIdentifier.patient_id, PatientIdentifier.value)
            .where(PatientIdentifier.is_mrn))}
        return {e.visit_number: {
            "mrn": mrns.get(e.patient_id), "status": e.status, "care_status": e.care_status,
            "unit": e.unit, "disposition": e.discharge_disposition,
            "discharge_time": e.discharge_time.isoformat() if e.discharge_time else None,
        } for e in s.scalars(select(Encounter))}


def test_same_seed_same_stream(runtime):
    a = simulate(20, 3, 7, runtime.site)
    b = simulate(20, 3, 7, runtime.site)
    assert a.messages == b.messages and a.counts == b.counts
    assert simulate(20, 3, 8, runtime.site).messages != a.messages


def test_the_engine_state_equals_the_truth_despite_the_mess(runtime):
    sim = simulate(40, 6, 3, runtime.site, mess=0.06)
    for kind in ("A01", "A02", "A03", "A04", "A06", "A08", "duplicate", "late"):
        assert sim.counts.get(kind, 0) > 0, kind
    outcomes = [runtime.intake.hl7(m, channel="file").outcome for m in sim.messages]
    assert set(outcomes) <= {"accepted", "duplicate"}
    assert outcomes.count("duplicate") == sim.counts["duplicate"]

    state = engine_state(runtime)
    truth = {visit: t.as_dict() for visit, t in sim.truth.items()}
    assert set(state) == set(truth)
    wrong = {v: (state[v], truth[v]) for v in truth if state[v] != truth[v]}
    assert not wrong


def test_a_transfer_undone_is_not_followed_by_a_move_to_where_the_patient_is(runtime):
    """A transfer keyed in error and undone (A02, A12) must not be followed by the planned way
    back to where the patient already is: the engine records no move for that A02, so a
    second A12 had nothing to cancel (found by the million-message soak: one AE)."""
    sim = simulate(200, 8, 1, runtime.site, mess=0.6)
    refused = [r.reason for r in (runtime.intake.hl7(m, channel="file") for m in sim.messages)
               if r.outcome not in ("accepted", "duplicate")]
    assert refused == []


def test_a_stream_that_discharges_at_its_end_leaves_no_stay_open(runtime):
    """Streams laid end to end (the soak) must keep a hospital's census, not pile it up."""
    sim = simulate(30, 4, 5, runtime.site, mess=0.05, discharge_at_end=True)
    assert all(t.status != "in-progress" for t in sim.truth.values())
    outcomes = [runtime.intake.hl7(m, channel="file").outcome for m in sim.messages]
    assert set(outcomes) <= {"accepted", "duplicate"}
    state = engine_state(runtime)
    assert {v: s["status"] for v, s in state.items()} == {
        v: t.status for v, t in sim.truth.items()}


def test_simulated_feed_over_mllp_to_a_real_server_matches_the_truth(database_url, tmp_path):
    import json

    from engine.api.runtime import Runtime
    from tests.conftest import make_settings, start_server
    from tests.test_cli import engine_cli

    server = start_server(database_url)
    try:
        sent = engine_cli("simulate", "--beds", "25", "--days", "3", "--seed", "5", "--mess",
                          "0.05", "--mllp", f"127.0.0.1:{server.mllp_port}",
                          database_url=database_url)
        assert sent.returncode == 0, sent.stderr
        assert "AA " in sent.stdout and "AE" not in sent.stdout and "AR" not in sent.stdout
        written = engine_cli("simulate", "--beds", "25", "--days", "3", "--seed", "5", "--mess",
                             "0.05", "--out", str(tmp_path / "feed.hl7"),
                             database_url=database_url)
        assert written.returncode == 0
    finally:
        server.stop()
    truth = json.loads((tmp_path / "feed.hl7.truth.json").read_text())
    rt = Runtime.open(make_settings(database_url))
    try:
        assert engine_state(rt) == truth
    finally:
        rt.close()
