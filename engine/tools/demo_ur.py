"""The demo hospital's UR record: what its UR nurses and case managers write down as the
week runs, through the services their forms use (engine.work.ur_record), in event time.

UR nurses record a review when they work an initial or continued-stay review task, ask the
commercial and Medicare Advantage payers for authorization and log every answer (most
approve days, some pend, a few deny: a peer-to-peer is requested and held, an upheld
denial is appealed or not) and mark avoidable days on some stays past their GMLOS; case
managers open discharge barriers at morning rounds and resolve them hours or days later,
or not yet; each night the engine proposes avoidable days from barriers open past the
expected discharge or the GMLOS, and UR confirms most of them and rejects some. Every
choice is seeded (the same seed, the same record); every write re-evaluates the stay, as a
form's does.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.runtime import Runtime
from engine.core import ur_record as codes
from engine.core.clock import FixedClock
from engine.core.roles import Permission, Principal
from engine.core.vocabulary import OPEN_ENCOUNTER_STATUSES
from engine.planning.evaluation import evaluate
from engine.rules.reference import Reference
from engine.storage.models import (
    AvoidableDay,
    Barrier,
    CaseAssignment,
    Encounter,
    PayerAuthorization,
    RuleOutput,
)
from engine.work.staffing import Staffing
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    CommunicationInput,
    ReviewInput,
)
from engine.work.ur_record.problems import RecordInvalid
from engine.work.ur_record.stay import days_of, locked

# The site's name for the criteria it licenses: the record keeps the determination, never
# the criteria's content.
CRITERIA_SET = "InterQual Acute Adult 2026"
AUTHORIZING = ("commercial", "medicare_advantage")  # the payers that authorize inpatient days
OFFICE = (time(8, 0), time(17, 0))  # payer utilization management and UR office hours
NIGHT, ROUNDS = time(0, 10), time(9, 0)  # the engine's nightly proposals; morning rounds
# Of every ten first answers, seven approve days, one pends for information, two deny.
ANSWERS = ("approved", "denied", "approved", "approved", "pended", "approved", "approved",
           "denied", "approved", "approved")
ADVISOR = "Dr. Samuel Reyes (physician advisor)"
PAYER_REVIEWER = "K. Morgan, RN (payer utilization management)"
# Barriers at rounds: how often a category stands in the way, and what each one's note says.
CATEGORIES = [("post_acute_placement", 30), ("patient_family", 20), ("payer", 14),
              ("hospital_system", 15), ("physician", 12), ("community_resource", 9)]
BARRIER_NOTE = {
    "post_acute_placement": "Referrals sent; waiting for a facility to accept",
    "patient_family": "Family meeting set with the patient and daughter",
    "payer": "Clinicals sent to the payer; waiting for the determination",
    "hospital_system": "Requested; the department has not scheduled it yet",
    "physician": "Raised with the attending at rounds",
    "community_resource": "Social work contacting community agencies",
}
RESOLUTION = {
    "post_acute_placement": "Facility accepted; bed offered for tomorrow",
    "patient_family": "Plan agreed at the family meeting",
    "payer": "Payer approved the post-acute level of care",
    "hospital_system": "Done; result in the chart",
    "physician": "Attending wrote the order",
    "community_resource": "Agency confirmed the service start date",
}
SUMMARY = {  # the clinical summary sent to the payer, by hospital service (PV1-10)
    "CAR": "telemetry, IV diuresis, daily weights and electrolytes",
    "MED": "IV antibiotics, oxygen 2 L by nasal cannula, labs trending",
    "NEU": "neuro checks every 4 hours, swallow evaluation, PT/OT",
    "ORT": "post-operative pain control, PT twice daily, DVT prophylaxis",
    "ONC": "symptom control, IV fluids, oncology consult",
}
# Reasons UR gives for an avoidable day no barrier explains (the delay-reason codes).
UR_REASONS = [("PH01", 4), ("PH04", 3), ("HS01", 3), ("HS03", 2)]
UR_NOTES = {"PH01": "Medically ready at morning rounds; discharge order written next day",
            "PH04": "Stayed only to await a result that did not change the plan",
            "HS01": "Imaging not scheduled until the following morning",
            "HS03": "PT evaluation not done until the following day"}

Event = tuple[datetime, int, str, tuple[int | str, ...]]  # (when, order, kind, arguments)


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


class Desk:
    """The UR nurses' and case managers' record-keeping, as events on the stream's clock."""

    def __init__(self, runtime: Runtime, clock: FixedClock, seed: int,
                 staffing: Staffing) -> None:
        self.runtime, self.clock, self.seed, self.staffing = runtime, clock, seed, staffing
        self.site = runtime.site
        self.zone = runtime.site.zone
        self.events: list[Event] = []
        self.order = 0
        self.appeals = self.answered = 0
        self.extending: set[int] = set()  # authorizations with an extension asked
        self.deciding: set[int] = set()  # proposed avoidable days UR has planned to decide
        self.refused: list[str] = []  # what a service refused (the demo should never see it)

    # -- the clock ---------------------------------------------------------------------------

    def plan_days(self, first: date, last: date) -> None:
        """Every night's proposals and every morning's rounds from `first` to `last`."""
        day = first
        while day <= last:
            self._at(datetime.combine(day, NIGHT, tzinfo=self.zone), "night")
            self._at(datetime.combine(day, ROUNDS, tzinfo=self.zone), "rounds")
            day += timedelta(days=1)

    def finish(self, now: datetime) -> None:
        """At the demo's "now": the barriers of stays that left today are closed too."""
        self._at(now, "close")

    def next_at(self) -> datetime | None:
        return self.events[0][0] if self.events else None

    def run_next(self) -> None:
        """Do the next event at the clock's time (the caller advanced the clock to it)."""
        _, _, kind, args = heapq.heappop(self.events)
        reference = self._reference()
        if reference is None:
            return  # no rulesets: no delay reasons and no rules to read the record
        try:
            with self.runtime.sessions() as session, session.begin():
                getattr(self, f"_{kind}")(session, reference, *args)
        except RecordInvalid as refused:  # rolled back; kept to say so
            self.refused.append(f"{kind}{args}: {refused.field}: {refused.message}")

    def _at(self, when: datetime, kind: str, *args: int | str) -> None:
        self.order += 1
        heapq.heappush(self.events, (when.astimezone(UTC), self.order, kind, args))

    def _office(self, when: datetime, rng: random.Random) -> datetime:
        """The same time if in office hours, else the next office morning."""
        local = when.astimezone(self.zone)
        if OFFICE[0] <= local.time() < OFFICE[1]:
            return when
        day = local.date() + timedelta(days=1 if local.time() >= OFFICE[1] else 0)
        return (datetime.combine(day, OFFICE[0], tzinfo=self.zone)
                + timedelta(minutes=rng.uniform(0, 150)))

    def _rng(self, *key: object) -> random.Random:
        return random.Random(":".join(["ur", str(self.seed), *map(str, key)]))

    def _reference(self) -> Reference | None:
        rulebook = self.runtime.rules.current
        return rulebook.book.reference if rulebook is not None else None

    def _person(self, session: Session, enc: Encounter, role: str) -> Principal:
        """The stay's person in `role` (as assigned), else the first of that role."""
        held = session.scalar(select(CaseAssignment.user_name).where(
            CaseAssignment.encounter_id == enc.id, CaseAssignment.role == role))
        person = self.staffing.person(held) or next(
            (p for p in self.staffing.people if p.role == role
             and p.covers(None, None, enc.payer_class) is not None), None)
        name = person.name if person else f"demo.{role}"
        return Principal(name=name, kind="user", role=role)

    def _display(self, name: str) -> str | None:
        person = self.staffing.person(name)
        return person.display if person else None

    def _reevaluate(self, session: Session, enc: Encounter) -> None:
        """The rules read the record: evaluate the stay after each write, as a form does."""
        rulebook = self.runtime.rules.current
        if rulebook is not None:
            session.flush()
            evaluate(session, rulebook, enc, self.clock.instant)

    # -- work on a task (inside the task's completion) ---------------------------------------

    def reviewer(self, session: Session, enc: Encounter, actor: Principal) -> Principal:
        """Who documents a review: the task's worker, or the stay's UR nurse when a
        supervisor closes it (supervisors read the record, they do not write it)."""
        return actor if actor.can(Permission.UR_WRITE) else self._person(session, enc,
                                                                             "ur_nurse")

    def on_task(self, session: Session, task: RuleOutput, actor: Principal) -> None:
        """What the task's worker records before completing it (the caller holds the lock)."""
        enc = task.encounter
        if task.code not in ("initial-ur-review", "continued-stay-review",
                             "authorization-request", "excess-days-review"):
            return
        actor = self.reviewer(session, enc, actor)
        try:
            with session.begin_nested():
                if task.code == "initial-ur-review":
                    self._review(session, enc, task, actor, "initial")
                    self._request(session, enc, actor)
                elif task.code == "continued-stay-review":
                    self._review(session, enc, task, actor, "continued_stay")
                    self._ask_extension(session, enc, actor)
                elif task.code == "authorization-request":
                    self._request(session, enc, actor)
                else:
                    self._mark_avoidable(session, enc, actor)
        except RecordInvalid as refused:
            self.refused.append(f"{task.code} {task.id}: {refused.field}: {refused.message}")

    def _review(self, session: Session, enc: Encounter, task: RuleOutput, actor: Principal,
                review_type: str) -> None:
        rng = self._rng("review", task.id)
        roll = rng.random()
        if review_type == "initial":
            result = "met" if roll < 0.84 else "advisor_referral" if roll < 0.93 else "not_met"
            supported = "inpatient_supported"
            outcomes = [(supported, 6), ("observation_recommended", 2), ("pending", 2)]
        else:
            result = "met" if roll < 0.88 else "advisor_referral" if roll < 0.94 else "not_met"
            supported = "continued_stay_supported"
            outcomes = [(supported, 6), ("discharge_recommended", 2), ("pending", 2)]
        referred = result != "met"
        stay = days_of(enc, self.clock.instant, self.zone)
        today = self.clock.instant.astimezone(self.zone).date()
        day = (today - stay.first).days + 1 if stay.first else 1
        words = codes.words(codes.CRITERIA_RESULTS, result).lower()
        summary = (f"Day {day}: {SUMMARY.get(enc.hospital_service or '', SUMMARY['MED'])}. "
                   f"{CRITERIA_SET}: {words}.")
        reviews.record(session, enc, ReviewInput(
            review_type=review_type, reviewed_on=today,
            level_of_care=enc.care_status if enc.care_status in codes.LEVELS_OF_CARE
            else "inpatient",
            criteria_result=result, criteria_set=CRITERIA_SET, clinical_summary=summary,
            advisor_referred=referred, advisor_name=ADVISOR if referred else None,
            advisor_outcome=_pick(rng, outcomes) if referred else None, task_id=task.id),
            actor, self.clock.instant, self.site, by_display=self._display(actor.name))

    # -- authorizations ----------------------------------------------------------------------

    def _request(self, session: Session, enc: Encounter, actor: Principal) -> None:
        """Notify the payer of the admission and send clinicals (once per stay)."""
        if enc.payer_class not in AUTHORIZING or authorizations.of_stay(session, enc.id):
            return
        now = self.clock.instant
        rng = self._rng("request", enc.visit_number)
        auth = authorizations.record(session, enc, AuthorizationInput(
            status="pending", reference_number=f"PA{rng.randrange(10**7, 10**8)}",
            level_of_care="inpatient", requested_at=now,
            payer_contact="Utilization management, 1-800-555-0142"), actor, now, self.site)
        channel = _pick(rng, [("portal", 5), ("fax", 3), ("phone", 2)])
        authorizations.communicate(session, enc, auth, CommunicationInput(
            at=now, direction="outbound", channel=channel,
            summary=f"Admission notification and clinical review sent ({CRITERIA_SET})"),
            actor, now)
        # most payers answer the same day; one in four takes one to three days to review
        wait = (rng.uniform(24, 72) if rng.random() < 0.25
                else rng.lognormvariate(math.log(7), 0.6))
        self._at(self._office(now + timedelta(hours=wait), rng), "decision", auth.id)

    def _auth(self, session: Session, auth_id: int) -> tuple[PayerAuthorization, Encounter]:
        auth = session.get(PayerAuthorization, auth_id)
        assert auth is not None
        return auth, locked(session, auth.encounter_id)

    def _update(self, session: Session, auth: PayerAuthorization, enc: Encounter,
                actor: Principal, reason: str, **changes: object) -> None:
        """A new status or answer on the authorization: what it says now, plus the changes."""
        now = self.clock.instant
        current = {f.name: getattr(auth, f.name) for f in fields(AuthorizationInput)}
        if "approved_days" in changes:
            current["approved_through"] = None  # counted again from the days
        authorizations.update(session, auth, enc, AuthorizationInput(**{**current, **changes}),
                              actor, now, self.site, reason=reason)

    def _tell(self, session: Session, enc: Encounter, auth: PayerAuthorization,
              actor: Principal, direction: str, channel: str, summary: str) -> None:
        authorizations.communicate(session, enc, auth, CommunicationInput(
            at=self.clock.instant, direction=direction, channel=channel, summary=summary),
            actor, self.clock.instant)

    def _decision(self, session: Session, _ref: Reference, auth_id: int) -> None:
        """The payer answers a request: approved days, a pend for information, or a denial."""
        auth, enc = self._auth(session, auth_id)
        if auth.status not in ("pending", "pended"):
            return
        now, actor = self.clock.instant, self._person(session, enc, "ur_nurse")
        rng = self._rng("decision", enc.visit_number, auth.version)
        if auth.status == "pending":  # the payers' first answers come in a fixed mix
            answer = ANSWERS[self.answered % len(ANSWERS)]
            self.answered += 1
        else:  # the information they asked for is in
            answer = "approved" if rng.random() < 0.85 else "denied"
        channel = _pick(rng, [("portal", 4), ("fax", 4), ("phone", 2)])
        if answer == "approved":
            days = rng.randint(2, 5)
            self._update(session, auth, enc, actor, "payer approved", status="approved",
                         approved_days=days, decided_at=now, payer_reviewer=PAYER_REVIEWER)
            self._tell(session, enc, auth, actor, "inbound", channel,
                       f"Approved {days} inpatient days through "
                       f"{auth.approved_through:%Y-%m-%d}; concurrent review before then")
        elif answer == "pended":
            self._update(session, auth, enc, actor, "payer pended", status="pended",
                         payer_reviewer=PAYER_REVIEWER)
            self._tell(session, enc, auth, actor, "inbound", channel,
                       "Pended: the payer asks for the latest progress notes and vital signs")
            self._at(self._office(now + timedelta(hours=rng.uniform(4, 26)), rng),
                     "decision", auth.id)
        else:
            self._update(session, auth, enc, actor, "payer denied", status="denied",
                         decided_at=now, payer_reviewer=PAYER_REVIEWER,
                         denial_reason="Inpatient criteria not met; observation level of "
                                       "care appropriate",
                         peer_to_peer="requested")
            self._tell(session, enc, auth, actor, "inbound", "fax",
                       "Denial received: inpatient criteria not met; peer-to-peer offered "
                       "within 2 business days")
            self._tell(session, enc, auth, actor, "outbound", "phone",
                       "Peer-to-peer requested for the attending with the payer's medical "
                       "director")
            self._at(self._office(now + timedelta(hours=rng.uniform(18, 40)), rng),
                     "peer_to_peer", auth.id)
        self._reevaluate(session, enc)

    def _peer_to_peer(self, session: Session, _ref: Reference, auth_id: int) -> None:
        """The peer-to-peer is held: the denial overturned, in part, or upheld (and appealed,
        or not)."""
        auth, enc = self._auth(session, auth_id)
        if auth.status != "denied" or auth.peer_to_peer != "requested":
            return
        now, actor = self.clock.instant, self._person(session, enc, "ur_nurse")
        rng = self._rng("p2p", enc.visit_number)
        # the demo shows an appeal: its first peer-to-peer upholds the denial
        outcome = _pick(rng, [("overturned", 4), ("partially_overturned", 2), ("upheld", 4)]
                        ) if self.appeals else "upheld"
        held = dict(peer_to_peer="held", peer_to_peer_at=now, peer_to_peer_outcome=outcome)
        if outcome == "upheld" and (not self.appeals or rng.random() < 0.5):
            self.appeals += 1
            deadline = now.astimezone(self.zone).date() + timedelta(days=60)
            self._update(session, auth, enc, actor, "peer-to-peer held: upheld", **held,
                         appeal_level=1, appeal_deadline=deadline, appeal_outcome="pending")
            self._tell(session, enc, auth, actor, "inbound", "phone",
                       "Peer-to-peer held: the payer's medical director upholds the denial")
            self._tell(session, enc, auth, actor, "outbound", "portal",
                       f"Level 1 appeal filed with the records; deadline {deadline:%Y-%m-%d}")
        elif outcome == "upheld":  # the denial stands: the stay's days are not paid
            self._update(session, auth, enc, actor, "peer-to-peer held: upheld", **held)
            self._tell(session, enc, auth, actor, "inbound", "phone",
                       "Peer-to-peer held: the payer's medical director upholds the denial")
        else:
            days = rng.randint(2, 4) if outcome == "overturned" else 1
            self._update(session, auth, enc, actor, f"peer-to-peer held: {outcome}", **held,
                         status="approved" if outcome == "overturned" else
                         "partially_approved", approved_days=days, decided_at=now)
            self._tell(session, enc, auth, actor, "inbound", "phone",
                       f"Peer-to-peer held: denial "
                       f"{codes.words(codes.PEER_TO_PEER_OUTCOMES, outcome).split(' ', 1)[1]}"
                       f"; {days} days approved")
        self._reevaluate(session, enc)

    def _ask_extension(self, session: Session, enc: Encounter, actor: Principal) -> None:
        """At a continued-stay review, approved days ending by tomorrow: ask for more."""
        now = self.clock.instant
        tomorrow = now.astimezone(self.zone).date() + timedelta(days=1)
        for auth in authorizations.of_stay(session, enc.id):
            if (auth.status in codes.APPROVING and auth.approved_through is not None
                    and auth.approved_through <= tomorrow and auth.id not in self.extending
                    and enc.discharge_time is None):
                self.extending.add(auth.id)
                self._tell(session, enc, auth, actor, "outbound", "portal",
                           "Concurrent review sent: clinicals for the continued stay")
                rng = self._rng("extension", enc.visit_number, auth.version)
                self._at(self._office(now + timedelta(hours=rng.uniform(3, 20)), rng),
                         "extension", auth.id)

    def _extension(self, session: Session, _ref: Reference, auth_id: int) -> None:
        auth, enc = self._auth(session, auth_id)
        self.extending.discard(auth_id)
        if auth.status not in codes.APPROVING or auth.approved_days is None:
            return
        actor = self._person(session, enc, "ur_nurse")
        rng = self._rng("extension", enc.visit_number, auth.version)
        more, status = ((rng.randint(2, 3), "approved") if rng.random() < 0.85
                        else (1, "partially_approved"))
        self._update(session, auth, enc, actor, "extension", status=status,
                     approved_days=auth.approved_days + more, decided_at=self.clock.instant)
        self._tell(session, enc, auth, actor, "inbound", "portal",
                   f"Continued stay: {more} more days approved, through "
                   f"{auth.approved_through:%Y-%m-%d}")
        self._reevaluate(session, enc)

    # -- barriers ----------------------------------------------------------------------------

    def _rounds(self, session: Session, reference: Reference) -> None:
        """Morning rounds: case managers name what stands in the way of some discharges."""
        now = self.clock.instant
        today = now.astimezone(self.zone).date()
        blocked = set(session.scalars(select(Barrier.encounter_id).where(
            Barrier.resolved_at.is_(None), Barrier.voided_at.is_(None))))
        stays = session.scalars(select(Encounter).where(
            Encounter.status.in_(OPEN_ENCOUNTER_STATUSES), Encounter.care_status == "inpatient",
            Encounter.admit_time <= now - timedelta(hours=20)).order_by(Encounter.id))
        by_category: dict[str, list[str]] = {}
        for reason in reference.delay_reasons.values():
            by_category.setdefault(reason.category, []).append(reason.code)
        for enc in stays:
            if enc.id in blocked:
                continue
            rng = self._rng("rounds", today, enc.visit_number)
            norm = reference.drg(enc.working_drg)
            admitted = enc.admit_time.astimezone(self.zone).date() if enc.admit_time else today
            near = ((enc.expected_discharge_date is not None
                     and today >= enc.expected_discharge_date - timedelta(days=1))
                    or (norm is not None and (today - admitted).days >= norm.gmlos - 1))
            if rng.random() >= (0.5 if near else 0.12):
                continue
            category = _pick(rng, [c for c in CATEGORIES if c[0] in by_category])
            code = rng.choice(sorted(by_category[category]))
            self._at(now + timedelta(minutes=rng.uniform(15, 240)), "open", enc.id, code)

    def _open(self, session: Session, reference: Reference, enc_id: int, code: str) -> None:
        enc = locked(session, enc_id)
        if enc.discharge_time is not None:
            return
        now, actor = self.clock.instant, self._person(session, enc, "case_manager")
        category = reference.delay_reasons[code].category
        owner = (enc.attending_name if category == "physician" and enc.attending_name
                 else self._display(actor.name) or actor.name)
        barrier = barriers.open_barrier(session, enc, BarrierInput(
            reason_code=code, text=BARRIER_NOTE.get(category), owner=owner[:100]),
            actor, now, self.site, reference)
        rng = self._rng("barrier", enc.visit_number, code, now.isoformat())
        if rng.random() < 0.82:  # the rest are still in the way when the demo starts
            hours = rng.lognormvariate(math.log(20), 1.0)
            self._at(now + timedelta(hours=max(hours, 1.0)), "resolve", barrier.id)
        self._reevaluate(session, enc)

    def _resolve(self, session: Session, reference: Reference, barrier_id: int) -> None:
        barrier = session.get(Barrier, barrier_id)
        assert barrier is not None
        enc = locked(session, barrier.encounter_id)
        if barrier.resolved_at is not None or barrier.voided_at is not None:
            return
        left = enc.discharge_time
        barriers.resolve(session, barrier, self._person(session, enc, "case_manager"),
                         self.clock.instant, at=left,
                         resolution="Closed at the discharge" if left else
                         RESOLUTION.get(barrier.category))
        self._reevaluate(session, enc)

    # -- avoidable days ----------------------------------------------------------------------

    def _close(self, session: Session, reference: Reference) -> None:
        """The discharge checklist: a barrier still open when the patient left is closed
        at the discharge."""
        left = session.scalars(select(Barrier.id).join(Encounter).where(
            Barrier.resolved_at.is_(None), Barrier.voided_at.is_(None),
            Encounter.discharge_time.is_not(None)).order_by(Barrier.id)).all()
        for barrier_id in left:
            self._resolve(session, reference, barrier_id)

    def _night(self, session: Session, reference: Reference) -> None:
        """Close the barriers of stays that have left; the engine proposes avoidable days
        from open barriers on the days just past; UR decides each in office hours."""
        self._close(session, reference)
        now = self.clock.instant
        since = now - timedelta(days=2)
        stays = list(session.scalars(select(Encounter).where(Encounter.id.in_(
            select(Barrier.encounter_id).where(Barrier.voided_at.is_(None))))
            .where(Encounter.status.in_(OPEN_ENCOUNTER_STATUSES)
                   | (Encounter.discharge_time >= since)).order_by(Encounter.id)))
        for enc in stays:
            enc = locked(session, enc.id)
            # the rules' evaluation proposes days too (on any event or tick); the night's
            # pass catches the rest, and UR plans to decide every proposal once
            made = avoidable_days.derive(session, enc, now, self.zone, reference)
            proposed = [d for d in avoidable_days.of_stay(session, enc.id)
                        if d.status == avoidable_days.PROPOSED and d.id not in self.deciding]
            for day in proposed:
                self.deciding.add(day.id)
                rng = self._rng("proposed", enc.visit_number, day.first_day)
                self._at(self._office(now + timedelta(hours=rng.uniform(8, 40)), rng),
                         "decide", day.id)
            if made:
                self._reevaluate(session, enc)

    def _decide(self, session: Session, _ref: Reference, day_id: int) -> None:
        day = session.get(AvoidableDay, day_id)
        assert day is not None
        enc = locked(session, day.encounter_id)
        if day.status != avoidable_days.PROPOSED or day.voided_at is not None:
            return
        rng = self._rng("decide", enc.visit_number, day.first_day)
        confirm = rng.random() < 0.8
        avoidable_days.decide(
            session, day, confirm, self._person(session, enc, "ur_nurse"), self.clock.instant,
            note=None if confirm else "Not avoidable: still on IV therapy that day")
        self._reevaluate(session, enc)

    def _mark_avoidable(self, session: Session, enc: Encounter, actor: Principal) -> None:
        """At an excess-days review, UR marks yesterday avoidable on some stays."""
        reference = self._reference()
        now = self.clock.instant
        yesterday = now.astimezone(self.zone).date() - timedelta(days=1)
        first = days_of(enc, now, self.zone).first
        rng = self._rng("excess", enc.visit_number, yesterday)
        if reference is None or first is None or yesterday < first or rng.random() >= 0.5:
            return
        taken = session.scalar(select(AvoidableDay.id).where(
            AvoidableDay.encounter_id == enc.id, AvoidableDay.voided_at.is_(None),
            AvoidableDay.status != avoidable_days.REJECTED,
            AvoidableDay.first_day <= yesterday, AvoidableDay.last_day >= yesterday))
        if taken is not None:
            return
        code = _pick(rng, UR_REASONS)
        avoidable_days.record(session, enc, AvoidableDayInput(
            first_day=yesterday, reason_code=code, note=UR_NOTES[code]),
            actor, now, self.site, reference)
