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
* The MRN is the identifier whose system names the site profile's assigning authority
  (`urn:engine:id:GENHOSP`, or `GENHOSP`, or `assigner.display`), with type MR or no type.
* Conditions and Coverage are not resources here: they fold into their Encounter, so they
  must reference one (in the Bundle, contained, or an Encounter on this server).
* Observations with a LOINC code the engine uses (engine.core.lab_codes) become lab results, like
  OBX segments: valueQuantity in a known unit, effective[x] as the result time; their
  Encounter, when named, must be in the Bundle or on this server. Other codes are
  acknowledged and not kept (`EntryResult.not_kept` says why); their subject must still
  name a patient, so a malformed one is refused all the same.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, cast
from urllib.parse import parse_qsl

from engine.core import lab_codes as labs
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
from engine.core.site import SiteProfile
from engine.fhir import reading
from engine.fhir import vocabulary as v
from engine.fhir.envelope import Context, unwrap
from engine.fhir.reading import InvalidFhir

log = logging.getLogger("engine.fhir")
__all__ = ["EntryResult", "InvalidFhir", "Mapping", "map_raw", "read"]

TRIGGER = "FHIR"


@dataclass(slots=True)
class EntryResult:
    """What one entry of the input became (for the transaction-response)."""

    resource_type: str
    mrn: Identifier | None = None
    visit: Identifier | None = None
    not_kept: str | None = None  # why it was acknowledged and not kept (an unused code)


@dataclass(slots=True)
class Mapping:
    events: list[AdtEvent]
    entries: list[EntryResult]
    control_id: str | None = None


def map_raw(raw: bytes, site: SiteProfile) -> list[AdtEvent]:
    """The events of a stored FHIR input; raises EventError (InvalidFhir: 400) with a reason."""
    return read(raw, site).events


def read(raw: bytes, site: SiteProfile) -> Mapping:
    doc = reading.parse_json(raw, max_depth=reading.MAX_DEPTH + 1)
    body, context = unwrap(doc)
    name = reading.resource_type(body)
    if context is None:
        context = Context("transaction" if name == "Bundle" else "create")
    expected = "Bundle" if context.interaction == "transaction" else "Encounter"
    if context.interaction == "create" and name == "Observation":
        expected = name
    if name != expected:
        raise InvalidFhir(f"resourceType is {name!r}, expected {expected} at this endpoint")
    model = reading.validate(body)
    try:
        return _Mapper(site, context).run(model)
    except EventError:
        raise
    except Exception as exc:  # a mapping bug must not lose the input: refuse it, keep it
        where = traceback.extract_tb(exc.__traceback__)[-1]
        # The exception's text may quote patient data: log its type and place only.
        log.error("internal error %s mapping a FHIR input at %s:%s", type(exc).__name__,
                  where.filename, where.lineno)
        raise EventError(f"internal error mapping the input ({type(exc).__name__}); kept for "
                         "replay") from exc


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
    system, sep, value = text.partition("|")
    return (v.authority_of(system) if sep else None), (value if sep else system)


def _query(url: str) -> dict[str, str]:
    """The parameters of a conditional reference or request.url (`Patient?identifier=...`)."""
    return dict(parse_qsl(url.partition("?")[2]))


@dataclass(slots=True, eq=False)
class _Entry:
    where: str
    resource: Any
    method: str = "POST"
    url: str | None = None
    full_url: str | None = None

    @property
    def kind(self) -> str:
        return self.resource.get_resource_type()


@dataclass(slots=True, eq=False)
class _Group:
    """One encounter's event in the making."""

    patient: PatientData
    visit: VisitData
    event_time: datetime
    diagnoses: list[tuple[int, int, DiagnosisData]] | None = None
    coverage: tuple[int, CoverageData] | None = None
    listed_conditions: set[int] = field(default_factory=set)


class _Mapper:
    def __init__(self, site: SiteProfile, context: Context) -> None:
        self.site = site
        self.context = context
        self.entries: list[_Entry] = []
        self.index: dict[str, _Entry] = {}
        self.fallback_time: datetime | None = None
        self.patients: dict[int, PatientData] = {}  # id(entry) -> data
        self.groups: dict[tuple[str, str], _Group] = {}
        self.group_of_entry: dict[int, _Group] = {}
        self.results: list[AdtEvent] = []  # lab results, one event per Observation
        self.result_of_entry: dict[int, EntryResult] = {}

    # -- driver ----------------------------------------------------------------------------
    def run(self, model: Any) -> Mapping:
        """Patients first (they are referenced), then encounters, then what folds into them."""
        control_id = None
        if model.get_resource_type() == "Bundle":
            control_id = self._read_bundle(model)
        else:
            self._read_single(model)
        steps = (("Patient", self._remember_patient), ("Encounter", self._encounter),
                 ("Condition", self._condition), ("Coverage", self._coverage),
                 ("Observation", self._observation))
        for kind, step in steps:
            for entry in self.entries:
                if entry.kind == kind:
                    step(entry)
        subjects = {self._key(g.patient) for g in self.groups.values()}
        events = [AdtEvent(TRIGGER, self._time(e.resource), self.patients[id(e)])
                  for e in self.entries
                  if e.kind == "Patient" and self._key(self.patients[id(e)]) not in subjects]
        events += [self._event(group) for group in self.groups.values()]
        events += self.results  # after the encounters they may belong to
        results = [self._result(e) for e in self.entries]
        if not events and not any(r.not_kept for r in results):
            raise EventError("nothing to apply: send a Patient, an Encounter or an "
                             f"Observation the engine uses (LOINC {', '.join(labs.LOINC)})")
        return Mapping(events, results, control_id)

    def _remember_patient(self, entry: _Entry) -> None:
        self.patients[id(entry)] = self._patient(entry)

    def _read_bundle(self, bundle: Any) -> str | None:
        if bundle.type != "transaction":
            raise InvalidFhir(f"Bundle.type is {bundle.type!r}: this endpoint takes a "
                              "transaction Bundle")
        self.fallback_time = self._instant(bundle.timestamp, "Bundle.timestamp") or (
            bundle.meta.lastUpdated if bundle.meta else None)
        for i, raw in enumerate(bundle.entry or []):
            where = f"Bundle.entry[{i}]"
            request = raw.request
            if request is None or not request.method:
                raise InvalidFhir(f"{where}.request is required in a transaction "
                                  "(method POST or PUT)")
            if request.method not in ("POST", "PUT"):
                raise InvalidFhir(f"{where}.request.method {request.method} is not supported "
                                  "here: use POST or PUT")
            entry = _Entry(where, raw.resource, request.method, request.url, raw.fullUrl)
            self._add(entry)
        if not self.entries:
            raise InvalidFhir("Bundle has no entries")
        ident = bundle.identifier
        value = ident.value if ident is not None else None
        return value if value and len(value) <= 200 else None

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
        kind, rid = entry.kind, entry.resource.id
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
        rule = self.site.mrn
        kind = f" (type {rule.identifier_type})" if rule.identifier_type else ""
        return f"an identifier with system {v.identifier_system(rule.assigning_authority)}{kind}"

    def _is_mrn(self, ident: Identifier) -> bool:
        rule = self.site.mrn
        return ident.system == rule.assigning_authority and (
            ident.type_code is None or rule.identifier_type is None
            or ident.type_code == rule.identifier_type)

    def _patient(self, entry: _Entry) -> PatientData:
        p, where = entry.resource, entry.where
        idents: list[Identifier] = []
        for i, raw in enumerate(p.identifier or []):
            assigner = raw.assigner.display if raw.assigner is not None else None
            authority = v.authority_of(raw.system, assigner)
            if not raw.value or not authority:
                continue
            here = f"{where}.identifier[{i}]"
            idents.append(Identifier(
                system=_fit(authority, 100, f"{here}.system") or "",
                value=_fit(raw.value, 100, f"{here}.value") or "",
                type_code=_fit(_type_code(raw), 20, f"{here}.type"),
            ))
        mrn = next((i for i in idents if self._is_mrn(i)), None)
        if mrn is None:
            raise EventError(f"{where} (Patient) has no MRN: send {self._mrn_hint()}")
        if mrn.type_code is None:
            mrn.type_code = self.site.mrn.identifier_type
        if entry.method == "PUT" and entry.url:
            self._check_target(entry, mrn, "mrn")
        data = PatientData(identifiers=idents, mrn=mrn)
        names = p.name or []
        name = next((n for n in names if n.use in ("official", "usual")), names[0] if names
                    else None)
        if name is not None:
            given = [g for g in name.given or [] if g]
            data.family = _fit(name.family, 200, f"{where}.name.family")
            data.given = _fit(given[0], 200, f"{where}.name.given") if given else None
            data.middle = _fit(" ".join(given[1:]), 200, f"{where}.name.given") or None
        if p.gender is not None:
            if p.gender not in v.SEX_BY_GENDER:
                raise InvalidFhir(f"{where}.gender {p.gender!r} is not one of male, female, "
                                  "other, unknown")
            data.sex = v.SEX_BY_GENDER[p.gender]
        if p.birthDate is not None:
            if not isinstance(p.birthDate, date):
                raise EventError(f"{where}.birthDate {p.birthDate!r} must be a full date")
            data.birth_date = p.birthDate
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
        authority = v.authority_of(ident.system, assigner)
        mrn = Identifier(authority or "", ident.value or "", _type_code(ident))
        if not self._is_mrn(mrn) or not mrn.value:
            raise EventError(f"{where} identifies the patient by {authority}|{ident.value}, "
                             f"which is not an MRN: use {self._mrn_hint()}")
        mrn.type_code = mrn.type_code or self.site.mrn.identifier_type
        return PatientData(identifiers=[mrn], mrn=mrn)

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
                    mrn = Identifier(system or "", value, None)
                    if self._is_mrn(mrn):
                        mrn.type_code = self.site.mrn.identifier_type
                        return PatientData(identifiers=[mrn], mrn=mrn)
                raise EventError(f"{where} {text}: a conditional reference must name the MRN "
                                 f"(Patient?identifier={v.identifier_system(self.site.mrn.assigning_authority)}|<mrn>)")
            held = self._server_mrn(text)
            if held is not None:
                return PatientData(identifiers=[held], mrn=held)
            if ref.identifier is None:
                raise EventError(f"{where} {text} is neither in this Bundle nor a Patient on "
                                 "this server")
        if ref.identifier is not None:
            return self._patient_from_identifier(ref.identifier, where)
        raise EventError(f"{where} must reference the Patient (reference or MRN identifier)")

    def _local(self, text: str, container: _Entry | None) -> _Entry | None:
        if text.startswith("#") and container is not None:
            for i, res in enumerate(container.resource.contained or []):
                if res.id == text[1:]:
                    return _Entry(f"{container.where}.contained[{i}]", res)
            raise EventError(f"{container.where}: {text} names no contained resource")
        return self.index.get(text)

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
            if value != ident.value or (system is not None and system != ident.system):
                raise EventError(f"{entry.where}: the body does not carry the identifier "
                                 f"its request.url {url} names")
            return
        known = (self.context.references.get(url) or {}).get(kind)
        if not isinstance(known, dict):
            raise EventError(f"{entry.where}: {url} is not known to this server")
        if (known.get("system"), known.get("value")) != (ident.system, ident.value):
            label = "visit number" if kind == "visit" else "MRN"
            raise EventError(
                f"{entry.where}: {label} {ident.system}|{ident.value} does not match {url} "
                f"({known.get('system')}|{known.get('value')}); it cannot change in an update")

    def _visit_number(self, entry: _Entry) -> Identifier:
        idents = [i for i in entry.resource.identifier or [] if i.value]
        if not idents:
            raise EventError(f"{entry.where}: Encounter.identifier (the visit number) is "
                             "required")
        chosen = next((i for i in idents if _type_code(i) == "VN"), idents[0])
        assigner = chosen.assigner.display if chosen.assigner is not None else None
        system = v.authority_of(chosen.system, assigner) or self.site.visit_number_authority
        return Identifier(_fit(system, 100, f"{entry.where}.identifier.system") or "",
                          _fit(chosen.value, 100, f"{entry.where}.identifier.value") or "",
                          "VN")

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
        code = enc.class_fhir.code
        care_status = v.CARE_STATUS_BY_CLASS.get(code or "")
        if care_status is None:
            raise EventError(f"{where}.class {code!r} is not one of IMP, OBSENC, EMER, AMB, "
                             "PRENC (v3-ActCode)")
        visit = VisitData(visit_number=visit_number, care_status=care_status,
                          status=v.STATUS_IN[enc.status])
        if enc.period is not None:
            visit.admit_time = self._instant(enc.period.start, f"{where}.period.start")
            visit.discharge_time = self._instant(enc.period.end, f"{where}.period.end")
        visit.location = self._location(enc.location, where)
        self._participant(enc.participant, visit, where)
        if enc.serviceType is not None:
            visit.hospital_service = _fit(_first_code(enc.serviceType), 50,
                                          f"{where}.serviceType")
        if (hosp := enc.hospitalization) is not None:
            if hosp.admitSource is not None:
                source = _code_in(hosp.admitSource, v.V2_ADMIT_SOURCE)
                if source is None and (fhir := _code_in(hosp.admitSource, v.ADMIT_SOURCE)):
                    source = v.V2_BY_ADMIT_SOURCE.get(fhir, fhir)
                visit.admit_source = _fit(source or _first_code(hosp.admitSource), 10,
                                          f"{where}.hospitalization.admitSource")
            if hosp.dischargeDisposition is not None:
                dd = hosp.dischargeDisposition
                code = _code_in(dd, v.NUBC_DISCHARGE)
                if code is None and (fhir := _code_in(dd, v.DISCHARGE_DISPOSITION)):
                    code = v.NUBC_BY_DISPOSITION.get(fhir, fhir)
                visit.discharge_disposition = _fit(
                    code or _first_code(dd), 10, f"{where}.hospitalization.dischargeDisposition")
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
                self._add_diagnosis(group, target, kind, dx.rank)
                if any(target is e for e in self.entries):
                    group.listed_conditions.add(id(target))

    def _location(self, locations: Any, where: str) -> Location | None:
        usable = [x for x in locations or [] if x.status not in ("planned", "reserved")]
        if not usable:
            return None
        active = [x for x in usable if x.status == "active"]
        dated = [x for x in usable if x.period is not None and x.period.start is not None]
        if active:
            chosen = active[-1]
        elif dated:
            chosen = max(dated, key=lambda x: cast(datetime, self._instant(x.period.start, where)))
        else:
            chosen = usable[-1]
        ref = chosen.location
        if ref is None:
            raise InvalidFhir(f"{where}.location.location is required")
        parts: list[str | None]
        if ref.identifier is not None and ref.identifier.system == v.LOCATION_SYSTEM \
                and ref.identifier.value:
            parts = ref.identifier.value.split("^")
        elif ref.display:
            unit, _, place = ref.display.strip().partition(" ")
            room, _, bed = place.strip().partition("-")
            parts = [unit, room, bed]
        else:
            raise EventError(f"{where}.location needs location.display (\"4WEST 412-A\") or an "
                             f"identifier with system {v.LOCATION_SYSTEM}: this server keeps no "
                             "Location resources")
        parts = [(p or None) for p in (parts + [None] * 4)[:4]]
        loc = Location(*(_fit(p, 50, f"{where}.location") for p in parts))
        return None if loc.is_empty() else loc

    @staticmethod
    def _participant(participants: Any, visit: VisitData, where: str) -> None:
        people = [p for p in participants or [] if p.individual is not None]
        if not people:
            return
        attending = next((p for p in people if any(
            code == "ATND" for t in p.type or [] for _, code in _codes(t))), people[0])
        who = attending.individual
        ident = who.identifier.value if who.identifier is not None else None
        if ident is None and who.reference and "/" in who.reference:
            ident = who.reference.rpartition("/")[2]
        visit.attending_id = _fit(ident, 50, f"{where}.participant.individual")
        visit.attending_name = _fit(who.display, 200, f"{where}.participant.individual.display")

    # -- conditions and coverage -------------------------------------------------------------
    def _diagnosis(self, entry: _Entry, kind: str | None, sequence: int) -> DiagnosisData | None:
        cond, where = entry.resource, entry.where
        verification = _first_code(cond.verificationStatus)
        if verification in ("entered-in-error", "refuted"):
            return None
        code = _code_in(cond.code, v.ICD10CM) if cond.code is not None else None
        if not code:
            raise EventError(f"{where} (Condition) has no ICD-10-CM code (system "
                             f"{v.ICD10CM})")
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
        group = self._group_for_encounter(entry.resource.encounter, entry)
        self.group_of_entry[id(entry)] = group
        if group.diagnoses is None:
            group.diagnoses = []
        self._add_diagnosis(group, entry, None, None)

    def _coverage(self, entry: _Entry) -> None:
        cov, where = entry.resource, entry.where
        if cov.status not in ("active", None):
            return
        patient = self._subject(cov.beneficiary, f"{where}.beneficiary", entry)
        plan = next((c.value for c in cov.class_fhir or []
                     if any(code == "plan" for _, code in _codes(c.type))), None)
        payer = cov.payor[0].display if cov.payor else None
        data = CoverageData(plan_code=_fit(plan, 50, f"{where}.class.value"),
                            payer_name=payer[:200] if payer else None,
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
        self.results.append(AdtEvent(RESULTS, when, patient, labs=[lab],
                                     visit=VisitData(visit_number=visit) if visit else None))

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
        if entry.kind == "Observation":
            return self.result_of_entry[id(entry)]
        if entry.kind == "Patient":
            return EntryResult("Patient", mrn=self.patients[id(entry)].mrn)
        group = self.group_of_entry.get(id(entry))
        if group is None:  # a Coverage that was not active
            return EntryResult(entry.kind)
        return EntryResult(entry.kind, mrn=group.patient.mrn, visit=group.visit.visit_number)
