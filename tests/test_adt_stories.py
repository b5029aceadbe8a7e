"""ADT stories: what a case manager would see after the feed tells the engine about a stay.

Every story runs on two hospitals whose dialects differ (fixtures/site_profile.yaml, and
site_profile_riverside.yaml: OID authorities, two MRN authorities, another time zone,
local patient classes); its messages are written in each one's own dialect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.core.site import SiteProfile, load_site_profile
from engine.hl7 import build
from engine.storage.models import (
    Encounter,
    EncounterEvent,
    InboundMessage,
    LocationStay,
    Patient,
    PatientIdentifier,
    RuleOutput,
    StatusPeriod,
)


def encounter(rt, visit: str = "V1001") -> Encounter:
    with rt.sessions() as s:
        enc = s.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()
        enc.locations, enc.status_periods, enc.diagnoses  # noqa: B018 - load while open
        return enc


def stays(enc: Encounter) -> list[tuple[str | None, bool]]:
    return [(s.unit, s.cancelled) for s in sorted(enc.locations, key=lambda s: s.start)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(site: SiteProfile, *args: int) -> datetime:
    """A wall-clock time at the site, as an instant (HL7 times without offset mean this)."""
    return datetime(*args, tzinfo=site.zone).astimezone(UTC)


FIXTURES = Path(__file__).parent.parent / "fixtures"
PROFILES = {"general": FIXTURES / "site_profile.yaml",
            "riverside": FIXTURES / "site_profile_riverside.yaml"}


@pytest.fixture(params=sorted(PROFILES))
def profile(request) -> Path:
    return PROFILES[request.param]


@pytest.fixture
def site(profile: Path) -> SiteProfile:
    return load_site_profile(profile)


@pytest.fixture
def runtime(runtime_factory, profile: Path):
    return runtime_factory(site_profile=profile)


@pytest.fixture
def adt(site: SiteProfile):
    """ADT messages in the hospital's own dialect (engine.hl7.build.adt with its site)."""
    return partial(build.adt, site=site)


@pytest.fixture
def merge(site: SiteProfile):
    return partial(build.merge, site=site)


def test_admit_transfer_to_icu_then_cancel_transfer_returns_patient_to_ward(runtime, adt, site):
    assert runtime.intake.hl7(adt("A01", "202603021015", admit_time="202603020900")).outcome == (
        "accepted"
    )
    runtime.intake.hl7(adt("A02", "202603030800", location="ICU^1^A^GENHOSP",
                           prior_location="4WEST^412^A^GENHOSP"))
    assert encounter(runtime).unit == "ICU"

    receipt = runtime.intake.hl7(adt("A12", "202603030900", location="4WEST^412^A^GENHOSP"))

    assert receipt.outcome == "accepted"
    enc = encounter(runtime)
    assert enc.unit == "4WEST" and enc.room == "412"
    assert stays(enc) == [("4WEST", False), ("ICU", True)]
    ward = next(s for s in enc.locations if s.unit == "4WEST")
    assert ward.end is None  # the ward stay is open again
    # 09:00 at the hospital (Chicago CST, UTC-6; Los Angeles PST, UTC-8) is stored as an
    # unambiguous instant.
    assert enc.admit_time == local(site, 2026, 3, 2, 9, 0)


def test_discharge_then_cancel_discharge_reopens_the_stay(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A03", "202603051100", discharge_time="202603051100", disposition="01"))
    enc = encounter(runtime)
    assert (enc.status, enc.discharge_disposition) == ("finished", "01")
    assert all(s.end is not None for s in enc.locations)

    runtime.intake.hl7(adt("A13", "202603051130"))

    enc = encounter(runtime)
    assert enc.status == "in-progress"
    assert enc.discharge_time is None and enc.discharge_disposition is None
    assert [s.end for s in enc.locations if not s.cancelled][-1] is None


def test_late_update_does_not_overwrite_newer_state_but_late_transfer_lands_in_history(
    runtime, adt
):
    runtime.intake.hl7(adt("A01", "202603021015", attending="1111^NEWER^DOC"))
    runtime.intake.hl7(adt("A02", "202603040800", location="5EAST^501^B^GENHOSP",
                           attending="1111^NEWER^DOC"))
    # Delivered late: an A08 from before the transfer with an older attending...
    runtime.intake.hl7(adt("A08", "202603021200", attending="2222^OLDER^DOC",
                           location="4WEST^412^A^GENHOSP"))
    # ...and a transfer to ICU that happened between admission and the 5EAST move.
    runtime.intake.hl7(adt("A02", "202603030300", location="ICU^2^A^GENHOSP"))

    enc = encounter(runtime)
    assert enc.attending_id == "1111"
    assert enc.unit == "5EAST"
    assert stays(enc) == [("4WEST", False), ("ICU", False), ("5EAST", False)]
    ordered = sorted(enc.locations, key=lambda s: s.start)
    assert ordered[0].end == ordered[1].start and ordered[1].end == ordered[2].start
    with runtime.sessions() as s:
        late = s.scalars(select(EncounterEvent.trigger).where(EncounterEvent.late)).all()
    assert sorted(late) == ["A02", "A08"]


def test_same_message_twice_has_one_effect_and_the_same_ack(runtime, adt):
    msg = adt("A01", "202603021015", control_id="DUP-1")
    first = runtime.intake.hl7(msg)
    version = encounter(runtime).version

    second = runtime.intake.hl7(msg)

    assert second.outcome == "duplicate"
    assert second.ack == first.ack
    assert encounter(runtime).version == version
    with runtime.sessions() as s:
        row = s.scalars(select(InboundMessage)).one()
        assert row.duplicates == 1


def test_cancel_admit_cancels_the_encounter(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A11", "202603021030"))
    assert encounter(runtime).status == "cancelled"


def test_observation_converted_to_inpatient_keeps_both_periods(runtime, adt, site):
    runtime.intake.hl7(adt("A04", "202603012200", status="observation",
                           admit_time="202603012200"))
    assert encounter(runtime).care_status == "observation"

    runtime.intake.hl7(adt("A06", "202603031000", status="inpatient"))

    enc = encounter(runtime)
    periods = sorted(enc.status_periods, key=lambda p: p.start)
    assert [p.care_status for p in periods] == ["observation", "inpatient"]
    assert periods[0].end == periods[1].start == local(site, 2026, 3, 3, 10, 0)
    assert enc.care_status == "inpatient" and enc.status == "in-progress"


def test_pending_discharge_then_cancelled(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A16", "202603041500", expected_discharge="20260305"))
    enc = encounter(runtime)
    assert enc.pending_discharge_time is not None
    assert str(enc.expected_discharge_date) == "2026-03-05"

    runtime.intake.hl7(adt("A25", "202603041600"))

    assert encounter(runtime).pending_discharge_time is None


def test_leave_of_absence_and_return(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A21", "202603031000"))
    assert encounter(runtime).status == "onleave"
    runtime.intake.hl7(adt("A22", "202603031400"))
    assert encounter(runtime).status == "in-progress"


def test_merge_moves_encounters_to_the_survivor_without_losing_the_old_record(runtime, adt, merge):
    runtime.intake.hl7(adt("A28", "202603010900", mrn="654321", visit="X"))
    runtime.intake.hl7(adt("A01", "202603021015", mrn="654321", visit="V7777"))
    runtime.intake.hl7(adt("A28", "202603020900", mrn="123456", visit="X"))

    assert runtime.intake.hl7(merge("202603021100", mrn="123456", prior_mrn="654321")).outcome == (
        "accepted"
    )
    # A later message under the old MRN lands on the survivor.
    runtime.intake.hl7(adt("A08", "202603021200", mrn="654321", visit="V7777"))

    with runtime.sessions() as s:
        survivor = s.scalars(
            select(Patient).join(PatientIdentifier).where(PatientIdentifier.value == "123456")
        ).one()
        enc = s.scalars(select(Encounter).where(Encounter.visit_number == "V7777")).one()
        assert enc.patient_id == survivor.id
        old = s.scalars(select(Patient).where(Patient.merged_into_id == survivor.id)).one()
        assert old.family == "TESTPATIENT"
        assert {i.value for i in survivor.identifiers} == {"123456", "654321"}
        assert s.scalar(select(func.count()).select_from(Patient)) == 2


def test_an_unmapped_patient_class_applies_the_stay_with_no_care_status_and_a_warning(
    runtime_factory, adt, profile: Path
):
    """A local class code the profile does not map no longer loses the whole stay: it is
    applied with its care status unknown (no status rule fires on it), the sender sees an
    ERR of severity W, and the next message with a mapped class sets the status."""
    rt = runtime_factory(site_profile=profile)
    receipt = rt.intake.hl7(adt("A01", "202603021015", patient_class="Z"))
    assert receipt.outcome == "accepted", receipt.reason
    assert "MSA|AA|" in receipt.ack and "not mapped in the site profile" in receipt.ack
    assert (encounter(rt).patient_class, encounter(rt).care_status) == ("Z", None)
    with rt.sessions() as s:
        warnings = s.get(InboundMessage, receipt.message_id).warnings
        assert "PV1-2" in warnings and "care status not changed" in warnings

    assert "initial-ur-review" not in _task_codes(rt)  # an unknown status owes no UR review

    assert rt.intake.hl7(adt("A08", "202603021115", status="inpatient")).outcome == "accepted"
    assert encounter(rt).care_status == "inpatient"
    assert "initial-ur-review" in _task_codes(rt)


def _task_codes(rt) -> set[str]:
    with rt.sessions() as s:
        return set(s.scalars(select(RuleOutput.code).where(
            RuleOutput.kind == "task", RuleOutput.status == "active")))


def test_a_training_message_is_refused_then_applied_by_an_engine_that_accepts_training(
    runtime_factory, tmp_path: Path, adt, profile: Path
):
    rt = runtime_factory(site_profile=profile)
    receipt = rt.intake.hl7(adt("A01", "202603021015", processing_id="T"))
    assert receipt.outcome == "rejected" and "MSA|AR|" in receipt.ack
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Encounter)) == 0

    training = tmp_path / "site.yaml"
    text = profile.read_text()
    training.write_text(text.replace("accepted_processing_ids: [P]",
                                        "accepted_processing_ids: [T]", 1))
    rt2 = runtime_factory(site_profile=training)
    assert rt2.intake.replay(receipt.message_id).outcome == "accepted"
    assert encounter(rt2).status == "in-progress"
    assert rt2.intake.hl7(adt("A08", "202603021115")).outcome == "rejected"  # P, not T


def test_unknown_trigger_is_acknowledged_and_recorded_as_ignored(runtime, adt):
    receipt = runtime.intake.hl7(adt("A60", "202603021015"))
    assert receipt.outcome == "ignored"
    assert "MSA|AA|" in receipt.ack
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Encounter)) == 0


def test_person_update_changes_demographics_only(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A31", "202603031015", name="TESTPATIENT^BETA"))
    with runtime.sessions() as s:
        patient = s.scalars(select(Patient)).one()
        assert patient.given == "BETA"
        assert s.scalar(select(func.count()).select_from(Encounter)) == 1


def test_payer_diagnoses_and_drg_come_through_the_site_profile(runtime, adt):
    runtime.intake.hl7(adt(
        "A01", "202603021015", plan="medicare_advantage",
        extra=["DG1|1||I63.9^Cerebral infarction^I10||20260302|A",
               "DG1|2||Z59.01^Sheltered homelessness^I10||20260302|W",
               "DRG|065^INTRACRANIAL HEMORRHAGE OR CEREBRAL INFARCTION W CC^MS-DRG"],
    ))
    enc = encounter(runtime)
    assert enc.payer_class == "medicare_advantage"
    assert [(d.code, d.diagnosis_type) for d in enc.diagnoses] == [("I63.9", "A"), ("Z59.01", "W")]
    assert enc.working_drg == "065"


def test_timestamp_with_offset_is_honoured(runtime, adt):
    runtime.intake.hl7(adt("A01", "20260302101500-0500", admit_time="20260302090000-0500"))
    assert encounter(runtime).admit_time == utc(2026, 3, 2, 14, 0)


def test_a12_without_a_transfer_is_refused_with_a_reason(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    receipt = runtime.intake.hl7(adt("A12", "202603021100"))
    assert receipt.outcome == "error"
    assert "no transfer to cancel" in receipt.ack
    # The refused message changed nothing.
    enc = encounter(runtime)
    assert stays(enc) == [("4WEST", False)]


def test_every_status_history_is_consistent(runtime, adt, site):
    runtime.intake.hl7(adt("A04", "202603012200", status="emergency", location="ED^1^^GENHOSP"))
    runtime.intake.hl7(adt("A06", "202603020400", status="inpatient"))
    runtime.intake.hl7(adt("A03", "202603051100"))
    with runtime.sessions() as s:
        periods = s.scalars(select(StatusPeriod).order_by(StatusPeriod.start)).all()
        locs = s.scalars(select(LocationStay).order_by(LocationStay.start)).all()
    assert [p.care_status for p in periods] == ["emergency", "inpatient"]
    assert periods[-1].end == local(site, 2026, 3, 5, 11, 0)
    assert [loc.unit for loc in locs] == ["ED", "4WEST"]


def test_explicit_null_erases_the_expected_discharge_date(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015", expected_discharge="20260305"))
    runtime.intake.hl7(adt("A08", "202603031015", expected_discharge='""'))
    assert encounter(runtime).expected_discharge_date is None


def test_merge_naming_one_unknown_prior_id_twice_is_applied_once(runtime, adt, merge, site):
    runtime.intake.hl7(adt("A28", "202603010900", mrn="123456", visit="X"))
    prior = build.cx("999999", build.mrn_authority(site), "MR").encode()
    raw = merge("202603021100", mrn="123456", prior_mrn="999999").replace(
        b"MRG|" + prior, b"MRG|" + prior + b"~" + prior)
    assert runtime.intake.hl7(raw).outcome == "accepted"


def test_a_trigger_named_like_the_fhir_pseudo_trigger_is_refused_and_kept(runtime, adt):
    receipt = runtime.intake.hl7(adt("FHIR", "202603021015"))
    assert receipt.outcome == "rejected" and "MSA|AR|" in receipt.ack
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Encounter)) == 0


def test_empty_attending_erases_name_and_id(runtime, adt):
    runtime.intake.hl7(adt("A01", "202603021015"))
    runtime.intake.hl7(adt("A08", "202603031015", attending='""'))
    enc = encounter(runtime)
    assert enc.attending_id is None and enc.attending_name is None
