"""The demo hospital: a week of simulated history loaded in event time, ending at "now".

The clock follows the messages while the history loads (engine.intake.replay, the path of
`engine ingest --clock=events`), so each output carries the time it arose and each stay's
hours count between its own events; once the stream reaches the moment the demo starts, a
last tick evaluates every stay at that "now" and the server then runs at wall time. While
the history loads, the staffing file's people work their lists as a real department does:
most tasks are completed before they fall due (through the task lifecycle, as the worklist
would), in the day shift where the deadline allows, and a stated small share late, so the
first sign-in shows a live worklist, not a week of untouched work; and they keep the UR
record as they go (engine.tools.demo_ur), so the department's numbers are not empty.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.core.clock import FixedClock
from engine.core.config import Settings
from engine.core.roles import Principal
from engine.core.vocabulary import OPEN_TASK_STATUSES, OutputKind, OutputStatus
from engine.intake.replay import advance, replay
from engine.planning.evaluation import after_work
from engine.planning.tick import tick
from engine.storage.models import Encounter, RuleOutput
from engine.tools.demo_ur import Desk
from engine.tools.simulate import simulate
from engine.work import disposition, lifecycle
from engine.work.staffing import Staffing
from engine.work.ur_record import reviews
from engine.work.ur_record.inputs import ReviewInput
from engine.work.ur_record.problems import RecordInvalid

BEDS, DAYS, SEED = 60, 7, 1  # the demo: a 60-bed hospital over the last week
# The share of tasks done before they fall due. Departments audit timeliness of notices and
# reviews and expect nearly all on time; a handful run late (a patient off the unit, a
# family not reachable), which is what a supervisor's overdue view is for.
ON_TIME = 0.92
SHIFT = (time(7, 30), time(19, 0))  # case management and UR work the day shift
OUTCOME = "Done (simulated demo staff)"


@dataclass
class DemoLoad:
    """What the demo loaded: message outcomes, the "now" it ends at, the staff's work."""

    now: datetime
    counts: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    late: int = 0
    refused: list[str] = field(default_factory=list)  # UR record writes a service refused


class Staff:
    """The staffing file's people completing their open tasks as stream time passes."""

    def __init__(self, runtime: Runtime, clock: FixedClock, seed: int,
                 on_time: float = ON_TIME) -> None:
        self.runtime, self.clock, self.seed, self.on_time = runtime, clock, seed, on_time
        self.staffing: Staffing = runtime.staffing
        self.zone = runtime.site.zone
        self.planned: list[tuple[datetime, int]] = []  # (when it is done, task id)
        self.seen = 0  # the highest task id planned so far
        self.completed = self.late = 0
        self.desk = Desk(runtime, clock, seed, self.staffing)  # what they record as they go

    def work_until(self, until: datetime) -> None:
        """Complete every task, and do the desk's record-keeping, whose planned time comes
        before `until`, each at its time (the stays' boundaries up to then evaluated first,
        as they would have been)."""
        self._discover()
        while True:
            task_at = self.planned[0][0] if self.planned else None
            desk_at = self.desk.next_at()
            if desk_at is not None and desk_at <= until and (task_at is None
                                                             or desk_at < task_at):
                advance(self.runtime.intake, self.clock, desk_at)
                self.desk.run_next()
            elif task_at is not None and task_at <= until:
                when, task_id = heapq.heappop(self.planned)
                advance(self.runtime.intake, self.clock, when)
                self._complete(task_id)
            else:
                return
            self._discover()

    def _discover(self) -> None:
        """Plan the tasks raised since the last look; and work planned past a discharge that
        has since happened is done at the discharge (the case manager's discharge checklist:
        a notice still owed is given, a review still open is closed, late but not left)."""
        with self.runtime.sessions() as session:
            rows = session.execute(
                select(RuleOutput.id, RuleOutput.fired_at, RuleOutput.due_at)
                .where(RuleOutput.kind == OutputKind.TASK, RuleOutput.id > self.seen)
                .order_by(RuleOutput.id)).all()
            planned = dict((task_id, when) for when, task_id in self.planned)
            left = session.execute(
                select(RuleOutput.id, RuleOutput.fired_at, Encounter.discharge_time)
                .join(Encounter, Encounter.id == RuleOutput.encounter_id)
                .where(RuleOutput.id.in_(planned), Encounter.discharge_time.is_not(None))
            ).all() if planned else []
        moved = False
        for task_id, fired, discharged in left:
            if discharged is None:
                continue
            left_at = _aware(discharged)
            if _aware(fired) < left_at < planned[task_id]:
                planned[task_id] = max(left_at, self.clock.instant) + timedelta(minutes=10)
                moved = True
        if moved:
            self.planned = [(when, task_id) for task_id, when in planned.items()]
            heapq.heapify(self.planned)
        for task_id, fired, due in rows:
            self.seen = max(self.seen, task_id)
            plan = self._plan(task_id, _aware(fired), _aware(due) if due is not None else None)
            heapq.heappush(self.planned, (plan, task_id))

    def _plan(self, task_id: int, fired: datetime, due: datetime | None) -> datetime:
        """When this task gets done: before its due time (in the day shift where that
        leaves time), or for the late share some hours after it."""
        rng = random.Random(f"staff:{self.seed}:{task_id}")
        if due is not None and rng.random() >= self.on_time:
            self.late += 1
            return max(due, fired) + timedelta(hours=rng.lognormvariate(math.log(16), 0.9))
        if due is None:
            return self._in_shift(fired + timedelta(hours=rng.uniform(1, 30)), fired, None, rng)
        if due - fired <= timedelta(minutes=30):  # due at once: stat work, done within the hour
            return fired + timedelta(minutes=rng.uniform(10, 50))
        when = fired + (due - fired) * rng.uniform(0.15, 0.85)
        return self._in_shift(when, fired, due, rng)

    def _in_shift(self, when: datetime, fired: datetime, due: datetime | None,
                  rng: random.Random) -> datetime:
        """Move a night-time completion to the next morning if the deadline allows, else to
        the evening before; work that allows neither is done by the night shift."""
        local = when.astimezone(self.zone)
        if SHIFT[0] <= local.time() < SHIFT[1]:
            return when
        day = local.date() + timedelta(days=1 if local.time() >= SHIFT[1] else 0)
        morning = (datetime.combine(day, SHIFT[0], tzinfo=self.zone)
                   + timedelta(minutes=rng.uniform(0, 120)))
        if due is None or morning < due - timedelta(minutes=15):
            return morning.astimezone(UTC)
        evening = (datetime.combine(day - timedelta(days=1), SHIFT[1], tzinfo=self.zone)
                   - timedelta(minutes=rng.uniform(5, 90)))
        return evening.astimezone(UTC) if evening > fired else when

    def _actor(self, task: RuleOutput) -> Principal:
        """The task's owner, else a person of its queue's role, else a supervisor."""
        person = self.staffing.person(task.owner)
        if person is None:
            role = self.staffing.role_for_queue(task.queue)
            person = (next((p for p in self.staffing.people if p.role == role), None)
                      or next((p for p in self.staffing.people if p.role == "supervisor"),
                              None))
        if person is None:
            return Principal(name="demo.staff", kind="user", role="supervisor")
        return Principal(name=person.name, kind="user", role=person.role)

    def _complete(self, task_id: int) -> None:
        now = self.clock.instant
        rulebook = self.runtime.rules.current
        try:
            with self.runtime.sessions() as session, session.begin():
                task = lifecycle.load(session, task_id)
                if (task is None or task.status != OutputStatus.ACTIVE
                        or (task.task_status or "ready") not in OPEN_TASK_STATUSES):
                    return  # the rules withdrew it, or someone else closed it
                plan = (task.detail or {}).get(disposition.PLAN_TASK) or {}
                actor = self._actor(task)
                self.desk.on_task(session, task, actor)  # the review, the authorization...
                if (task.detail or {}).get("requires_record") == "utilization_review" \
                        and reviews.for_task(session, task.id) is None \
                        and not self._document_review(session, task, now, actor):
                    return  # no review can be documented: the task stays open
                lifecycle.transition(session, task, "complete", actor, now=now,
                                     outcome=OUTCOME, staffing=self.staffing,
                                     chosen=plan.get("primary") if plan else None)
                after_work(session, rulebook, task, now)
                self.completed += 1
        except lifecycle.OutOfOrder:  # it waits for another task (the follow-up IM for the IM)
            heapq.heappush(self.planned, (now + timedelta(minutes=30), task_id))

    def _document_review(self, session, task: RuleOutput, now: datetime,
                         actor: Principal) -> bool:
        """A review task the desk does not simulate (status, short-stay...) is done by
        documenting the review: criteria met, inpatient, the site's cadence for the next one
        (retrospective once the patient has left)."""
        enc = task.encounter
        gone = enc.discharge_time is not None and enc.discharge_time <= now
        kind = ("retrospective" if gone else "initial" if task.code == "initial-ur-review"
                else "status_change" if task.code in ("status-review", "short-stay-review")
                else "continued_stay")
        try:
            reviews.record(session, enc, ReviewInput(
                review_type=kind, reviewed_on=now.astimezone(self.runtime.site.zone).date(),
                level_of_care="inpatient", criteria_result="met", criteria_set="InterQual",
                task_id=task.id), self.desk.reviewer(session, enc, actor), now,
                self.runtime.site)
        except RecordInvalid:
            return False
        return True


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def load_demo(settings: Settings, *, now: datetime | None = None, beds: int = BEDS,
              days: int = DAYS, seed: int = SEED, on_time: float = ON_TIME,
              progress: Callable[[int, int], None] | None = None) -> DemoLoad:
    """Simulate `days` of a `beds`-bed hospital ending just before `now` (the wall clock by
    default) and load it in event time with staff working; then a tick at `now`."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    clock = FixedClock(datetime(1900, 1, 1, tzinfo=UTC))
    # The history is rebuilt on every start: its load need not survive a power cut (SQLite
    # NORMAL skips the fsync per commit; the server then runs with the configured setting).
    runtime = Runtime.open(settings.model_copy(update={"sqlite_synchronous": "NORMAL"}),
                           clock=clock)
    try:
        zone = runtime.site.zone
        first = (now - timedelta(days=days)).astimezone(zone).date()
        hospital = simulate(beds, (now.astimezone(zone).date() - first).days + 1, seed,
                            runtime.site, start=first, until=now - timedelta(minutes=1))
        result = DemoLoad(now=now)
        staff = Staff(runtime, clock, seed, on_time)
        staff.desk.plan_days(first, now.astimezone(zone).date())
        total = len(hospital.messages)

        def count(receipt) -> None:
            result.counts[receipt.outcome] += 1
            if progress is not None:
                progress(sum(result.counts.values()), total)

        replay(runtime.intake, clock, hospital.messages, on_receipt=count,
               meanwhile=staff.work_until)
        staff.desk.finish(now)
        staff.work_until(now)
        advance(runtime.intake, clock, now)  # every boundary up to now, in order
        if runtime.rules.current is not None:  # and every stay as it stands at now
            tick(runtime.sessions, runtime.rules.current, now, all_open=True)
        result.completed, result.late = staff.completed, staff.late
        result.refused = staff.desk.refused
        return result
    finally:
        runtime.close()
