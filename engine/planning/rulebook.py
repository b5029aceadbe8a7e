"""The loaded rulesets at work: evaluate an encounter, reconcile its outputs, hand new and
withdrawn tasks to the work layer with the engine's staffing, set the stay's clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from engine.core.site import SiteProfile
from engine.core.vocabulary import EncounterStatus, OutputKind, OutputStatus
from engine.planning import held, snapshots
from engine.planning.prefetch import Prefetched, prefetch
from engine.planning.reconcile import Changes, reconcile
from engine.rules import snapshot as snapshot_data
from engine.rules.compile import Book, compile_book, output_name
from engine.rules.facts import FROM_OUTPUTS, Derived, derive, task_facts
from engine.rules.loader import load_folder
from engine.rules.matching import Firing, Matcher
from engine.rules.outputs import Desired, desired_outputs
from engine.rules.reference import load_reference
from engine.storage.models import Decision, Encounter, RuleOutput
from engine.work import decisions, raised
from engine.work.staffing import Staffing, from_file
from engine.work.ur_record import avoidable_days

log = logging.getLogger("engine.rules")

# After discharge, time-based rules (follow-up calls, appointments) stop mattering.
POST_DISCHARGE_HORIZON = timedelta(days=30)
# Evaluations of one stay at one instant until the facts read from its own tasks settle: a
# chain of rules on other rules' tasks settles in as many rounds as it has links.
MAX_ROUNDS = 5


@dataclass
class Evaluation:
    snapshot: snapshot_data.Snapshot
    derived: Derived
    firings: list[Firing]
    changes: Changes
    # {key: decision}: work the rules want that a person's decision holds back
    withheld: dict[str, Decision] = field(default_factory=dict)
    # the stay's decisions that still hold (whether or not their rule fires now)
    decisions: list[Decision] = field(default_factory=list)


def _stopped(enc: Encounter) -> str | None:
    """Why no rule may fire for this stay (its outputs are cancelled with it), if so."""
    if enc.status == EncounterStatus.CANCELLED:
        return "encounter cancelled"
    if enc.patient is not None and enc.patient.active is False:
        return "person inactivated (A29)"
    return None


def _merge(session: Session, total: Changes, step: Changes) -> None:
    """Add one round's changes to the evaluation's. What a round raised and a later round
    of the same evaluation withdrew never existed: it is dropped, not shown as raised and
    cancelled in the same second."""
    for row in step.cancelled:
        if any(row is c for c in total.created):
            total.created = [c for c in total.created if c is not row]
            total.updated = [u for u in total.updated if u is not row]
            if row in session.new:
                session.expunge(row)
            else:
                session.delete(row)
        else:
            total.cancelled.append(row)
    total.created += step.created
    total.updated += [row for row in step.updated
                      if not any(row is c for c in (*total.created, *total.updated))]


def _nearest_second(at: datetime) -> datetime:
    return (at + timedelta(microseconds=500_000)).replace(microsecond=0)


class Rulebook:
    def __init__(self, book: Book, site: SiteProfile, *, staffing_file: Path | None) -> None:
        self.book = book
        self.site = site
        # Who new work goes to: the file the engine was started with, re-read when it changes.
        # Required, so no path that raises tasks can forget it; None (no one: tasks wait in
        # their queues) only where nothing is assigned, as in the rules benchmark.
        self.staffing_file = staffing_file
        self.zone = site.zone
        self.matcher = Matcher(book)
        self.icu_units = frozenset(site.icu_units)
        # The facts from the stay's own tasks that some rule reads: only these can make an
        # evaluation run again (none, and every evaluation is one round).
        self._reads_outputs = frozenset(f for r in book.rules for f in r.facts) & FROM_OUTPUTS

    @classmethod
    def load(cls, folder: Path, site: SiteProfile, *, staffing_file: Path | None) -> Rulebook:
        """Load and compile every ruleset in `folder`; raises RulesetError, never half-loads."""
        files = load_folder(folder)
        book = compile_book(files, load_reference(folder / "reference"))
        return cls(book, site, staffing_file=staffing_file)

    @property
    def staffing(self) -> Staffing:
        return from_file(self.staffing_file)

    @property
    def version(self) -> str:
        return self.book.version

    def facts(self, snap: snapshot_data.Snapshot, now: datetime) -> Derived:
        return derive(snap, now, self.zone, self.book.reference, self.icu_units,
                      self.site.review_interval_days)

    def evaluate_encounter(self, session: Session, enc: Encounter, now: datetime,
                           *, write: bool = True, read: Prefetched | None = None,
                           ) -> Evaluation:
        """Facts -> rules -> reconciled outputs and the next time to look again.

        Some facts are read from the stay's own tasks (FROM_OUTPUTS: open, completed and
        overdue task types): when reconciling changes them, the rules run again on the
        changed tasks, up to MAX_ROUNDS, so an output that rests on another output
        withdrawn (or raised) in this evaluation follows it at once, not at some later look.
        `read`: what a batch of evaluations fetched beforehand (engine.planning.prefetch);
        read here for this stay alone otherwise.
        """
        now = now.astimezone(UTC)
        read = read or prefetch(session, [enc])
        existing = list(read.outputs[enc.id])
        stopped = _stopped(enc)
        records = read.records.get(enc.id)
        if write and not stopped and records is not None and (
                records.barriers or any(d.status == avoidable_days.PROPOSED
                                        for d in records.avoidable_days)):
            # Whole past days with a barrier open past the expected discharge or the GMLOS
            # are proposed as avoidable before the facts are read, so the rules see them;
            # proposals whose barrier was voided (none is left open) are voided with it.
            records.avoidable_days += avoidable_days.derive(session, enc, now, self.zone,
                                                            self.book.reference)
        snap = snapshots.load(enc, existing, read.history[enc.id], read.labs[enc.id],
                              records)
        derived = self.facts(snap, now)
        firings = [] if stopped else self.matcher.match(derived, snap.diagnoses)
        changes = Changes()
        firings, desired, withheld = self._wanted(firings, derived, snap,
                                                  read.decisions[enc.id], now, write)
        if not write:
            return Evaluation(snap, derived, firings, changes, withheld, read.decisions[enc.id])
        reason = stopped or "conditions no longer hold"
        for n in range(1, MAX_ROUNDS + 1):
            step = reconcile(session, self.book, enc, snap, existing, desired, now,
                             self.zone, reason,
                             {key: decisions.said(d) for key, d in withheld.items()})
            _merge(session, changes, step)
            existing += step.created
            if stopped or not self._reads_outputs or not any(
                    o.kind == OutputKind.TASK
                    for o in (*step.created, *step.cancelled, *step.updated)):
                break
            moved = snapshots.with_outputs(snap, existing)
            after = task_facts(moved, now, self.zone)
            if all(after.get(f) == derived.values.get(f) for f in self._reads_outputs):
                break
            if n == MAX_ROUNDS:
                log.error("encounter id=%s: the rules did not settle in %d rounds (a rule "
                          "withdraws what another raises?); outputs as of the last round",
                          enc.id, MAX_ROUNDS)
                break
            snap, derived = moved, self.facts(moved, now)
            firings = self.matcher.match(derived, snap.diagnoses)
            firings, desired, withheld = self._wanted(firings, derived, snap,
                                                      read.decisions[enc.id], now, True)
        if changes.created or changes.cancelled:
            raised.follow(session, enc, changes.created, changes.cancelled, now,
                          self.staffing)
        enc.evaluated_at = now
        enc.next_evaluation_at = None if stopped else self.next_boundary(
            snap, derived, now, existing)
        return Evaluation(snap, derived, firings, changes, withheld, read.decisions[enc.id])

    def _wanted(self, firings: list[Firing], derived: Derived,
                snap: snapshot_data.Snapshot, holding: list[Decision], now: datetime,
                write: bool) -> tuple[list[Firing], list[Desired], dict[str, Decision]]:
        """The firings, what they want raised, and what people's decisions withhold; with a
        proposal declined the rules are matched again reading it as not raised."""
        wanted = desired_outputs(self.book, firings, derived.values)
        desired, withheld = held.withhold(self.book, derived.values, snap.diagnoses, wanted,
                                          holding, now, write=write)
        declined: frozenset[str] = frozenset()
        for _ in range(len(wanted) + 1):  # until no newly raised proposal is declined too
            more = declined | {d.fields["code"] for d in wanted if d.key in withheld
                               and d.fields.get("kind") == OutputKind.PROPOSAL}
            if more == declined:
                break
            # the rules run again reading the declined proposals as not raised (home is the
            # default again), and the plan is ranked again without them
            declined = frozenset(more)
            firings = self.matcher.match(derived, snap.diagnoses, frozenset(
                output_name(OutputKind.PROPOSAL, code) for code in declined))
            wanted = desired_outputs(self.book, firings, derived.values, declined)
            desired, withheld = held.withhold(self.book, derived.values, snap.diagnoses, wanted,
                                              holding, now, write=write)
        return firings, desired, withheld

    def next_boundary(self, snap: snapshot_data.Snapshot, derived: Derived, now: datetime,
                      outputs: list[RuleOutput]) -> datetime | None:
        """The earliest future instant at which some rule's condition or a due time flips."""
        now = now.astimezone(UTC)
        if snap.status == EncounterStatus.CANCELLED:
            return None
        if snap.discharge_time is not None and now - snap.discharge_time > POST_DISCHARGE_HORIZON:
            return None
        candidates: list[datetime] = []
        if snap.discharge_time is not None and snap.discharge_time > now:
            candidates.append(snap.discharge_time)  # a discharge stated ahead of the clock
        values = derived.values
        for fact, op, threshold in self.book.thresholds:
            if fact not in derived.hourly:
                continue
            value = values.get(fact)
            if not isinstance(value, int | float) or value >= threshold + 1 / 3600:
                continue
            hours = threshold - value
            strict = op in ("greater_than", "at_most")
            if strict:
                hours += 1 / 3600  # strictly past the threshold
            if hours > 0:
                at = now + timedelta(hours=hours)
                # Facts keep hours to 4 decimals, so a look taken at an odd instant (a
                # midnight, a record written) lands a fraction of a second off the second
                # after the crossing; the second past it is a whole second from the anchor.
                candidates.append(_nearest_second(at) if strict else at)
        # A barrier still open on a stay with an expected discharge date or a GMLOS may make
        # the day ending at midnight avoidable (engine.work.ur_record.avoidable_days.derive).
        derives = snap.discharge_time is None and any(
            b.resolved_at is None for b in snap.barriers) and (
            snap.expected_discharge_date is not None or "gmlos_days" in values)
        if derived.daily & self.book.daily_facts or derives:
            tomorrow = now.astimezone(self.zone).date() + timedelta(days=1)
            candidates.append(datetime.combine(tomorrow, time(0), tzinfo=self.zone)
                              + timedelta(seconds=1))
        candidates += [at + timedelta(seconds=1) for fact, at in derived.changes_at.items()
                       if fact in self.book.daily_facts and at > now]
        candidates += [o.due_at + timedelta(seconds=1) for o in outputs
                       if o.status == OutputStatus.ACTIVE and o.due_at is not None
                       and o.due_at > now]
        return min(candidates) if candidates else None
