"""FHIR input -> AdtEvents: Encounters, Patients, Conditions, Coverage and Observations
become the same source-neutral events HL7 ADT (and ORU^R01) becomes, so both doors share
one path (engine.intake.path).

`map_raw` works from the stored bytes alone (replay): a FHIR write is stored as an envelope
(engine.fhir.envelope) carrying the server references resolved at receipt.

Decisions, in one place:
* Event time is the resource's `meta.lastUpdated`, else `Bundle.timestamp`, else the time
  the server received it. The period (admission) is not the event time: a later update
  would otherwise look older than the state it changes.
* Updates merge: elements a body leaves out keep their value (the event model's "None means
  not sent"). A body that lists diagnoses replaces the whole diagnosis list.
* Identifier systems are read to the stored canonical system (engine.core.identity):
  `urn:oid:<OID>` and a bare OID are one; `urn:engine:id:GENHOSP`, `GENHOSP` and
  `assigner.display` are one. The MRN is the identifier of the site profile's most
  preferred MRN authority; with none, by `mrn_fallback: first`, the first of type MR, else
  of use `usual`/`official`, else the first (recorded as a warning).
* A Patient or Encounter with no identifier is keyed by its logical id (Resource.id, the
  id of a `PUT <Type>/<id>`, else the fullUrl's) under `urn:engine:fhir-id:<Type>`, with a
  warning; a conditional PUT by the identifier its URL names. Only a resource with nothing
  to key by is refused.
* Conditions and Coverage are not resources here: they fold into their Encounter, so they
  must reference one (in the Bundle, contained, or an Encounter on this server).
* Observations with a LOINC code the engine uses (engine.core.lab_codes) become lab results, like
  OBX segments: valueQuantity in a known unit, effective[x] as the result time; their
  Encounter, when named, must be in the Bundle or on this server. Other codes are
  acknowledged and not kept (`EntryResult.not_kept` says why); their subject must still
  name a patient, so a malformed one is refused all the same.
* A Bundle may carry any resource type (converters send MessageHeader, Provenance, ...).
  Practitioner, PractitionerRole, Location and Organization are read for the attending,
  the location (its partOf chain by physicalType: bed, room, ward, building) and the payer;
  those and every other type are acknowledged as not kept. References inside a Bundle
  resolve by fullUrl (`urn:uuid:`, absolute URL), by `Type/id`, or by identifier.
* `batch` Bundles are read entry by entry: an entry that cannot be mapped is answered alone
  (`Mapping.failed`) and each unit (a Patient; an Encounter with its Conditions and Coverage;
  an Observation) is applied on its own. A `transaction` is one unit: all or nothing.
* A descriptive or coded value longer than the store keeps (engine.core.limits) is not kept
  and a warning says so in the entry's response; only keys (MRN, visit number) refuse.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, cast
from urllib.parse import parse_qsl

from engine.core import lab_codes as labs
from engine.core import limits
from engine.core.events import (
    RESULTS,
    AdtEvent,
    CoverageData,
    DiagnosisData,
    EventError,
    Identifier,
    LabData,
    Location,
    PatientData,
    VisitData,
)
from engine.core.identity import first_of_type
from engine.core.site import SiteProfile
from engine.fhir import reading
from engine.fhir import vocabulary as v
from engine.fhir.envelope import Context, unwrap
from engine.fhir.reading import InvalidFhir

log = logging.getLogger("engine.fhir")
__all__ = ["EntryResult", "InvalidFhir", "Mapping", "Unit", "map_raw", "read"]

TRIGGER = "FHIR"
NPI = "http://hl7.org/fhir/sid/us-npi"
LOCATION_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
V2_PATIENT_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
# location-physical-type -> the HL7 PL component it fills
_SLOT_BY_PHYSICAL_TYPE = {"bd": "bed", "ro": "room", "wa": "unit", "wi": "unit", "lvl": "unit",
                          "area": "unit", "co": "unit", "bu": "facility", "si": "facility"}
# v3 ActCode classes beyond the five the engine publishes
_MORE_CLASSES = {"NONAC": "inpatient", "SS": "observation"}
_ATTENDING_CODES = ("ATND", "attender")


@dataclass(slots=True)
class EntryResult:
    """What one entry of the input became (for the transaction- or batch-response)."""

    resource_type: str
    mrn: Identifier | None = None
    visit: Identifier | None = None
    # why it was acknowledged and not kept: a type the engine does not store ("kept: no,
    # the engine does not store MessageHeader") or an unused code; None when kept
    not_kept: str | None = None
    error: EventError | None = None  # batch: this entry was refused
    warnings: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)  # what an unkept entry was read for

    @property
    def kept(self) -> bool:
        return self.not_kept is None


@dataclass(slots=True)
class Unit:
    """Events applied together: a whole transaction, or one piece of a batch (`index` is the
    entry that names it; `members` every entry it answers for)."""

    index: int
    events: list[AdtEvent]
    members: list[int]


@dataclass(slots=True)
class Mapping:
    events: list[AdtEvent]
    entries: list[EntryResult]
    control_id: str | None = None
    batch: bool = False
    units: list[Unit] = field(default_factory=list)


def map_raw(raw: bytes, site: SiteProfile) -> list[AdtEvent]:
    """The events of a stored FHIR input; raises EventError (InvalidFhir: 400) with a reason."""
    return read(raw, site).events


def read(raw: bytes, site: SiteProfile) -> Mapping:
    doc = reading.parse_json(raw, max_depth=reading.MAX_DEPTH + 1)
    body, context = unwrap(doc)
    name = reading.resource_type(body)
    if context is None:
        context = Context("transaction" if name == "Bundle" else "create")
    bundled = context.interaction in ("transaction", "batch")
    expected = "Bundle" if bundled else "Encounter"
    if context.interaction == "create" and name == "Observation":
        expected = name
    if name != expected:
        raise InvalidFhir(f"resourceType is {name!r}, expected {expected} at this endpoint")
    try:
        if name == "Bundle":
            shell, entries = reading.validate_bundle(body)
            mapping = _Mapper(site, context).run(shell, entries)
        else:
            mapping = _Mapper(site, context).run(reading.validate(body), [])
    except EventError:
        raise
    except Exception as exc:  # a mapping bug must not lose the input: refuse it, keep it
        where = traceback.extract_tb(exc.__traceback__)[-1]
        # The exception's text may quote patient data: log its type and place only.
        log.error("internal error %s mapping a FHIR input at %s:%s", type(exc).__name__,
                  where.filename, where.lineno)
        raise EventError(f"internal error mapping the input ({type(exc).__name__}); kept for "
                         "replay") from exc
    if context.interaction == "batch":  # one stored piece of a batch (replay)
        return _piece(mapping, context.target)
    return mapping


def _piece(mapping: Mapping, target: str | None) -> Mapping:
    """The unit of a batch that answers for entry `target` (`Bundle.entry[3]`)."""
    found = re.fullmatch(r"Bundle\.entry\[(\d{1,6})\]", target or "")
    index = int(found[1]) if found else -1
    if not 0 <= index < len(mapping.entries):
        raise InvalidFhir(f"stored batch piece names no entry ({target!r})")
    error = mapping.entries[index].error
    if error is not None:
        raise error
    unit = next((u for u in mapping.units if index in u.members), Unit(index, [], [index]))
    return Mapping(unit.events, mapping.entries, None, True, [unit])


def piece_target(index: int) -> str:
    return f"Bundle.entry[{index}]"


# -- small readers -----------------------------------------------------------------------------
def _fit(value: str | None, limit: int, where: str) -> str | None:
    if value is not None and len(value) > limit:
        raise EventError(f"{where} is longer than {limit} characters")
    return value


def _codes(concept: Any) -> list[tuple[str | None, str]]:
    return [(c.system, c.code) for c in (getattr(concept, "coding", None) or []) if c.code]


def _code_in(concept: Any, system: str) -> str | None:
    return next((code for sys, code in _codes(concept) if sys == system), None)


def _first_code(concept: Any) -> str | None:
    codes = _codes(concept)
    if codes:
        return codes[0][1]
    return getattr(concept, "text", None) if concept is not None else None


def _type_code(identifier: Any) -> str | None:
    return _first_code(identifier.type) if identifier.type is not None else None


def _parse_identifier_param(text: str) -> tuple[str | None, str]:
    """(system as written, value) of `[system|]value`; the mapper reads the system."""
    system, sep, value = text.partition("|")
    return (system if sep else None), (value if sep else system)


def _query(url: str) -> dict[str, str]:
    """The parameters of a conditional reference or request.url (`Patient?identifier=...`)."""
    return dict(parse_qsl(url.partition("?")[2]))


def _fhir_id_of(full_url: str | None) -> str | None:
    """The id a fullUrl gives its resource: the uuid of `urn:uuid:<uuid>`, the last segment
    of `.../Encounter/<id>`."""
    if not full_url:
        return None
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:") or None
    parts = [p for p in full_url.split("/") if p]
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return parts[-1] if parts else None


def _parse_place(text: str) -> list[str | None]:
    """`4WEST 412-A` -> unit, room, bed (the display this server publishes)."""
    unit, _, place = text.strip().partition(" ")
    room, _, bed = place.strip().partition("-")
    return [unit, room, bed]


def _person_name(names: Any) -> str | None:
    """`GIVEN [MIDDLE] FAMILY` (as PV1-7 reads), or the name's text."""
    if not names:
        return None
    name = next((n for n in names if n.use in ("official", "usual")), names[0])
    if name.text:
        return str(name.text)
    parts = [*(g for g in name.given or [] if g), *([name.family] if name.family else [])]
    return " ".join(parts) or None


@dataclass(slots=True, eq=False)
class _Entry:
    where: str
    resource: Any  # the fhir.resources model; None for a type the engine does not read
    method: str = "POST"
    url: str | None = None
    full_url: str | None = None
    index: int = 0
    type_name: str = ""
    raw_id: str | None = None

    @property
    def kind(self) -> str:
        return self.type_name or self.resource.get_resource_type()

    @property
    def rid(self) -> str | None:
        return self.resource.id if self.resource is not None else self.raw_id


@dataclass(slots=True, eq=False)
class _Group:
    """One encounter's event in the making."""

    patient: PatientData
    visit: VisitData
    event_time: datetime
    diagnoses: list[tuple[int, int, DiagnosisData]] | None = None
    coverage: tuple[int, CoverageData] | None = None
    listed_conditions: set[int] = field(default_factory=set)


_KEPT_STEPS = ("Patient", "Encounter", "Condition", "Coverage", "Observation")


class _Mapper:
    def __init__(self, site: SiteProfile, context: Context) -> None:
        self.site = site
        self.context = context
        self.batch = False
        self.entries: list[_Entry] = []
        self.index: dict[str, _Entry] = {}
        self.fallback_time: datetime | None = None
        self.patients: dict[int, PatientData] = {}  # id(entry) -> data
        self.groups: dict[tuple[str, str], _Group] = {}
        self.group_of_entry: dict[int, _Group] = {}
        self.results: list[AdtEvent] = []  # lab results, one event per Observation
        self.result_of_entry: dict[int, EntryResult] = {}
        self.event_of_result: dict[int, AdtEvent] = {}
        self.failed: dict[int, EventError] = {}  # entry index -> why (batch)
        self.warnings: dict[int, list[str]] = {}  # id(entry) -> what was not kept and why
        self.used: dict[int, list[str]] = {}  # id(unkept entry) -> what it was read for
        self.unused: dict[int, str] = {}  # id(entry of a kept type) -> why it was not kept
        self.current: _Entry | None = None  # the entry being mapped (warnings go to it)

    # -- driver ----------------------------------------------------------------------------
    def run(self, model: Any, entries: list[reading.BundleEntry]) -> Mapping:
        """Patients first (they are referenced), then encounters, then what folds into them."""
        control_id = None
        if model.get_resource_type() == "Bundle":
            control_id = self._read_bundle(model, entries)
        else:
            self._read_single(model)
        steps = {"Patient": self._remember_patient, "Encounter": self._encounter,
                 "Condition": self._condition, "Coverage": self._coverage,
                 "Observation": self._observation}
        for kind in _KEPT_STEPS:
            for entry in self.entries:
                if entry.kind == kind and entry.index not in self.failed:
                    self._attempt(entry, steps[kind])
        subjects = {self._key(g.patient) for g in self.groups.values()}
        patient_events: dict[int, AdtEvent] = {}
        for e in self.entries:
            if e.kind == "Patient" and id(e) in self.patients and e.index not in self.failed \
                    and (self.batch or self._key(self.patients[id(e)]) not in subjects):
                self._attempt(e, lambda e: patient_events.__setitem__(id(e), AdtEvent(
                    TRIGGER, self._time(e.resource), self.patients[id(e)])))
        lone = [e for e in self.entries if id(e) in patient_events]
        group_events = {id(g): self._event(g) for g in self.groups.values()}
        events = [*patient_events.values(), *group_events.values()]
        events += self.results  # after the encounters they may belong to
        results = [self._result(e) for e in self.entries]
        if not events and model.get_resource_type() != "Bundle" and \
                not any(r.not_kept for r in results):
            raise EventError("nothing to apply: send a Patient, an Encounter or an "
                             f"Observation the engine uses (LOINC {', '.join(labs.LOINC)})")
        if not self.batch:
            return Mapping(events, results, control_id, False,
                           [Unit(0, events, [e.index for e in self.entries])])
        units = [Unit(e.index, [patient_events[id(e)]], [e.index]) for e in lone]
        for group in self.groups.values():
            members = [e.index for e in self.entries if self.group_of_entry.get(id(e)) is group
                       and e.kind != "Observation"]
            units.append(Unit(members[0], [group_events[id(group)]], members))
        units += [Unit(e.index, [self.event_of_result[id(e)]], [e.index])
                  for e in self.entries if id(e) in self.event_of_result]
        units.sort(key=lambda u: u.index)
        return Mapping(events, results, control_id, True, units)

    def _attempt(self, entry: _Entry, step) -> None:
        """Map one entry; in a batch its refusal is its own, in a transaction everyone's."""
        self.current = entry
        try:
            step(entry)
        except EventError as exc:
            if not self.batch:
                raise
            self.failed[entry.index] = exc
        finally:
            self.current = None

    def _warn(self, text: str) -> None:
        if self.current is not None:
            self.warnings.setdefault(id(self.current), []).append(text)

    def _clip(self, value: str | None, limit: int, where: str) -> str | None:
        """A descriptive or coded value: kept whole, or not kept (and said) when longer than
        the store keeps. Never cut: a cut code is a wrong code."""
        if value is not None and len(value) > limit:
            self._warn(f"{where} not kept: {len(value)} characters, the store keeps {limit}")
            return None
        return value

    def _remember_patient(self, entry: _Entry) -> None:
        self.patients[id(entry)] = self._patient(entry)

    def _read_bundle(self, bundle: Any, entries: list[reading.BundleEntry]) -> str | None:
        if bundle.type not in ("transaction", "batch"):
            raise InvalidFhir(f"Bundle.type is {bundle.type!r}: this endpoint takes a "
                              "transaction or batch Bundle")
        self.batch = bundle.type == "batch"
        self.fallback_time = self._instant(bundle.timestamp, "Bundle.timestamp") or (
            bundle.meta.lastUpdated if bundle.meta else None)
        for item, raw in zip(entries, bundle.entry or [], strict=True):
            where = f"Bundle.entry[{item.index}]"
            request = raw.request
            # No request: read as a POST (create, or update by identifier), as converters mean
            method = request.method if request is not None and request.method else "POST"
            error = item.error
            if error is None and method not in ("POST", "PUT"):
                error = InvalidFhir(f"{where}.request.method {method} is not supported "
                                    "here: use POST or PUT")
            entry = _Entry(where, item.model, method, request.url if request else None,
                           raw.fullUrl, item.index, item.kind,
                           item.raw.get("id") if isinstance(item.raw.get("id"), str) else None)
            if error is not None:
                if not self.batch:
                    raise error
                self.failed[item.index] = error
            self._add(entry)
        if not self.entries:
            raise InvalidFhir("Bundle has no entries")
        ident = bundle.identifier
        value = ident.value if ident is not None else None
        return value if value and len(value) <= 180 else None

    def _read_single(self, resource: Any) -> None:
        context = self.context
        if context.interaction == "update":
            target = context.target or ""
            wanted = target.partition("/")[2]
            if resource.id != wanted:
                raise InvalidFhir(f"Encounter.id must be present and equal the id in the URL "
                                  f"({wanted!r}); got {resource.id!r}")
            self._add(_Entry("Encounter", resource, "PUT", target))
        else:
            self._add(_Entry(resource.get_resource_type(), resource))

    def _add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        kind, rid = entry.kind, entry.rid
        if entry.full_url:
            self.index[entry.full_url] = entry
            head, _, tail = entry.full_url.rstrip("/").rpartition("/")
            if head.endswith("/" + kind) or head == kind:
                self.index.setdefault(f"{kind}/{tail}", entry)
        if rid:
            self.index.setdefault(f"{kind}/{rid}", entry)

    # -- time ------------------------------------------------------------------------------
    def _instant(self, value: Any, where: str) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=self.site.zone)
        raise EventError(f"{where} {value!r} needs at least a full date")

    def _time(self, resource: Any) -> datetime:
        if resource.meta is not None and resource.meta.lastUpdated is not None:
            return resource.meta.lastUpdated
        if self.fallback_time is not None:
            return self.fallback_time
        if self.context.received:
            return datetime.fromisoformat(self.context.received)
        raise EventError("no event time: set meta.lastUpdated on the resource")

    # -- patients --------------------------------------------------------------------------
    def _mrn_hint(self) -> str:
        return " or ".join(
            f"an identifier with system {v.identifier_system(a.canonical)}"
            + (f" (type {a.identifier_type})" if a.identifier_type else "")
            for a in self.site.mrn)

    def _authority(self, system: str | None, assigner: str | None = None) -> str | None:
        """The authority an identifier names; `urn:id:GENHOSP` (LinuxForHealth's spelling of
        a namespace-only CX-4) is the site's own GENHOSP when that is its MRN or visit
        authority, so both doors key the same patient and stay."""
        if system and system.startswith("urn:id:"):
            bare = self.site.id_system(system.removeprefix("urn:id:"))
            if self.site.mrn_rank(bare, None) is not None or bare == self.site.visit_system:
                return bare
        return self.site.fhir_id_system(system, assigner)

    def _is_mrn(self, ident: Identifier) -> bool:
        return self.site.mrn_rank(ident.system, ident.type_code) is not None

    def _choose_mrn(self, idents: list[Identifier], raws: list[Any], where: str
                    ) -> Identifier | None:
        """The listed authority most preferred; else (`mrn_fallback: first`) type MR, else
        use usual/official, else the first identifier, with a warning."""
        ranked = [(rank, k) for k, i in enumerate(idents)
                  if (rank := self.site.mrn_rank(i.system, i.type_code)) is not None]
        if ranked:
            return idents[min(ranked)[1]]
        if not idents or self.site.mrn_fallback == "refuse":
            return None
        k = first_of_type((i.type_code for i in idents), "MR")
        if k is None:
            k = next((n for n, r in enumerate(raws) if r.use in ("usual", "official")), 0)
        self._warn(f"{where} (Patient): no identifier names an MRN authority of the site "
                   f"profile; {idents[k].system} is taken as the MRN")
        return idents[k]

    def _patient(self, entry: _Entry) -> PatientData:
        p, where = entry.resource, entry.where
        idents: list[Identifier] = []
        raws: list[Any] = []
        for i, raw in enumerate(p.identifier or []):
            assigner = raw.assigner.display if raw.assigner is not None else None
            authority = self._authority(raw.system, assigner) or (
                self.site.default_id_system if raw.value else None)
            here = f"{where}.identifier[{i}]"
            if not raw.value or not authority:
                continue
            ident = Identifier(system=authority, value=raw.value, type_code=_type_code(raw),
                               namespace=self.site.namespace_of(authority, assigner))
            if len(ident.type_code or "") > limits.ID_TYPE:
                ident.type_code = None  # a long free-text type (`type.text`) says nothing
            if self._is_mrn(ident):
                _fit(authority, limits.ID_SYSTEM, f"{here}.system")
                _fit(raw.value, limits.ID_VALUE, f"{here}.value")
            elif len(authority) > limits.ID_SYSTEM or len(raw.value) > limits.ID_VALUE:
                self._warn(f"{here} not kept: longer than the store keeps ({limits.ID_SYSTEM} "
                           f"characters of system, {limits.ID_VALUE} of value)")
                continue
            idents.append(ident)
            raws.append(raw)
        mrn = self._choose_mrn(idents, raws, where)
        if mrn is None and not any(raw.value for raw in p.identifier or []) \
                and self.site.mrn_fallback == "first":
            mrn = self._logical_key(entry, "mrn")
            if mrn is not None:
                idents.append(mrn)
            else:
                raise EventError(f"{where} (Patient) has no identifier, no id and no "
                                 f"fullUrl: nothing to key the patient by; send "
                                 f"{self._mrn_hint()}")
        if mrn is None:
            raise EventError(f"{where} (Patient) has no MRN: send {self._mrn_hint()}")
        self._typed(mrn)
        if entry.method == "PUT" and entry.url:
            self._check_target(entry, mrn, "mrn")
        data = PatientData(identifiers=idents, mrn=mrn, alternates=[
            i for i in idents if i is not mrn and self._is_mrn(i)])
        names = p.name or []
        name = next((n for n in names if n.use in ("official", "usual")), names[0] if names
                    else None)
        if name is not None:
            given = [g for g in name.given or [] if g]
            data.family = self._clip(name.family, limits.NAME, f"{where}.name.family")
            data.given = self._clip(given[0], limits.NAME, f"{where}.name.given") if given \
                else None
            data.middle = self._clip(" ".join(given[1:]), 200, f"{where}.name.given") or None
        if p.gender is not None:
            if p.gender not in v.SEX_BY_GENDER:
                raise InvalidFhir(f"{where}.gender {p.gender!r} is not one of male, female, "
                                  "other, unknown")
            data.sex = v.SEX_BY_GENDER[p.gender]
        if p.birthDate is not None:
            if isinstance(p.birthDate, date):
                data.birth_date = p.birthDate
            else:  # a year or year-month is valid FHIR; the store keeps full dates only
                self._warn(f"{where}.birthDate {p.birthDate!r} not kept: the store keeps a "
                           "full date")
        if p.address:
            a = next((a for a in p.address if a.use == "home"), p.address[0])
            lines = [line for line in a.line or [] if line]
            address = {"line": lines[0] if lines else None,
                       "line2": " ".join(lines[1:]) or None, "city": a.city, "state": a.state,
                       "postal_code": a.postalCode, "country": a.country}
            data.address = {k: val for k, val in address.items() if val} or None
        return data

    def _patient_from_identifier(self, ident: Any, where: str) -> PatientData:
        assigner = ident.assigner.display if ident.assigner is not None else None
        authority = self._authority(ident.system, assigner)
        mrn = Identifier(authority or self.site.default_id_system, ident.value or "",
                         _type_code(ident))
        if not mrn.value or not (self._is_mrn(mrn) or self.site.mrn_fallback == "first"):
            raise EventError(f"{where} identifies the patient by {authority}|{ident.value}, "
                             f"which is not an MRN: use {self._mrn_hint()}")
        self._typed(mrn)
        return PatientData(identifiers=[mrn], mrn=mrn)

    def _typed(self, mrn: Identifier) -> None:
        """An MRN sent without a type gets its authority's (as HL7 would carry it)."""
        if mrn.type_code is None:
            rank = self.site.mrn_rank(mrn.system, None)
            if rank is not None:
                mrn.type_code = self.site.mrn[rank].identifier_type

    def _server_mrn(self, ref: str) -> Identifier | None:
        known = self.context.references.get(ref) or {}
        mrn = known.get("mrn")
        if not isinstance(mrn, dict):
            return None
        return Identifier(str(mrn.get("system") or ""), str(mrn.get("value") or ""),
                          mrn.get("type"))

    def _subject(self, ref: Any, where: str, container: _Entry | None = None) -> PatientData:
        """The patient a Reference names: in the Bundle, contained, on this server, or by MRN."""
        if ref is None:
            raise EventError(f"{where} is required: reference the Patient")
        text = ref.reference
        if text:
            target = self._local(text, container)
            if target is not None:
                if target.kind != "Patient":
                    raise EventError(f"{where} {text} is a {target.kind}, not a Patient")
                if not any(target is e for e in self.entries):  # contained: read in place
                    return self._patient(target)
                if id(target) not in self.patients:
                    self.patients[id(target)] = self._patient(target)
                return self.patients[id(target)]
            if text.startswith("Patient?"):
                params = _query(text)
                if "identifier" in params:
                    system, value = _parse_identifier_param(params["identifier"])
                    system = self._authority(system)
                    mrn = Identifier(system or self.site.default_id_system, value, None)
                    if value and (self._is_mrn(mrn) or self.site.mrn_fallback == "first"):
                        self._typed(mrn)
                        return PatientData(identifiers=[mrn], mrn=mrn)
                first = v.identifier_system(self.site.mrn[0].canonical)
                raise EventError(f"{where} {text}: a conditional reference must name the MRN "
                                 f"(Patient?identifier={first}|<mrn>)")
            held = self._server_mrn(text)
            if held is not None:
                return PatientData(identifiers=[held], mrn=held)
            if ref.identifier is None:
                raise EventError(f"{where} {text} is neither in this Bundle nor a Patient on "
                                 "this server")
        if ref.identifier is not None:
            named = self._by_identifier(ref.identifier, ("Patient",))
            if named is not None:
                if id(named) not in self.patients:
                    self.patients[id(named)] = self._patient(named)
                return self.patients[id(named)]
            return self._patient_from_identifier(ref.identifier, where)
        raise EventError(f"{where} must reference the Patient (reference or MRN identifier)")

    def _local(self, text: str, container: _Entry | None) -> _Entry | None:
        """The entry (or contained resource) a literal reference names: by fullUrl, by
        `Type/id`, or by the `Type/id` an absolute URL ends in."""
        if text.startswith("#") and container is not None:
            for i, res in enumerate(container.resource.contained or []):
                if res.id == text[1:]:
                    return _Entry(f"{container.where}.contained[{i}]", res)
            raise EventError(f"{container.where}: {text} names no contained resource")
        found = self.index.get(text)
        if found is None and "/" in text and not text.startswith("urn:"):
            parts = text.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[:parts.index("_history")]
            if len(parts) >= 2:
                found = self.index.get(f"{parts[-2]}/{parts[-1]}")
        if found is not None and found.index in self.failed:
            raise EventError(f"{text} names entry {found.index}, which was refused: "
                             f"{self.failed[found.index]}")
        return found

    def _by_identifier(self, ident: Any, kinds: tuple[str, ...]) -> _Entry | None:
        """The Bundle entry of one of `kinds` that carries this identifier (a logical
        reference)."""
        if ident is None or not ident.value:
            return None
        for entry in self.entries:
            if entry.kind not in kinds or entry.resource is None or entry.index in self.failed:
                continue
            for held in getattr(entry.resource, "identifier", None) or []:
                if held.value == ident.value and (ident.system is None or held.system is None
                                                  or held.system == ident.system):
                    return entry
        return None

    def _resolve(self, ref: Any, kinds: tuple[str, ...], container: _Entry | None
                 ) -> _Entry | None:
        """The entry a Reference names, by reference or by identifier, if it is one of
        `kinds` and in this input; None otherwise."""
        if ref is None:
            return None
        try:
            target = self._local(ref.reference, container) if ref.reference else None
        except EventError as exc:  # names a refused entry: read without it, and say so
            self._warn(f"{ref.reference} not read: {exc}")
            return None
        if target is None:
            target = self._by_identifier(ref.identifier, kinds)
        if target is None or target.kind not in kinds or target.resource is None:
            return None
        return target

    def _note_use(self, entry: _Entry, text: str) -> None:
        if not any(entry is e for e in self.entries):
            return  # contained: answered with its container
        self.used.setdefault(id(entry), []).append(text)

    @staticmethod
    def _key(patient: PatientData) -> tuple[str, str]:
        assert patient.mrn is not None
        return (patient.mrn.system, patient.mrn.value)

    # -- encounters ------------------------------------------------------------------------
    def _check_target(self, entry: _Entry, ident: Identifier, kind: str) -> None:
        """A PUT names what it updates; the body must be that record."""
        url = entry.url or ""
        if "?" in url:
            params = _query(url)
            system, value = _parse_identifier_param(params.get("identifier", ""))
            system = self._authority(system) if system is not None else None
            if value != ident.value or (system is not None and system != ident.system):
                raise EventError(f"{entry.where}: the body does not carry the identifier "
                                 f"its request.url {url} names")
            return
        known = (self.context.references.get(url) or {}).get(kind)
        if not isinstance(known, dict):
            if not url.rpartition("/")[2].isdigit():
                return  # the sender's own id (`Patient/<uuid>`): keyed by its identifier
            raise EventError(f"{entry.where}: {url} is not known to this server")
        if (known.get("system"), known.get("value")) != (ident.system, ident.value):
            label = "visit number" if kind == "visit" else "MRN"
            raise EventError(
                f"{entry.where}: {label} {ident.system}|{ident.value} does not match {url} "
                f"({known.get('system')}|{known.get('value')}); it cannot change in an update")

    def _logical_key(self, entry: _Entry, key: str) -> Identifier | None:
        """A resource sent without an identifier (Synthea's Encounters, Medplum's Patients):
        the identifier a conditional PUT (`Encounter?identifier=s|v`) names, the record it
        updates on this server when a PUT names one, else its logical id under
        `urn:engine:fhir-id:<Type>` (Resource.id, the id a `PUT <Type>/<id>` names, else the
        fullUrl's id), so a later PUT of the same id reaches the same record. None when
        there is nothing to key by."""
        kind = entry.kind
        if entry.method == "PUT" and entry.url and "?" in entry.url:  # conditional: its key
            system, value = _parse_identifier_param(_query(entry.url).get("identifier", ""))
            if value:
                default = self.site.visit_system if key == "visit" else \
                    self.site.default_id_system
                return Identifier(self._authority(system) or default,
                                  _fit(value, limits.ID_VALUE, f"{entry.where}.request.url")
                                  or "", "VN" if key == "visit" else None)
        url = entry.url if entry.method == "PUT" and entry.url and "?" not in entry.url \
            else None
        known = (self.context.references.get(url) or {}).get(key) if url else None
        if isinstance(known, dict) and known.get("value"):
            return Identifier(str(known.get("system") or ""), str(known["value"]),
                              known.get("type") if key == "mrn" else "VN")
        named = url.rpartition("/")[2] if url and url.startswith(f"{kind}/") else None
        logical = entry.rid or named or _fhir_id_of(entry.full_url)
        if not logical:
            return None
        system = f"{v.FHIR_ID_PREFIX}{kind}"
        self._warn(f"{entry.where} ({kind}) has no identifier: keyed by its resource id, "
                   f"{system}|{logical}; send the same id again to update it")
        return Identifier(system, _fit(logical, limits.ID_VALUE, f"{entry.where}.id") or "",
                          "VN" if key == "visit" else None)

    def _visit_number(self, entry: _Entry) -> Identifier:
        idents = [i for i in entry.resource.identifier or [] if i.value]
        if not idents:
            keyed = self._logical_key(entry, "visit")
            if keyed is None:
                raise EventError(f"{entry.where}: the Encounter has no identifier (the visit "
                                 "number), no id and no fullUrl: nothing to key the stay by")
            return keyed
        chosen = next((i for i in idents if _type_code(i) == "VN"), idents[0])
        assigner = chosen.assigner.display if chosen.assigner is not None else None
        system = self._authority(chosen.system, assigner) or self.site.visit_system
        return Identifier(_fit(system, limits.ID_SYSTEM, f"{entry.where}.identifier.system")
                          or "", _fit(chosen.value, limits.ID_VALUE,
                                      f"{entry.where}.identifier.value") or "", "VN")

    def _encounter(self, entry: _Entry) -> None:
        enc, where = entry.resource, entry.where
        visit_number = self._visit_number(entry)
        if entry.method == "PUT" and entry.url:
            self._check_target(entry, visit_number, "visit")
        if enc.status not in v.FHIR_ENCOUNTER_STATUSES:
            raise InvalidFhir(f"{where}.status {enc.status!r} is not an R4 Encounter status")
        if enc.status == "unknown":
            raise EventError(f"{where}.status 'unknown' cannot be applied: send the status")
        if enc.class_fhir is None:
            raise InvalidFhir(f"{where}.class is required (v3-ActCode IMP, OBSENC, EMER, ...)")
        patient_class, care_status = self._care_status(enc.class_fhir)
        if care_status is None:
            raise EventError(f"{where}.class {enc.class_fhir.code!r} is not one of IMP, OBSENC, "
                             "EMER, AMB, PRENC (v3-ActCode) nor a patient class of the site "
                             "profile (v2-0004)")
        visit = VisitData(visit_number=visit_number, care_status=care_status,
                          status=v.STATUS_IN[enc.status], patient_class=patient_class)
        if enc.period is not None:
            visit.admit_time = self._instant(enc.period.start, f"{where}.period.start")
            visit.discharge_time = self._instant(enc.period.end, f"{where}.period.end")
        label = f"visit {visit_number.value}"
        visit.location = self._location(enc.location, where, entry, label)
        self._participant(enc.participant, visit, where, entry, label)
        if enc.serviceType is not None:
            visit.hospital_service = self._clip(_first_code(enc.serviceType), limits.SERVICE,
                                                f"{where}.serviceType")
        if (hosp := enc.hospitalization) is not None:
            if hosp.admitSource is not None:
                source = _code_in(hosp.admitSource, v.V2_ADMIT_SOURCE)
                if source is None and (fhir := _code_in(hosp.admitSource, v.ADMIT_SOURCE)):
                    source = v.V2_BY_ADMIT_SOURCE.get(fhir, fhir)
                visit.admit_source = self._clip(source or _first_code(hosp.admitSource),
                                                limits.SHORT_CODE,
                                                f"{where}.hospitalization.admitSource")
            if hosp.dischargeDisposition is not None:
                dd = hosp.dischargeDisposition
                code = _code_in(dd, v.NUBC_DISCHARGE)
                if code is None and (fhir := _code_in(dd, v.DISCHARGE_DISPOSITION)):
                    code = v.NUBC_BY_DISPOSITION.get(fhir, fhir)
                visit.discharge_disposition = self._clip(
                    code or _first_code(dd), limits.SHORT_CODE,
                    f"{where}.hospitalization.dischargeDisposition")
        patient = self._subject(enc.subject, f"{where}.subject", entry)
        if (visit_number.system, visit_number.value) in self.groups:
            raise EventError(f"{where}: visit {visit_number.value} appears twice in this input")
        group = _Group(patient, visit, self._time(enc))
        self.groups[(visit_number.system, visit_number.value)] = group
        self.group_of_entry[id(entry)] = group
        if enc.diagnosis is not None:
            group.diagnoses = []
            for i, dx in enumerate(enc.diagnosis):
                here = f"{where}.diagnosis[{i}]"
                text = dx.condition.reference if dx.condition is not None else None
                target = self._local(text, entry) if text else None
                if target is None or target.kind != "Condition":
                    raise EventError(f"{here}.condition must reference a Condition in this "
                                     "Bundle or contained in the Encounter")
                role = _code_in(dx.use, v.DIAGNOSIS_ROLE) if dx.use is not None else None
                kind = v.DIAGNOSIS_TYPE_BY_ROLE.get(role or "")
                if kind is None and dx.use is not None and (dx.use.text or "").lower() == \
                        "working":
                    kind = "W"
                listed = any(target is e for e in self.entries)
                if listed:
                    group.listed_conditions.add(id(target))
                if self.batch and listed:
                    try:
                        self._add_diagnosis(group, target, kind, dx.rank)
                    except EventError as exc:
                        self.failed[target.index] = exc
                    continue
                self._add_diagnosis(group, target, kind, dx.rank)

    def _care_status(self, klass: Any) -> tuple[str | None, str | None]:
        """(patient class, care status) of Encounter.class: a v3 ActCode, or an HL7 v2
        patient class (table 0004, as some converters send it) read by the site profile."""
        code = klass.code or ""
        if klass.system == V2_PATIENT_CLASS or (klass.system is None and len(code) == 1):
            by_site = self.site.status_for(code, None)
            return self._clip(code, limits.PATIENT_CLASS, "Encounter.class"), by_site
        return None, v.CARE_STATUS_BY_CLASS.get(code) or _MORE_CLASSES.get(code)

    def _location(self, locations: Any, where: str, entry: _Entry, label: str
                  ) -> Location | None:
        """The current place: an active location over completed ones, the latest dated one
        otherwise; read from a Location of this Bundle, an engine identifier or the display."""
        usable = [x for x in locations or [] if x.status not in ("planned", "reserved")]
        if not usable:
            return None
        active = [x for x in usable if x.status == "active"]
        open_ = [x for x in usable if x.status != "completed"]
        dated = [x for x in usable if x.period is not None and x.period.start is not None]
        if active:
            chosen = active[-1]
        elif dated:
            chosen = max(dated, key=lambda x: cast(datetime, self._instant(x.period.start, where)))
        elif open_:
            chosen = open_[-1]
        else:
            chosen = usable[-1]
        ref = chosen.location
        if ref is None:
            raise InvalidFhir(f"{where}.location.location is required")
        parts: list[str | None]
        held = self._resolve(ref, ("Location",), entry)
        if ref.identifier is not None and ref.identifier.system == v.LOCATION_SYSTEM \
                and ref.identifier.value:
            parts = ref.identifier.value.split("^")
        elif held is not None:
            parts = self._place(held, label)
        elif ref.display:
            parts = _parse_place(ref.display)
        else:
            self._warn(f"{where}.location not kept: it names no Location in this Bundle, no "
                       f"display and no identifier with system {v.LOCATION_SYSTEM}")
            return None
        parts = [(p or None) for p in (parts + [None] * 4)[:4]]
        kept = [self._clip(p, limit, f"{where}.location") for p, limit in
                zip(parts, (limits.PLACE, 50, 50, 50), strict=True)]
        if any(p is not None and k is None for p, k in zip(parts, kept, strict=True)):
            return None
        loc = Location(*kept)
        return None if loc.is_empty() else loc

    def _place(self, held: _Entry, label: str) -> list[str | None]:
        """unit, room, bed, facility of a Location and the Locations it is partOf: each
        filled by its physicalType (bd, ro, wa...); untyped ones from the bottom up."""
        slots: dict[str, str] = {}
        untyped: list[str] = []
        node: _Entry | None = held
        seen: set[int] = set()
        while node is not None and id(node) not in seen and len(seen) < 8:
            seen.add(id(node))
            loc = node.resource
            for ident in loc.identifier or []:
                if ident.system == v.LOCATION_SYSTEM and ident.value and not slots \
                        and not untyped:
                    self._note_use(node, f"the location of {label}")
                    return list(ident.value.split("^"))
            name = loc.name or next(iter(loc.alias or []), None) or next(
                (i.value for i in loc.identifier or [] if i.value), None)
            code = _code_in(loc.physicalType, LOCATION_TYPE) if loc.physicalType else None
            slot = _SLOT_BY_PHYSICAL_TYPE.get(code or "")
            if name and slot and slot not in slots:
                slots[slot] = name
            elif name and slot is None:
                untyped.append(name)
            self._note_use(node, f"the location of {label}")
            node = self._resolve(loc.partOf, ("Location",), node) if loc.partOf else None
        if not slots and len(untyped) == 1:
            return _parse_place(untyped[0])
        if not slots:  # an untyped chain, bottom up: (room, unit), (bed, room, unit), ...
            order = {2: ["room", "unit"], 3: ["bed", "room", "unit"]}.get(
                len(untyped), ["bed", "room", "unit", "facility"])
        else:
            order = [slot for slot in ("bed", "room", "unit", "facility") if slot not in slots]
        for slot, name in zip(order, untyped, strict=False):
            slots[slot] = name
        return [slots.get("unit"), slots.get("room"), slots.get("bed"), slots.get("facility")]

    def _participant(self, participants: Any, visit: VisitData, where: str,
                     entry: _Entry, label: str) -> None:
        """The attending: the participant typed ATND (attender), else the first untyped one;
        name and identifier (the NPI first) from its Practitioner when the Bundle has it."""
        people = [p for p in participants or [] if p.individual is not None]
        attending = next((p for p in people if any(
            code in _ATTENDING_CODES for t in p.type or [] for _, code in _codes(t))), None)
        if attending is None:
            attending = next((p for p in people if not p.type), None)
        if attending is None:
            return
        who = attending.individual
        ident = who.identifier.value if who.identifier is not None else None
        name = who.display
        held = self._resolve(who, ("Practitioner", "PractitionerRole"), entry)
        if held is not None and held.kind == "PractitionerRole":
            role = held
            self._note_use(role, f"the attending of {label}")
            held = self._resolve(role.resource.practitioner, ("Practitioner",), role)
            if held is None and role.resource.identifier:
                ident = ident or role.resource.identifier[0].value
        if held is not None:
            doc = held.resource
            idents = [i for i in doc.identifier or [] if i.value]
            npi = next((i.value for i in idents if i.system == NPI), None)
            ident = npi or ident or (idents[0].value if idents else None) or doc.id
            name = name or _person_name(doc.name)
            self._note_use(held, f"the attending of {label}")
        elif ident is None and who.reference and "/" in who.reference \
                and not who.reference.startswith("urn:"):
            ident = who.reference.rpartition("/")[2]
        visit.attending_id = self._clip(ident, limits.ATTENDING_ID,
                                        f"{where}.participant.individual")
        visit.attending_name = self._clip(name, limits.ATTENDING_NAME,
                                          f"{where}.participant.individual.display")

    # -- conditions and coverage -------------------------------------------------------------
    def _diagnosis(self, entry: _Entry, kind: str | None, sequence: int) -> DiagnosisData | None:
        cond, where = entry.resource, entry.where
        verification = _first_code(cond.verificationStatus)
        if verification in ("entered-in-error", "refuted"):
            return None
        code = _code_in(cond.code, v.ICD10CM) if cond.code is not None else None
        if not code:  # valid FHIR the engine does not use (a SNOMED problem): acknowledged
            why = (f"Condition not kept: it has no ICD-10-CM code (system {v.ICD10CM}), the "
                   "code system of the diagnoses the engine keeps")
            if any(entry is e for e in self.entries):
                self.unused[id(entry)] = why
            else:
                self._warn(f"{where}: {why}")
            return None
        coding = next(c for c in cond.code.coding if c.system == v.ICD10CM and c.code == code)
        display = coding.display or cond.code.text
        return DiagnosisData(code=_fit(code, 20, f"{where}.code") or code, system="I10",
                             display=display[:300] if display else None,
                             diagnosis_type=kind, sequence=sequence)

    def _add_diagnosis(self, group: _Group, entry: _Entry, kind: str | None,
                       rank: int | None) -> None:
        assert group.diagnoses is not None
        position = len(group.diagnoses)
        sequence = rank if rank else position + 1
        dx = self._diagnosis(entry, kind, sequence)
        if dx is not None:
            group.diagnoses.append((sequence, position, dx))

    def _group_for_encounter(self, ref: Any, entry: _Entry) -> _Group:
        where = f"{entry.where}.encounter"
        text = ref.reference if ref is not None else None
        if not text:
            raise EventError(f"{entry.where} (Condition) is not linked to an Encounter: set "
                             "Condition.encounter or list it in Encounter.diagnosis")
        number, group, mrn = self._referenced_visit(text, entry, where)
        if group is not None:
            return group
        key = (number.system, number.value)
        if key not in self.groups:
            assert mrn is not None
            self.groups[key] = _Group(PatientData([mrn], mrn), VisitData(visit_number=number),
                                      self._time(entry.resource))
        return self.groups[key]

    def _referenced_visit(self, text: str, entry: _Entry, where: str
                          ) -> tuple[Identifier, _Group | None, Identifier | None]:
        """(visit number, its group in this input, or the MRN on file) of an Encounter
        reference: in the Bundle or on this server."""
        target = self._local(text, entry)
        if target is not None:
            if target.kind != "Encounter" or id(target) not in self.group_of_entry:
                raise EventError(f"{where} {text} is not an Encounter of this Bundle")
            group = self.group_of_entry[id(target)]
            assert group.visit.visit_number is not None
            return group.visit.visit_number, group, None
        known = self.context.references.get(text) or {}
        visit, mrn = known.get("visit"), self._server_mrn(text)
        if not isinstance(visit, dict) or mrn is None:
            raise EventError(f"{where} {text} is neither in this Bundle nor an Encounter on "
                             "this server")
        return Identifier(str(visit.get("system")), str(visit.get("value")), "VN"), None, mrn

    def _condition(self, entry: _Entry) -> None:
        if any(id(entry) in g.listed_conditions for g in self.groups.values()):
            group = next(g for g in self.groups.values() if id(entry) in g.listed_conditions)
            self.group_of_entry[id(entry)] = group
            return
        cond = entry.resource
        if not (_code_in(cond.code, v.ICD10CM) if cond.code is not None else None):
            self._diagnosis(entry, None, 0)  # notes why it is not kept; folds into nothing
            return
        group = self._group_for_encounter(cond.encounter, entry)
        self.group_of_entry[id(entry)] = group
        if group.diagnoses is None:
            group.diagnoses = []
        self._add_diagnosis(group, entry, None, None)

    def _coverage(self, entry: _Entry) -> None:
        cov, where = entry.resource, entry.where
        if cov.status not in ("active", None):
            return
        patient = self._subject(cov.beneficiary, f"{where}.beneficiary", entry)
        plan = self._clip(next((c.value for c in cov.class_fhir or []
                                if any(code == "plan" for _, code in _codes(c.type))), None),
                          limits.PLAN, f"{where}.class.value")
        payer = None
        for ref in cov.payor or []:
            org = self._resolve(ref, ("Organization",), entry)
            payer = ref.display or (org.resource.name if org is not None else None)
            if org is not None:
                self._note_use(org, f"the payer of {where}")
            if payer:
                break
        data = CoverageData(plan_code=plan, payer_name=payer[:limits.PAYER] if payer else None,
                            payer_class=self.site.payer_class_for(plan), authorization=None)
        order = cov.order if cov.order is not None else 1_000_000
        groups = [g for g in self.groups.values() if self._key(g.patient) == self._key(patient)]
        if not groups:
            raise EventError(f"{where} (Coverage): its beneficiary has no Encounter in this "
                             "Bundle; send the Coverage with the Encounter it pays for")
        for group in groups:
            if group.coverage is None or order < group.coverage[0]:
                group.coverage = (order, data)
            self.group_of_entry[id(entry)] = group

    def _observation(self, entry: _Entry) -> None:
        obs, where = entry.resource, entry.where
        if obs.status not in v.OBSERVATION_STATUSES:
            raise InvalidFhir(f"{where}.status {obs.status!r} is not an R4 Observation status")
        patient = self._subject(obs.subject, f"{where}.subject", entry)
        visit = None
        if obs.encounter is not None and obs.encounter.reference:
            visit, _group, _mrn = self._referenced_visit(obs.encounter.reference, entry,
                                                         f"{where}.encounter")
        code = _code_in(obs.code, v.LOINC)
        if code not in labs.LOINC:  # not a result the engine uses: acknowledged, not kept
            named = f"LOINC {code}" if code else "its code"
            used = ", ".join(f"{c} {name}" for c, (name, _) in labs.LOINC.items())
            self.result_of_entry[id(entry)] = EntryResult(
                "Observation", patient.mrn, visit,
                not_kept=f"Observation not kept: {named} is not a result this engine uses "
                         f"(it keeps {used})")
            return
        self.result_of_entry[id(entry)] = EntryResult("Observation", patient.mrn, visit)
        taken = self._instant(obs.effectiveDateTime or obs.effectiveInstant or (
            obs.effectivePeriod.start if obs.effectivePeriod is not None else None) or
            obs.issued, f"{where}.effective[x]")
        if taken is None:
            raise EventError(f"{where}.effectiveDateTime (when the sample was taken) is required")
        name = labs.LOINC[code][0]
        if obs.status in labs.WITHDRAWN:
            lab = LabData(name, code, 0.0, "", taken, obs.status)
        else:
            q = obs.valueQuantity
            if q is None or q.value is None:
                raise EventError(f"{where}.valueQuantity is required for LOINC {code} ({name})")
            name, value, unit = labs.reading(code, float(q.value), q.code or q.unit,
                                             f"{where}.valueQuantity")
            lab = LabData(name, code, value, unit, taken, obs.status)
        try:
            when = self._time(obs)
        except EventError:
            when = taken  # nothing else dates it: the result time does
        event = AdtEvent(RESULTS, when, patient, labs=[lab],
                         visit=VisitData(visit_number=visit) if visit else None)
        self.results.append(event)
        self.event_of_result[id(entry)] = event

    # -- results ---------------------------------------------------------------------------
    @staticmethod
    def _event(group: _Group) -> AdtEvent:
        diagnoses = None
        if group.diagnoses is not None:
            diagnoses = [dx for _, _, dx in sorted(group.diagnoses, key=lambda t: t[:2])]
        return AdtEvent(TRIGGER, group.event_time, group.patient, visit=group.visit,
                        diagnoses=diagnoses,
                        coverage=group.coverage[1] if group.coverage else None)

    def _result(self, entry: _Entry) -> EntryResult:
        result = self._outcome(entry)
        result.not_kept = result.not_kept or self.unused.get(id(entry))
        result.warnings = self.warnings.get(id(entry), [])
        result.used = self.used.get(id(entry), [])
        if entry.index in self.failed:
            result.error = self.failed[entry.index]
        return result

    def _outcome(self, entry: _Entry) -> EntryResult:
        if entry.kind not in _KEPT_STEPS:
            return EntryResult(entry.kind,
                               not_kept=f"kept: no, the engine does not store {entry.kind}")
        if entry.kind == "Observation" and id(entry) in self.result_of_entry:
            return self.result_of_entry[id(entry)]
        if entry.kind == "Patient" and id(entry) in self.patients:
            return EntryResult("Patient", mrn=self.patients[id(entry)].mrn)
        group = self.group_of_entry.get(id(entry))
        if group is None:  # a Coverage that was not active, or a refused entry
            return EntryResult(entry.kind)
        return EntryResult(entry.kind, mrn=group.patient.mrn, visit=group.visit.visit_number)
