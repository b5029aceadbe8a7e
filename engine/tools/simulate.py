"""A synthetic hospital: a reproducible ADT stream, and the truth it should produce.

Arrivals follow the hour of day and the weekday; patients take ED -> observation ->
inpatient paths or come in electively; payer and age mix, common inpatient diagnoses,
lognormal stays, ICU and ward transfers, daily A08 updates with expected discharge dates
and the working DRG, and discharges with dispositions. At a set rate the feed misbehaves
the way real ones do: duplicates, late A08s, cancelled admissions, transfers and
discharges, and merges of duplicate registrations. Every message is built by
engine.hl7.build, as the ruleset test stories' are. Nothing here is real patient data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.core.site import SiteProfile
from engine.core.vocabulary import EncounterStatus
from engine.hl7.build import StoryStep, site_message
from engine.tools.synthetic_names import synthetic_name

HOURLY = [2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 7, 7, 7, 7, 7, 7, 6, 6, 5, 4, 3, 2]
WEEKDAY = [1.1, 1.05, 1.0, 1.0, 1.0, 0.85, 0.8]
PAYERS = [("medicare", 30), ("medicare_advantage", 15), ("medicaid", 20), ("commercial", 28),
          ("self_pay", 7)]
CONDITIONS = [  # (ICD-10-CM, weight, typical service)
    ("I63.9", 8, "NEU"), ("S72.001A", 6, "ORT"), ("I50.9", 12, "CAR"), ("J18.9", 12, "MED"),
    ("A41.9", 10, "MED"), ("J44.1", 9, "MED"), ("M17.11", 6, "ORT"), ("N39.0", 7, "MED"),
    ("N17.9", 6, "MED"), ("K92.2", 5, "MED"), ("I21.4", 5, "CAR"), ("C34.90", 3, "ONC"),
]
COMORBID = ["E11.9", "I10", "N18.30", "J44.9", "F10.20", "Z59.01", "Z60.2", "E66.9"]
# The working MS-DRG CDI assigns on the first inpatient day, by principal diagnosis and by
# the number of comorbidities (none, one: with CC, two: with MCC), so the stays have a GMLOS
# (LOS index, excess days) without drawing on the stream's random numbers.
WORKING_DRG = {
    "I63.9": ("066", "065", "064"), "S72.001A": ("482", "481", "480"),
    "I50.9": ("293", "292", "291"), "J18.9": ("195", "194", "193"),
    "A41.9": ("872", "872", "871"), "J44.1": ("192", "191", "190"),
    "M17.11": ("470", "470", "469"), "N39.0": ("690", "690", "689"),
    "N17.9": ("684", "683", "682"), "K92.2": ("379", "378", "377"),
    "I21.4": ("282", "281", "280"), "C34.90": ("182", "181", "180"),
}
DISPOSITIONS = [("01", 58), ("06", 15), ("03", 12), ("62", 4), ("51", 2), ("63", 1),
                ("20", 2), ("02", 6)]
WARDS = ["4WEST", "5EAST", "3NORTH", "6SOUTH"]


@dataclass
class Truth:
    """What the engine should hold for one visit once the whole stream is in."""

    mrn: str
    status: str = EncounterStatus.IN_PROGRESS
    care_status: str | None = None
    unit: str | None = None
    discharge_time: datetime | None = None
    disposition: str | None = None
    units: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"mrn": self.mrn, "status": self.status, "care_status": self.care_status,
                "unit": self.unit, "disposition": self.disposition,
                "discharge_time": self.discharge_time.astimezone(UTC).isoformat()
                if self.discharge_time else None}


@dataclass
class Simulation:
    messages: list[bytes]
    truth: dict[str, Truth]
    counts: dict[str, int]


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]):
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _working_drg(diagnoses: list[tuple[str, str]]) -> str:
    principal, comorbid = diagnoses[0][0], len(diagnoses) - 1
    return WORKING_DRG[principal][min(comorbid, 2)]


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class _Hospital:
    def __init__(self, beds: int, days: int, seed: int, start: date, site: SiteProfile,
                 mess: float, discharge_at_end: bool = False,
                 until: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.discharge_at_end = discharge_at_end
        self.bases: dict[str, dict] = {}  # visit -> what its messages carry
        self.beds, self.days, self.start, self.site, self.mess = beds, days, start, site, mess
        self.zone = site.zone
        self.end = until or datetime.combine(start + timedelta(days=days), time(0),
                                             tzinfo=self.zone)
        self.events: list[tuple[datetime, int, StoryStep]] = []
        self.truth: dict[str, Truth] = {}
        self.counts: dict[str, int] = {}
        self.seq = 0
        self.merges: list[tuple[datetime, str, str, str]] = []

    def add(self, when: datetime, event: StoryStep, truth: Truth | None = None) -> bool:
        """Queue an event if it happens before the end; update the truth as it would."""
        if when >= self.end:
            return False
        self.seq += 1
        self.events.append((when, self.seq, event))
        self.counts[event.event] = self.counts.get(event.event, 0) + 1
        if truth is not None:
            if event.status:
                truth.care_status = event.status
            if event.unit and event.event not in ("A11", "A13"):
                truth.unit = event.unit
                truth.units.append(event.unit)
        return True

    def run(self) -> Simulation:
        per_day = self.beds * 0.8 / 3.8
        patient = 0
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            for _ in range(_poisson(self.rng, per_day * WEEKDAY[day.weekday()])):
                hour = self.rng.choices(range(24), weights=HOURLY)[0]
                arrival = datetime.combine(day, time(hour, self.rng.randrange(60)),
                                           tzinfo=self.zone)
                patient += 1
                self.stay(patient, arrival)
        if self.discharge_at_end:  # the census closes: no stay is left open
            last = self.end - timedelta(seconds=1)
            for visit, truth in self.truth.items():
                if truth.status == EncounterStatus.IN_PROGRESS:
                    self.discharge(last, self.bases[visit], truth)
        return self.deliver()

    def stay(self, n: int, arrival: datetime) -> None:
        rng = self.rng
        payer = _pick(rng, PAYERS)
        old = payer.startswith("medicare")
        born = date(arrival.year - (rng.randint(65, 95) if old else rng.randint(18, 64)),
                    rng.randint(1, 12), rng.randint(1, 28))
        code, _w, service = _pick(rng, [((c, w, s), w) for c, w, s in CONDITIONS])
        dx = [(code, "A")] + [(c, "W") for c in rng.sample(COMORBID, rng.randint(0, 2))]
        mrn, visit = f"S{n:06d}", f"SV{n:06d}"
        if rng.random() < self.mess:  # a duplicate registration, merged later (A40)
            real = f"S{n:06d}"
            mrn = f"D{n:06d}"
            self.merges.append((arrival + timedelta(hours=rng.uniform(2, 30)), real, mrn,
                                f"SV{n:06d}"))
        truth = Truth(mrn=f"S{n:06d}")
        self.truth[visit] = truth
        sex = rng.choice("FM")
        base = dict(visit=visit, mrn=mrn, payer=payer, birth_date=born, sex=sex,
                    name=synthetic_name(self.seed, n, sex), diagnoses=dx, service=service)
        self.bases[visit] = base
        path = _pick(rng, [("ed_obs", 25), ("ed_inpatient", 45), ("ed_obs_inpatient", 10),
                           ("elective", 20)])
        ward = rng.choice(WARDS)
        t = arrival
        if path == "elective":
            self.add(t - timedelta(days=2), StoryStep(event="A05",
                                                      status="preadmit", **base), truth)
            if not self.add(t, StoryStep(event="A01", status="inpatient", unit=ward,
                                         admission_type="R", **base), truth):
                return
            if rng.random() < self.mess:  # booked in error: admission cancelled
                c = t + timedelta(minutes=rng.randint(5, 90))
                if self.add(c, StoryStep(event="A11", **base)):
                    truth.status = EncounterStatus.CANCELLED
                return
        else:
            if not self.add(t, StoryStep(event="A04", status="emergency", unit="ED",
                                         admission_type="E", admit_source="7", **base), truth):
                return
            t += timedelta(hours=rng.uniform(2, 7))
            if path.startswith("ed_obs"):
                if not self.add(t, StoryStep(event="A08", status="observation",
                                             unit="OBS", **base), truth):
                    return
                obs = timedelta(hours=rng.lognormvariate(math.log(22), 0.45))
                if path == "ed_obs":
                    self.discharge(t + obs, base, truth)
                    return
                t += obs
            if not self.add(t, StoryStep(event="A06", status="inpatient", unit=ward,
                                         **base), truth):
                return
        self.inpatient(t, base, truth, ward)

    def inpatient(self, t: datetime, base: dict, truth: Truth, ward: str) -> None:
        rng = self.rng
        los = timedelta(days=rng.lognormvariate(math.log(3.4), 0.6))
        end = t + los
        moves: list[tuple[datetime, str]] = []
        if rng.random() < 0.12:
            icu_in = t + los * rng.uniform(0.05, 0.3)
            moves += [(icu_in, "ICU"), (icu_in + los * rng.uniform(0.1, 0.3), ward)]
        elif rng.random() < 0.15:
            moves.append((t + los * rng.uniform(0.3, 0.7),
                          rng.choice([w for w in WARDS if w != ward])))
        day = t.astimezone(self.zone).date() + timedelta(days=1)
        while True:
            update = datetime.combine(day, time(9, 0), tzinfo=self.zone)
            if update >= end:
                break
            moves.append((update, ""))
            day += timedelta(days=1)
        for when, unit in sorted(moves, key=lambda m: m[0]):
            if unit == truth.unit:
                continue  # already there: the way out of a transfer keyed in error and undone
            if unit:
                if not self.add(when, StoryStep(event="A02", status="inpatient",
                                                unit=unit, **base), truth):
                    return
                if self.rng.random() < self.mess:  # the transfer was keyed in error
                    undo = when + timedelta(minutes=20)
                    previous = truth.units[-2] if len(truth.units) > 1 else None
                    if self.add(undo, StoryStep(event="A12", **base)):
                        truth.units.pop()
                        truth.unit = previous
            else:
                expected = (end.astimezone(self.zone).date())
                if not self.add(when, StoryStep(event="A08", status="inpatient",
                                                unit=truth.unit, expected_discharge=expected,
                                                drg=_working_drg(base["diagnoses"]),
                                                **base), truth):
                    return
        self.discharge(end, base, truth)

    def discharge(self, when: datetime, base: dict, truth: Truth) -> None:
        when = when.replace(microsecond=0)  # HL7 times carry whole seconds
        disposition = _pick(self.rng, DISPOSITIONS)
        if not self.add(when, StoryStep(event="A03", unit=truth.unit,
                                        disposition=disposition, **base), truth):
            return
        truth.status = EncounterStatus.FINISHED
        truth.discharge_time, truth.disposition = when, disposition
        if self.rng.random() < self.mess:  # discharged in error, then again for real
            undo = when + timedelta(minutes=30)
            if self.add(undo, StoryStep(event="A13", **base)):
                truth.status = EncounterStatus.IN_PROGRESS
                truth.discharge_time, truth.disposition = None, None
                again = (undo + timedelta(hours=self.rng.uniform(2, 20))).replace(microsecond=0)
                if self.add(again, StoryStep(event="A03", unit=truth.unit,
                                             disposition=disposition, **base)):
                    truth.status, truth.discharge_time = EncounterStatus.FINISHED, again
                    truth.disposition = disposition

    def deliver(self) -> Simulation:
        for when, survivor, duplicate, visit in self.merges:
            if not self.add(when, StoryStep(event="A40", mrn=survivor, prior_mrn=duplicate,
                                            name=self.bases[visit]["name"])):
                self.truth[visit].mrn = duplicate  # the merge had not happened yet
        ordered = sorted(self.events, key=lambda e: (e[0], e[1]))
        messages = [site_message(ev, when, self.site, f"SIM{seq:08d}")
                    for when, seq, ev in ordered]
        out: list[bytes] = []
        i = 0
        while i < len(messages):
            msg = messages[i]
            kind = ordered[i][2].event
            if kind == "A08" and i + 1 < len(messages) and self.rng.random() < self.mess:
                out += [messages[i + 1], msg]  # an update delivered late
                i += 2
                self.counts["late"] = self.counts.get("late", 0) + 1
                continue
            out.append(msg)
            if self.rng.random() < self.mess:
                out.append(msg)  # the sender resent it
                self.counts["duplicate"] = self.counts.get("duplicate", 0) + 1
            i += 1
        return Simulation(out, self.truth, dict(sorted(self.counts.items())))


def simulate(beds: int, days: int, seed: int, site: SiteProfile, *,
             start: date = date(2026, 3, 1), mess: float = 0.02,
             discharge_at_end: bool = False, until: datetime | None = None) -> Simulation:
    """A reproducible stream for a hospital of `beds` beds over `days` days.

    `discharge_at_end` discharges every stay still open in the last second, so streams laid
    end to end (a soak, month after month) keep a census of `beds`, not one that grows.
    `until` ends the stream earlier than the last day's midnight (the demo ends it at "now")."""
    return _Hospital(beds, days, seed, start, site, mess, discharge_at_end, until).run()
