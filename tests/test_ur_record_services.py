"""The UR nurse's record, service by service, on SQLite and PostgreSQL: stays arrive through
the HL7 feed; a UR nurse records reviews and authorizations, a case manager records barriers,
the engine proposes avoidable days from them. Days are General Hospital's local calendar
(America/Chicago); the stays here cross the spring-forward night of 8 March 2026."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.roles import Permission, Principal
from engine.hl7.build import adt, drg, in1
from engine.rules.reference import load_reference
from engine.storage.models import AvoidableDay, Encounter, PayerAuthorization
from engine.work.ur_record import (
    authorizations,
    avoidable_days,
    barriers,
    reviews,
    revisions,
)
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    CommunicationInput,
    ReviewInput,
)
from engine.work.ur_record.problems import RecordForbidden, RecordInvalid, RecordStale
from engine.work.ur_record.stay import locked
from tests.conftest import ROOT

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=CHICAGO)  # Tuesday, daylight time since Sunday
NURSE = Principal(name="ur.okafor", kind="user", role="ur_nurse")
CASE_MANAGER = Principal(name="cm.alvarez", kind="user", role="case_manager")
REF = load_reference(ROOT / "rulesets" / "reference")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHICAGO)


@pytest.fixture
def rt(runtime_factory):
    return runtime_factory(clock=FixedClock(NOW), rulesets="")


def admit(rt, visit: str, admitted: str, *, plan: str = "MCR001", expected: str = "",
          working_drg: str = "", authorization: str = "", discharged: str = "") -> int:
    """An inpatient admission (HL7 local times, YYYYMMDDHHMM) through the real feed; the
    stay's id."""
    extra = [drg(working_drg)] if working_drg else []
    if authorization:
        extra.append(in1(1, plan, company_id="CMS", company_name=f"PAYER {plan}",
                         authorization=authorization))
    rt.intake.hl7(adt("A01", admitted, visit=visit, mrn=f"M{visit}", admit_time=admitted,
                      expected_discharge=expected, extra=extra,
                      plan="" if authorization else plan))
    if discharged:
        rt.intake.hl7(adt("A03", discharged, visit=visit, mrn=f"M{visit}",
                          discharge_time=discharged, disposition="01"))
    with rt.readers() as s:
        return s.scalars(select(Encounter.id).where(Encounter.visit_number == visit)).one()


def refused(action: Callable[[], object]) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as caught:
        action()
    return caught.value


def review(on: date, **kw) -> ReviewInput:
    kw.setdefault("review_type", "initial")
    return ReviewInput(reviewed_on=on, level_of_care=kw.pop("level_of_care", "inpatient"),
                       criteria_result=kw.pop("criteria_result", "met"), **kw)


# -- reviews -------------------------------------------------------------------------------

def test_the_next_review_comes_from_the_cadence_for_the_payer_class_and_an_override_is_marked(
        rt):
    medicare = admit(rt, "V1", "202603061400")  # MCR001: every 3 days
    commercial = admit(rt, "V2", "202603061500", plan="COM300")  # every day
    with rt.sessions() as s, s.begin():
        stay = locked(s, medicare)
        first = reviews.record(s, stay, review(date(2026, 3, 7), criteria_set="InterQual"),
                               NURSE, NOW, rt.site, by_display="Ada Okafor, RN")
        assert (first.next_review_on, first.next_review_overridden) == (date(2026, 3, 10),
                                                                        False)
        assert (first.reviewer, first.entered_by, first.entered_at, first.version) == (
            "ur.okafor", "ur.okafor", NOW, 1)
        # she asks to see the patient sooner: her day, marked as hers
        sooner = reviews.record(s, stay, review(date(2026, 3, 8),
                                                review_type="continued_stay",
                                                next_review_on=date(2026, 3, 9)),
                                NURSE, NOW, rt.site)
        assert (sooner.next_review_on, sooner.next_review_overridden) == (date(2026, 3, 9),
                                                                          True)
        # typing the day the cadence gives is not an override
        same = reviews.record(s, locked(s, commercial),
                              review(date(2026, 3, 7), next_review_on=date(2026, 3, 8)),
                              NURSE, NOW, rt.site)
        assert (same.next_review_on, same.next_review_overridden) == (date(2026, 3, 8), False)
        assert [r.reviewed_on for r in reviews.of_stay(s, medicare)] == [date(2026, 3, 8),
                                                                        date(2026, 3, 7)]


def test_a_review_refuses_what_a_ur_nurse_would_not_sign(rt):
    stay_id = admit(rt, "V1", "202603061400")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)

        def with_(**kw):
            return lambda: reviews.record(s, stay, review(kw.pop("on", date(2026, 3, 7)), **kw),
                                          NURSE, NOW, rt.site)

        cases = [
            (with_(on=date(2026, 3, 11)), "reviewed_on", "the review date 2026-03-11 is in the "
                                                         "future"),
            (with_(on=date(2026, 3, 5)), "reviewed_on", "is before the admission on "
                                                        "2026-03-06"),
            (with_(level_of_care="icu"), "level_of_care", "unknown level of care 'icu'"),
            (with_(criteria_result=""), "criteria_result", "criteria result is needed"),
            (with_(review_type="retrospective"), "review_type", "this patient is still in"),
            (with_(next_review_on=date(2026, 3, 7)), "next_review_on", "is not after this "
                                                                       "review"),
            (with_(advisor_outcome="inpatient_supported"), "advisor_outcome",
             "needs a physician advisor referral"),
            (with_(condition_code_44=True), "condition_code_44", "found them met"),
            (with_(clinical_summary="x" * 20001), "clinical_summary", "at most 20000"),
            (with_(task_id=999999), "task_id", "is not a task of this stay"),
        ]
        for action, field, words in cases:
            problem = refused(action)
            assert problem.field == field and words in problem.message, (field, problem.message)
        # a referral to the physician advisor starts pending
        referred = reviews.record(s, stay, review(date(2026, 3, 7),
                                                  criteria_result="advisor_referral"),
                                  NURSE, NOW, rt.site)
        assert (referred.advisor_referred, referred.advisor_outcome) == (True, "pending")


def test_a_retrospective_review_is_after_the_discharge_and_has_no_next_review(rt):
    stay_id = admit(rt, "V1", "202603021000", discharged="202603051100")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        retro = reviews.record(s, stay, review(date(2026, 3, 9), review_type="retrospective"),
                               NURSE, NOW, rt.site)
        assert retro.next_review_on is None
        problem = refused(lambda: reviews.record(
            s, stay, review(date(2026, 3, 9), review_type="continued_stay"), NURSE, NOW,
            rt.site))
        assert problem.field == "reviewed_on" and "after the discharge on 2026-03-05" in (
            problem.message)
        problem = refused(lambda: reviews.record(
            s, stay, review(date(2026, 3, 9), review_type="retrospective",
                            criteria_result="not_met", condition_code_44=True),
            NURSE, NOW, rt.site))
        assert problem.field == "condition_code_44"


# -- authorizations ------------------------------------------------------------------------

def test_three_approved_days_from_an_admission_late_at_night_end_on_the_third_local_day(rt):
    # 23:30 on 6 March in Chicago is already 7 March in UTC: the first day is the 6th
    stay_id = admit(rt, "V1", "202603062330")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        auth = authorizations.record(
            s, stay, AuthorizationInput(status="approved", reference_number="A-100",
                                        level_of_care="inpatient", approved_days=3,
                                        payer_reviewer="J. Lee RN"),
            NURSE, NOW, rt.site)
        assert (auth.approved_from, auth.approved_through) == (date(2026, 3, 6),
                                                               date(2026, 3, 8))
        assert (auth.payer, auth.source, auth.entered_by) == ("PAYER MCR001", "web",
                                                              "ur.okafor")
        through = authorizations.record(
            s, stay, AuthorizationInput(status="partially_approved",
                                        approved_through=date(2026, 3, 9)),
            NURSE, NOW, rt.site)
        # more days count from the day after those already approved (a payer's extension)
        assert (through.approved_from, through.approved_through, through.approved_days) == (
            date(2026, 3, 9), date(2026, 3, 9), 1)


def test_observation_before_the_inpatient_order_is_part_of_the_stay_but_not_of_its_approval(
        rt):
    # in observation from 1 March, admitted as an inpatient on the 2nd (A06)
    rt.intake.hl7(adt("A04", "202603011000", visit="V1", mrn="MV1", admit_time="202603011000",
                      patient_class="O", patient_type="OBS"))
    rt.intake.hl7(adt("A06", "202603021300", visit="V1", mrn="MV1", patient_class="I",
                      admit_time="202603021300"))
    with rt.sessions() as s, s.begin():
        stay = locked(s, s.scalars(select(Encounter.id)).one())
        observed = reviews.record(s, stay, review(date(2026, 3, 1), review_type="initial",
                                                  level_of_care="observation"),
                                  NURSE, NOW, rt.site)
        assert observed.reviewed_on == date(2026, 3, 1)
        auth = authorizations.record(s, stay, AuthorizationInput(status="approved",
                                                                 approved_days=3),
                                     NURSE, NOW, rt.site)
        assert (auth.approved_from, auth.approved_through) == (date(2026, 3, 2),
                                                               date(2026, 3, 4))
        problem = refused(lambda: reviews.record(s, stay, review(date(2026, 2, 28)), NURSE,
                                                 NOW, rt.site))
        assert "before the admission on 2026-03-01" in problem.message


def test_an_authorization_refuses_days_that_do_not_add_up(rt):
    stay_id = admit(rt, "V1", "202603062330")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)

        def auth(**kw):
            return lambda: authorizations.record(s, stay, AuthorizationInput(**kw), NURSE,
                                                 NOW, rt.site)

        soon = NOW - timedelta(hours=2)
        cases = [
            (auth(status="approved"), "approved_days", "needs the approved days"),
            (auth(status="approved", approved_days=0), "approved_days", "1 or more"),
            (auth(status="approved", approved_days=10**9), "approved_days", "at most 365"),
            (auth(status="approved", approved_through=date(2026, 3, 5)), "approved_through",
             "the approved through-date 2026-03-05 is before the admission on 2026-03-06"),
            (auth(status="approved", approved_days=3, approved_through=date(2026, 3, 9)),
             "approved_through", "3 approved days from 2026-03-06 end on 2026-03-08"),
            (auth(status="approved", approved_from=date(2026, 3, 5), approved_days=2),
             "approved_from", "before the admission"),
            (auth(status="granted"), "status", "unknown status 'granted'"),
            (auth(status="denied", appeal_level=1), "denial_reason", "the payer's reason"),
            (auth(status="denied", denial_reason="not medically necessary", appeal_level=1),
             "appeal_deadline", "needs its filing deadline"),
            (auth(status="denied", denial_reason="x", appeal_level=6,
                  appeal_deadline=date(2026, 4, 1)), "appeal_level", "1 to 5"),
            (auth(status="denied", denial_reason="x", appeal_outcome="pending"),
             "appeal_level", "an appeal outcome needs the appeal level"),
            (auth(status="pending", requested_at=soon, decided_at=soon - timedelta(hours=1)),
             "decided_at", "decided before the request"),
            (auth(status="pending", requested_at=NOW + timedelta(hours=1)), "requested_at",
             "in the future"),
            (auth(status="denied", denial_reason="x", peer_to_peer="held",
                  peer_to_peer_at=NOW + timedelta(days=1)), "peer_to_peer_at",
             "a later one is scheduled"),
            (auth(status="pending", payer_contact="x" * 201), "payer_contact",
             "at most 200"),
        ]
        for action, field, words in cases:
            problem = refused(action)
            assert problem.field == field and words in problem.message, (field, problem.message)
        # a peer-to-peer scheduled for tomorrow is fine
        authorizations.record(s, stay, AuthorizationInput(
            status="denied", denial_reason="x", peer_to_peer="scheduled",
            peer_to_peer_at=NOW + timedelta(days=1)), NURSE, NOW, rt.site)


def test_a_denial_needs_its_reason_and_a_peer_to_peer_outcome_needs_it_held(rt):
    stay_id = admit(rt, "V1", "202603061400", plan="COM300")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        problem = refused(lambda: authorizations.record(
            s, stay, AuthorizationInput(status="denied", denial_reason="  "), NURSE, NOW,
            rt.site))
        assert (problem.field, problem.message) == ("denial_reason",
                                                    "a denial needs the payer's reason")
        denial = authorizations.record(s, stay, AuthorizationInput(
            status="denied", reference_number="D-7", denial_reason="observation level of care",
            peer_to_peer="requested"), NURSE, NOW - timedelta(hours=3), rt.site)
        authorizations.communicate(s, stay, denial, CommunicationInput(
            at=NOW - timedelta(hours=2), direction="outbound", channel="phone",
            summary="asked for a peer-to-peer with the medical director"), NURSE, NOW)
        problem = refused(lambda: authorizations.update(
            s, denial, stay, AuthorizationInput(
                status="denied", reference_number="D-7",
                denial_reason="observation level of care", peer_to_peer="requested",
                peer_to_peer_outcome="overturned"), NURSE, NOW, rt.site))
        assert problem.field == "peer_to_peer_outcome" and "held" in problem.message
        # the peer-to-peer is held and overturns the denial: approved for two days
        assert authorizations.update(s, denial, stay, AuthorizationInput(
            status="approved", reference_number="D-7", approved_days=2,
            denial_reason="observation level of care", peer_to_peer="held",
            peer_to_peer_at=NOW - timedelta(hours=1), peer_to_peer_outcome="overturned"),
            NURSE, NOW, rt.site, reason="peer-to-peer held", expected_version=1)
        assert (denial.status, denial.approved_through, denial.version) == (
            "approved", date(2026, 3, 7), 2)
        (before,) = revisions.history(s, "payer_authorization", denial.id)
        assert (before.body["status"], before.body["peer_to_peer"], before.reason) == (
            "denied", "requested", "peer-to-peer held")
        assert [c.summary for c in authorizations.communications(s, stay_id)] == [
            "asked for a peer-to-peer with the medical director"]


def test_a_communication_belongs_to_the_stay_of_its_authorization(rt):
    one, other = admit(rt, "V1", "202603061400"), admit(rt, "V2", "202603061400")
    with rt.sessions() as s, s.begin():
        auth = authorizations.record(s, locked(s, one), AuthorizationInput(status="pending"),
                                     NURSE, NOW, rt.site)
        said = CommunicationInput(at=NOW, direction="inbound", channel="fax", summary="ok")
        problem = refused(lambda: authorizations.communicate(s, locked(s, other), auth, said,
                                                             NURSE, NOW))
        assert problem.field == "authorization_id"
        problem = refused(lambda: authorizations.communicate(
            s, locked(s, one), auth, CommunicationInput(at=NOW, direction="inbound",
                                                        channel="pigeon", summary="ok"),
            NURSE, NOW))
        assert problem.field == "channel" and "unknown channel 'pigeon'" in problem.message
        problem = refused(lambda: authorizations.communicate(
            s, locked(s, one), auth, CommunicationInput(at=datetime(2026, 3, 10, 9, 0),
                                                        direction="inbound", channel="fax",
                                                        summary="ok"), NURSE, NOW))
        assert (problem.field, problem.message) == ("at", "at 2026-03-10T09:00:00 has no time "
                                                          "zone")


def test_the_feed_opens_a_pending_authorization_once(rt):
    stay_id = admit(rt, "V1", "202603061400", authorization="AUTH-4471")
    rt.intake.hl7(adt("A08", "202603061600", visit="V1", mrn="MV1", plan="",
                      extra=[in1(1, "MCR001", authorization="AUTH-4471")]))
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        assert stay.authorization == "AUTH-4471"
        [seeded] = authorizations.of_stay(s, stay_id)  # intake opened it from IN1-14
        assert authorizations.seed_from_feed(s, stay, stay.authorization, NOW) is None
        assert (seeded.status, seeded.source, seeded.entered_by, seeded.payer) == (
            "pending", "feed", "feed", "PAYER MCR001")
        # UR corrects a typo the registrar made; the feed keeps sending the old number
        authorizations.update(s, seeded, stay, AuthorizationInput(
            status="pending", reference_number="AUTH-4477"), NURSE, NOW, rt.site,
            reason="number as the payer portal shows it")
        assert authorizations.seed_from_feed(s, stay, "AUTH-4471", NOW) is None
        assert authorizations.seed_from_feed(s, stay, "  ", NOW) is None
        assert [a.reference_number for a in authorizations.of_stay(s, stay_id)] == [
            "AUTH-4477"]
        # entered in error and voided: the feed does not bring it back either
        revisions.void(s, seeded, "ur.okafor", NOW, "the payer has no such authorization",
                       permission=Permission.UR_WRITE)
        assert authorizations.seed_from_feed(s, stay, "AUTH-4477", NOW) is None
        assert authorizations.seed_from_feed(s, stay, "AUTH-4471", NOW) is None
        assert authorizations.of_stay(s, stay_id) == []
        assert len(authorizations.of_stay(s, stay_id, voided=True)) == 1


# -- history, versions, voids, roles ---------------------------------------------------------

def test_a_correction_keeps_the_original_and_a_stale_one_is_refused(rt):
    stay_id = admit(rt, "V1", "202603061400")
    later = NOW + timedelta(minutes=20)
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        first = reviews.record(s, stay, review(date(2026, 3, 7), clinical_summary="sats 88%"),
                               NURSE, NOW, rt.site)
        changed = reviews.correct(s, first, stay, review(date(2026, 3, 7),
                                                         clinical_summary="sats 86% on 2L"),
                                  NURSE, later, rt.site, reason="typo", expected_version=1)
        assert changed and (first.version, first.clinical_summary, first.updated_at,
                            first.entered_at) == (2, "sats 86% on 2L", later, NOW)
        (original,) = revisions.history(s, "utilization_review", first.id)
        assert (original.version, original.changed_by, original.changed_at, original.reason,
                original.body["clinical_summary"]) == (1, "ur.okafor", later, "typo",
                                                       "sats 88%")
        # nothing to correct: no new version
        assert not reviews.correct(s, first, stay, review(date(2026, 3, 7),
                                                          clinical_summary="sats 86% on 2L"),
                                   NURSE, later, rt.site, reason=None)
        # a colleague's screen still shows version 1
        with pytest.raises(RecordStale, match="at version 2, not 1"):
            reviews.correct(s, first, stay, review(date(2026, 3, 7), clinical_summary="x"),
                            NURSE, later, rt.site, reason=None, expected_version=1)
        problem = refused(lambda: revisions.void(s, first, "ur.okafor", later, " ",
                                                 permission=Permission.UR_WRITE))
        assert problem.field == "void_reason"
        revisions.void(s, first, "ur.okafor", later, "entered on the wrong patient",
                       expected_version=2, permission=Permission.UR_WRITE)
        assert reviews.of_stay(s, stay_id) == []
        assert reviews.of_stay(s, stay_id, voided=True) == [first]
        assert (first.void_reason, first.version) == ("entered on the wrong patient", 3)
        assert [r.version for r in revisions.history(s, "utilization_review", first.id)] == [
            1, 2]
        problem = refused(lambda: reviews.correct(s, first, stay, review(date(2026, 3, 7)),
                                                  NURSE, later, rt.site, reason=None))
        assert "voided" in problem.message


def test_ur_nurses_write_reviews_and_case_managers_write_barriers(rt):
    stay_id = admit(rt, "V1", "202603061400")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        with pytest.raises(RecordForbidden, match="case_manager may not ur:write"):
            reviews.record(s, stay, review(date(2026, 3, 7)), CASE_MANAGER, NOW, rt.site)
        with pytest.raises(RecordForbidden):
            authorizations.record(s, stay, AuthorizationInput(status="pending"),
                                  CASE_MANAGER, NOW, rt.site)
        with pytest.raises(RecordForbidden, match="ur_nurse may not barrier:write"):
            barriers.open_barrier(s, stay, BarrierInput(reason_code="PA01"), NURSE, NOW,
                                  rt.site, REF)
        barrier = barriers.open_barrier(s, stay, BarrierInput(reason_code="PA01",
                                                              owner="cm.alvarez"),
                                        CASE_MANAGER, NOW, rt.site, REF)
        assert (barrier.category, barrier.opened_by, barrier.opened_at) == (
            "post_acute_placement", "cm.alvarez", NOW)
        with pytest.raises(RecordForbidden):
            barriers.resolve(s, barrier, NURSE, NOW, resolution="bed found")
        with pytest.raises(RecordForbidden):  # nor void it: that is a write too
            revisions.void(s, barrier, NURSE, NOW, "entered in error",
                           permission=Permission.BARRIER_WRITE)
        with pytest.raises(RecordForbidden):
            avoidable_days.record(s, stay, AvoidableDayInput(first_day=date(2026, 3, 8),
                                                             reason_code="PA01"),
                                  CASE_MANAGER, NOW, rt.site, REF)


# -- barriers ------------------------------------------------------------------------------

def test_a_barrier_is_coded_from_the_sites_delay_reasons_and_resolved_after_it_opened(rt):
    stay_id = admit(rt, "V1", "202603061400")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)

        def opening(**kw):
            return lambda: barriers.open_barrier(s, stay, BarrierInput(**kw), CASE_MANAGER,
                                                 NOW, rt.site, REF)

        cases = [
            (opening(reason_code="ZZ99"), "reason_code", "unknown reason code 'ZZ99'"),
            (opening(reason_code=""), "reason_code", "choose a reason"),
            (opening(reason_code="PA01", opened_at=NOW + timedelta(hours=1)), "opened_at",
             "in the future"),
            (opening(reason_code="PA01", opened_at=local("2026-03-05T09:00")), "opened_at",
             "before the admission on 2026-03-06"),
        ]
        for action, field, words in cases:
            problem = refused(action)
            assert problem.field == field and words in problem.message, (field, problem.message)
        assert "PA01" in refused(opening(reason_code="ZZ99")).message  # the list is shown
        barrier = barriers.open_barrier(s, stay, BarrierInput(
            reason_code="PY01", text="SNF auth pending", opened_at=local("2026-03-08T09:00")),
            CASE_MANAGER, NOW, rt.site, REF)
        problem = refused(lambda: barriers.resolve(s, barrier, CASE_MANAGER, NOW,
                                                   resolution="x",
                                                   at=local("2026-03-08T08:00")))
        assert problem.field == "resolved_at"
        barriers.resolve(s, barrier, CASE_MANAGER, NOW, resolution="approved by payer",
                         at=local("2026-03-09T15:00"), expected_version=1)
        assert (barrier.resolved_by, barrier.version) == ("cm.alvarez", 2)
        problem = refused(lambda: barriers.correct(
            s, barrier, stay, BarrierInput(reason_code="PY01",
                                           opened_at=local("2026-03-09T16:00")),
            CASE_MANAGER, NOW, rt.site, REF))
        assert problem.field == "opened_at" and "resolved at 2026-03-09 15:00" in (
            problem.message)


# -- avoidable days ------------------------------------------------------------------------

def test_avoidable_days_a_ur_nurse_enters_stay_inside_the_stay_and_do_not_overlap(rt):
    stay_id = admit(rt, "V1", "202603021000", discharged="202603091100")
    other = admit(rt, "V2", "202603021000")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        foreign = barriers.open_barrier(s, locked(s, other), BarrierInput(reason_code="PA01"),
                                        CASE_MANAGER, NOW, rt.site, REF)
        day = avoidable_days.record(s, stay, AvoidableDayInput(
            first_day=date(2026, 3, 6), last_day=date(2026, 3, 7), reason_code="PA01"),
            NURSE, NOW, rt.site, REF)
        assert (day.status, day.category, day.responsible_party, day.decided_by) == (
            "confirmed", "post_acute_placement", "post_acute_provider", "ur.okafor")

        def entering(first: date, last: date | None = None, **kw):
            kw.setdefault("reason_code", "PA01")
            return lambda: avoidable_days.record(s, stay, AvoidableDayInput(
                first_day=first, last_day=last, **kw), NURSE, NOW, rt.site, REF)

        cases = [
            (entering(date(2026, 3, 5), date(2026, 3, 4)), "last_day",
             "the last day 2026-03-04 is before the first 2026-03-05"),
            (entering(date(2026, 3, 1)), "first_day", "is before the admission on 2026-03-02"),
            (entering(date(2026, 3, 8), date(2026, 3, 10)), "last_day",
             "is after the discharge on 2026-03-09"),
            (entering(date(2026, 3, 8), date(2026, 3, 9)), "last_day",
             "the day of discharge is not a day of the stay (the last one is 2026-03-08)"),
            (entering(date(2026, 3, 9)), "first_day", "the day of discharge"),
            (entering(date(2026, 3, 7), date(2026, 3, 8)), "first_day",
             "2026-03-06 to 2026-03-07 is already recorded as avoidable (confirmed)"),
            (entering(date(2026, 3, 8), reason_code="XX"), "reason_code", "unknown reason"),
            (entering(date(2026, 3, 8), responsible_party="mayor"), "responsible_party",
             "unknown responsible party 'mayor'"),
            (entering(date(2026, 3, 8), barrier_id=foreign.id), "barrier_id",
             "is not a barrier of this stay"),
        ]
        for action, field, words in cases:
            problem = refused(action)
            assert problem.field == field and words in problem.message, (field, problem.message)


def test_derive_proposes_the_whole_days_past_the_gmlos_while_a_barrier_is_open(rt):
    # DRG 190 (COPD with MCC): GMLOS 3.3 days in CMS Table 5. Admitted at 23:30 on Friday
    # 6 March, the first day is the 6th; day 4 (10 March) is the first whole day past 3.3.
    assert REF.drg("190").gmlos == 3.3
    stay_id = admit(rt, "V1", "202603062330", working_drg="190")
    evening = local("2026-03-11T20:00")  # already 12 March in UTC
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        barrier = barriers.open_barrier(s, stay, BarrierInput(
            reason_code="PA01", opened_at=local("2026-03-07T10:00")), CASE_MANAGER,
            local("2026-03-07T10:00"), rt.site, REF)
        assert avoidable_days.derive(s, stay, local("2026-03-10T18:00"), CHICAGO, REF) == []
        (proposal,) = avoidable_days.derive(s, stay, evening, CHICAGO, REF)
        assert (proposal.first_day, proposal.last_day, proposal.status, proposal.barrier_id,
                proposal.reason_code, proposal.responsible_party, proposal.entered_by) == (
            date(2026, 3, 10), date(2026, 3, 10), "proposed", barrier.id, "PA01",
            "post_acute_provider", "engine")
        assert avoidable_days.derive(s, stay, evening, CHICAGO, REF) == []  # nothing twice
        # past midnight the 11th is whole: the run grows, and its shorter self is kept
        assert avoidable_days.derive(s, stay, local("2026-03-12T00:30"), CHICAGO, REF) == []
        assert (proposal.first_day, proposal.last_day, proposal.version) == (
            date(2026, 3, 10), date(2026, 3, 11), 2)
        (shorter,) = revisions.history(s, "avoidable_day", proposal.id)
        assert shorter.body["last_day"] == "2026-03-10" and shorter.changed_by == "engine"


def test_derive_counts_the_expected_discharge_day_spent_in_hospital(rt):
    # expected home on the 4th, left on the 6th: two days too many, the 4th and the 5th
    stay_id = admit(rt, "V1", "202603011000", expected="20260304",
                    discharged="202603061000")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        barriers.open_barrier(s, stay, BarrierInput(reason_code="PF01",
                                                    opened_at=local("2026-03-03T12:00")),
                              CASE_MANAGER, NOW, rt.site, REF)
        (proposal,) = avoidable_days.derive(s, stay, NOW, CHICAGO, REF)
        assert (proposal.first_day, proposal.last_day, proposal.category) == (
            date(2026, 3, 4), date(2026, 3, 5), "patient_family")


def test_a_rejected_day_is_not_proposed_again_and_a_voided_barrier_proposes_nothing(rt):
    stay_id = admit(rt, "V1", "202603011000", expected="20260304")
    with rt.sessions() as s, s.begin():
        stay = locked(s, stay_id)
        snf = barriers.open_barrier(s, stay, BarrierInput(
            reason_code="PA01", opened_at=local("2026-03-03T12:00")), CASE_MANAGER, NOW,
            rt.site, REF)
        (proposal,) = avoidable_days.derive(s, stay, local("2026-03-06T09:00"), CHICAGO, REF)
        assert (proposal.first_day, proposal.last_day) == (date(2026, 3, 4), date(2026, 3, 5))
        # a colleague read the two-day run before the engine grew it: her decision is stale
        avoidable_days.derive(s, stay, local("2026-03-07T09:00"), CHICAGO, REF)
        with pytest.raises(RecordStale):
            avoidable_days.decide(s, proposal, False, NURSE, NOW, expected_version=1)
        avoidable_days.decide(s, proposal, False, NURSE, NOW, note="medically unstable",
                              expected_version=2)
        assert (proposal.status, proposal.decided_by) == ("rejected", "ur.okafor")
        problem = refused(lambda: avoidable_days.decide(s, proposal, True, NURSE, NOW))
        assert "already rejected" in problem.message
        (newer,) = avoidable_days.derive(s, stay, local("2026-03-08T09:00"), CHICAGO, REF)
        assert (newer.first_day, newer.last_day) == (date(2026, 3, 7), date(2026, 3, 7))
        # the rejected days are hers to enter again; the proposed one is decided, not retyped
        problem = refused(lambda: avoidable_days.record(s, stay, AvoidableDayInput(
            first_day=date(2026, 3, 7), reason_code="PA01"), NURSE, NOW, rt.site, REF))
        assert problem.message == ("2026-03-07 is already recorded as avoidable (proposed); "
                                   "confirm or reject the engine's proposal instead")
        # the barrier was entered on the wrong patient: its open proposal goes with it
        revisions.void(s, snf, "cm.alvarez", NOW, "wrong patient",
                       permission=Permission.BARRIER_WRITE)
        assert avoidable_days.derive(s, stay, NOW, CHICAGO, REF) == []
        assert newer.voided_at is not None and newer.void_reason == "its barrier was voided"
        assert proposal.voided_at is None  # a person's decision stands
        days = s.scalars(select(AvoidableDay).where(AvoidableDay.encounter_id == stay_id))
        assert sorted((d.first_day, d.status, d.voided_at is None) for d in days) == [
            (date(2026, 3, 4), "rejected", True), (date(2026, 3, 7), "proposed", False)]
        assert s.scalars(select(PayerAuthorization)).all() == []
