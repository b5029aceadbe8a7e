"""ADT semantics: an HL7 v2 message, read through the site profile, becomes an AdtEvent."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from engine.core import lab_codes as labs
from engine.core import limits
from engine.core.errors import InvalidInput
from engine.core.events import (
    PATIENT_ONLY,
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
from engine.hl7.ack import SUPPORTED_VERSIONS, AckIssue, Header
from engine.hl7.message import DOUBLED_ESCAPE, Message, Segment
from engine.hl7.timestamps import Hl7TimestampError, date_precision, parse_date, parse_dtm

# What the store can hold (engine.core.limits, generous). A value that does not fit would
# fail its insert on every retry, stalling the sender's queue behind it; instead coded and
# descriptive values are cut to fit with a warning on the inbound row, and only identifiers
# longer than their bound (a cut one would name someone else) are refused (AE).
CONTROL_ID_MAX = min(199, limits.CONTROL_ID)  # MSH-10 is ST(199) from 2.6
SENDER_PART_MAX = (limits.SENDER - 1) // 2  # "application|facility"
_ID_VALUE = limits.ID_VALUE
_ID_SYSTEM = limits.ID_SYSTEM
_ID_TYPE = limits.ID_TYPE
_NAME = limits.NAME
_SEX = limits.SEX
_PLACE = limits.PLACE
_CLASS = limits.PATIENT_CLASS
_TYPE = limits.PATIENT_TYPE
_ATTENDING_ID = limits.ATTENDING_ID
_ATTENDING_NAME = limits.ATTENDING_NAME
_SERVICE = limits.SERVICE
_SHORT_CODE = limits.SHORT_CODE  # admission type, admit source, disposition
_DX_CODE = limits.DX_CODE
_DX_SYSTEM = limits.DX_SYSTEM
_DX_TYPE = limits.DX_TYPE
_DX_TEXT = limits.DX_TEXT
_DRG = limits.DRG
_DRG_TEXT = limits.DRG_TEXT
_PLAN = limits.PLAN
_PAYER = limits.PAYER
_AUTH = limits.AUTH


Notes = list[AckIssue]  # warnings: accepted, but not kept exactly as sent


class Hl7Refusal(InvalidInput):
    """The message is answered AE or AR with this error; the raw input is quarantined.

    Raised by the HL7 mapping itself, which knows the message's shape, so it carries its
    answer: AR when the envelope is refused, AE when the content is."""

    def __init__(self, ack_code: str, error: AckIssue) -> None:
        super().__init__(error.text)
        self.ack_code = ack_code
        self.error = error


def header_of(msg: Message) -> Header:
    """The MSH facts routing, deduplication and the ACK need."""
    msh = msg.msh
    value = msh.value
    routing = (tuple(msh.parts(3)), tuple(msh.parts(4)), tuple(msh.parts(5)), tuple(msh.parts(6)))
    return Header(
        sending_application=routing[0][0][:SENDER_PART_MAX] if routing[0] else "",
        sending_facility=routing[1][0][:SENDER_PART_MAX] if routing[1] else "",
        receiving_application=routing[2][0] if routing[2] else "",
        receiving_facility=routing[3][0] if routing[3] else "",
        control_id=value(10)[:CONTROL_ID_MAX],
        version=value(12),
        trigger=value(9, 2) or _evn_trigger(msg),
        processing_id=value(11),
        routing=routing,
    )


def _at(parts: list[str], k: int) -> str:
    """Component k (1-based) of a `Segment.parts` list, '' when absent."""
    return parts[k - 1] if k <= len(parts) else ""


def _evn_trigger(msg: Message) -> str:
    evn = msg.segment("EVN")
    return evn.value(1) if evn else ""


# HL7 versions this engine reads, oldest first: a 2.x version outside them is read as the
# nearest (v2 is backward compatible by rule: fields are only added or withdrawn).
_READ_AS = sorted(SUPPORTED_VERSIONS, key=lambda v: tuple(int(p) for p in v.split(".")))


def version_read_as(version: str) -> str | None:
    """The supported version a message of `version` (MSH-12.1) is read as; None if not v2."""
    if version in SUPPORTED_VERSIONS:
        return version
    parts = version.strip().split(".")
    if len(parts) < 2 or parts[0] != "2" or not all(p.isdigit() for p in parts):
        return None
    key = tuple(int(p) for p in parts)
    older = [v for v in _READ_AS if tuple(int(p) for p in v.split(".")) <= key]
    return older[-1] if older else _READ_AS[0]


def _check_processing_id(processing_id: str, site: SiteProfile) -> None:
    """Training (T) and debugging (D) feeds must not change live state: refuse (AR) them."""
    accepted = ", ".join(site.accepted_processing_ids)
    if not processing_id:
        raise Hl7Refusal("AR", AckIssue(
            101, f"MSH-11 processing id is empty (this engine accepts {accepted})", "MSH", 11))
    if not site.accepts_processing_id(processing_id):
        raise Hl7Refusal("AR", AckIssue(
            202, f"processing id {processing_id[:20]!r} in MSH-11 is not accepted here "
            f"(this engine accepts {accepted})", "MSH", 11))


def check_envelope(msg: Message, header: Header, site: SiteProfile,
                   notes: Notes | None = None) -> None:
    """Refuse (AR) what is not for us: wrong version, processing id, type or receiver.

    An empty MSH-10 is accepted with a warning (library samples and hand-written tests send
    none): the message is applied, but a resend of it cannot be told from a new message, and
    its ACK's MSA-2 is empty too."""
    if not header.control_id and notes is not None:
        notes.append(AckIssue(101, "MSH-10 message control id is empty: applied, but a resend "
                                   "cannot be recognised as a duplicate", "MSH", 10))
    msh = msg.msh
    for n, limit in ((10, CONTROL_ID_MAX), (3, SENDER_PART_MAX), (4, SENDER_PART_MAX)):
        if len(msh.value(n)) > limit:
            raise Hl7Refusal(
                "AR", AckIssue(102, f"MSH-{n} is longer than {limit} characters", "MSH", n)
            )
    if version_read_as(header.version) is None:
        raise Hl7Refusal(
            "AR",
            AckIssue(
                203,
                f"HL7 version {header.version[:20] or '(empty)'} in MSH-12 is not supported "
                f"(accepted: v2, 2.1 to 2.9, read as 2.3 to 2.8.2)",
                "MSH",
                12,
            ),
        )
    _check_processing_id(header.processing_id, site)
    msg_type = msg.msh.value(9, 1)
    if not (msg_type == "ADT" or (msg_type == "ORU" and header.trigger == RESULTS)):
        raise Hl7Refusal(
            "AR",
            AckIssue(
                200, f"message type {msg_type or '(empty)'}^{header.trigger} is not accepted "
                "here (ADT and ORU^R01 only)", "MSH", 9,
            ),
        )
    if not site.accepts_receiver(header.receiving_application):
        raise Hl7Refusal(
            "AR",
            AckIssue(
                204,
                f"message is addressed to {header.receiving_application!r} (MSH-5), "
                f"not to this engine",
                "MSH",
                5,
            ),
        )


def event_time(msg: Message, site: SiteProfile, zone: ZoneInfo | None = None,
               notes: Notes | None = None) -> datetime:
    """When it happened: EVN-6 occurred, else EVN-2 recorded, else MSH-7.

    The first of them that is usable is the event time; one that is sent but malformed is
    passed over with a warning (senders garble MSH-7 more often than EVN). Only a message
    with no usable time at all is refused: with the first malformed time's error when one
    was sent, else as having none.
    """
    zone = zone or site.zone
    evn = msg.segment("EVN")
    places = [(evn, 6), (evn, 2)] if evn is not None else []
    found: tuple[datetime, str] | None = None
    malformed: list[Hl7Refusal] = []
    for seg, n in [*places, (msg.msh, 7)]:
        try:
            when = _dtm(seg, n, zone)
        except Hl7Refusal as refusal:
            malformed.append(refusal)
            continue
        if when is not None and found is None:
            found = when, f"{seg.name}-{n}"
    if found is None:
        if malformed:
            raise malformed[0]
        raise EventError("no event time: EVN-6, EVN-2 and MSH-7 are all empty")
    if notes is not None:
        notes.extend(AckIssue(r.error.code, f"{r.error.text}; the event time is read from "
                              f"{found[1]}", r.error.segment, r.error.field) for r in malformed)
    return found[0]


# Event, admit and discharge times outside these years are typing errors or test data;
# accepted, they would stretch midnight counts and clocks over centuries.
PLAUSIBLE_YEARS = range(1900, 2200)


def _dtm(seg: Segment, n: int, zone: ZoneInfo) -> datetime | None:
    """A TS/DTM field (first component); empty or the HL7 null '""' gives None."""
    text = seg.value(n)
    if not text or text == '""':
        return None
    try:
        when = parse_dtm(text, zone)
    except Hl7TimestampError as exc:
        raise Hl7Refusal("AE", AckIssue(102, f"{seg.name}-{n}: {exc}", seg.name, n)) from exc
    if when is not None and when.year not in PLAUSIBLE_YEARS:
        raise Hl7Refusal("AE", AckIssue(
            102, f"{seg.name}-{n}: {text!r} is outside {PLAUSIBLE_YEARS.start}-"
            f"{PLAUSIBLE_YEARS.stop - 1}", seg.name, n))
    return when


def _date(seg: Segment, n: int) -> date | None:
    """A DT: YYYY, YYYYMM or YYYYMMDD (a partial date reads as its first day)."""
    text = seg.value(n)
    if not text or text == '""':
        return None
    try:
        return parse_date(text)
    except Hl7TimestampError as exc:
        raise Hl7Refusal("AE", AckIssue(102, f"{seg.name}-{n}: {exc}", seg.name, n)) from exc


def _opt(text: str) -> str | None:
    return text if text and text != '""' else None


def _code(text: str, limit: int, seg: Segment, n: int) -> str | None:
    """An identifying value (a key): refused (AE) beyond its generous bound, since a cut key
    would name another patient or stay."""
    if len(text) > limit:
        raise Hl7Refusal("AE", AckIssue(
            102, f"{seg.name}-{n} is {len(text)} characters long; at most {limit} are accepted",
            seg.name, n))
    return text if text and text != '""' else None


def _clip(text: str, limit: int, seg: Segment, n: int, notes: Notes) -> str | None:
    """A coded or descriptive value: kept whole up to `limit` (engine.core.limits, wide),
    beyond it cut to fit with a warning, never refused."""
    if not text or text == '""':
        return None
    if len(text) > limit:
        notes.append(AckIssue(102, f"{seg.name}-{n} is {len(text)} characters long; the "
                                   f"first {limit} are kept", seg.name, n))
        return text[:limit]
    return text


def _identifiers(seg: Segment, n: int, site: SiteProfile, default_system: str,
                 notes: Notes | None = None) -> list[Identifier]:
    """CX repetitions with a value, each under its canonical system (engine.core.identity).

    The authority is CX-4 (namespace&universal id&type); a repetition that names none gets
    `default_system`. A repetition too long to keep is left out with a warning, unless it
    is one of the site's MRNs (a key: refused, AE)."""
    out = []
    for rep in range(len(seg.repetitions(n))):
        parts = seg.parts(n, rep)
        value = parts[0] if parts else ""
        if not value or value == '""':
            continue
        namespace = _opt(_at(parts, 4)) or ""
        universal = _opt(seg.value(n, 4, rep, sub=2)) or ""
        system = site.id_system(namespace, universal, seg.value(n, 4, rep, sub=3)) \
            or default_system
        type_code = _opt(_at(parts, 5))
        if len(value) > _ID_VALUE or len(system) > _ID_SYSTEM or \
                len(type_code or "") > _ID_TYPE:
            if notes is None or site.mrn_rank(system[:_ID_SYSTEM], type_code) is not None:
                raise Hl7Refusal("AE", AckIssue(
                    102, f"{seg.name}-{n} repetition {rep + 1} is too long for a key (value "
                    f"{len(value)} of at most {_ID_VALUE}, authority {len(system)} of "
                    f"{_ID_SYSTEM}, type {len(type_code or '')} of {_ID_TYPE} characters)",
                    seg.name, n))
            notes.append(AckIssue(102, f"{seg.name}-{n} repetition {rep + 1} is too long to "
                                       f"keep (value {len(value)}, system {len(system)} "
                                       "characters): left out", seg.name, n))
            continue
        kept_namespace = site.namespace_of(system, namespace)
        out.append(Identifier(system=system, value=value, type_code=type_code,
                              namespace=kept_namespace[:_ID_SYSTEM] if kept_namespace else None))
    return out


def _mrn(ids: list[Identifier], site: SiteProfile) -> tuple[Identifier | None, str | None]:
    """The MRN: the identifier of the most preferred listed authority (type MR, or none,
    before others), else by `mrn_fallback: first` the first of type MR, else the first;
    with a warning when the fallback chose it."""
    ranked = [(rank, (i.type_code or "MR").upper() != "MR", k, i) for k, i in enumerate(ids)
              if (rank := site.mrn_rank(i.system, i.type_code)) is not None]
    if ranked:
        return min(ranked, key=lambda t: t[:3])[3], None
    if not ids or site.mrn_fallback == "refuse":
        return None, None
    k = first_of_type((i.type_code for i in ids), "MR")
    chosen = ids[k if k is not None else 0]
    return chosen, (f"no identifier names an MRN authority of the site profile; the "
                    f"{'first of type MR' if k is not None else 'first'} ({chosen.system}) "
                    "is taken as the MRN")


def _mrn_refusal(site: SiteProfile) -> Hl7Refusal:
    wanted = " or ".join(
        a.label + (f" type {a.identifier_type}" if a.identifier_type else "") for a in site.mrn)
    return Hl7Refusal("AE", AckIssue(101, f"PID-3 has no MRN of authority {wanted}", "PID", 3))


def _patient(msg: Message, site: SiteProfile, notes: Notes) -> PatientData:
    pid = msg.segment("PID")
    if pid is None:
        raise Hl7Refusal("AE", AckIssue(100, "PID segment is missing", "PID"))
    ids = _identifiers(pid, 3, site, site.default_id_system, notes)
    if not ids and site.mrn_fallback == "first":
        # No PID-3: the patient id of 2.3-era feeds (PID-2), else the alternate (PID-4).
        for n in (2, 4):
            if ids := _identifiers(pid, n, site, site.default_id_system, notes):
                notes.append(AckIssue(101, f"PID-3 has no identifier: PID-{n} is taken as "
                                           "the MRN", "PID", 3))
                break
    mrn, fallback = _mrn(ids, site)
    if mrn is None:
        raise _mrn_refusal(site)
    if fallback:
        notes.append(AckIssue(103, fallback, "PID", 3))
    alternates = sorted(
        (i for i in ids if i is not mrn and site.mrn_rank(i.system, i.type_code) is not None),
        key=lambda i: site.mrn_rank(i.system, i.type_code) or 0)
    address = None
    if parts := _by_type(pid, 11, 7, "H"):
        address = {k: kept for k, v in zip(_ADDRESS, parts, strict=False)
                   if (kept := _clip(v, _NAME, pid, 11, notes))}
    name = _by_type(pid, 5, 7, "L")
    try:
        birth_date = _date(pid, 7)
    except Hl7Refusal as refusal:  # a garbled birth date must not lose the stay
        notes.append(AckIssue(102, f"{refusal.error.text}; the birth date is not changed",
                              "PID", 7))
        birth_date = None
    return PatientData(
        identifiers=ids,
        mrn=mrn,
        alternates=alternates,
        family=_clip(_at(name, 1), _NAME, pid, 5, notes),
        given=_clip(_at(name, 2), _NAME, pid, 5, notes),
        middle=_clip(_at(name, 3), _NAME, pid, 5, notes),
        birth_date=birth_date,
        birth_precision=date_precision(pid.value(7)) if birth_date else None,
        sex=_clip(pid.value(8), _SEX, pid, 8, notes),
        address=address,
    )


_ADDRESS = ("line", "line2", "city", "state", "postal_code", "country")


def _by_type(seg: Segment, n: int, type_at: int, wanted: str) -> list[str]:
    """The repetition of field n whose type (component `type_at`) is `wanted`, else the
    first that is not empty: the legal name (XPN-7 L) and home address (XAD-7 H) are chosen
    by type, since senders put an alias or a mailing address first too."""
    first: list[str] = []
    for rep in range(len(seg.repetitions(n))):
        parts = seg.parts(n, rep)
        if not any(p and p != '""' for p in parts[:type_at - 1]):
            continue
        if _at(parts, type_at).upper() == wanted:
            return parts
        first = first or parts
    return first

def _location(seg: Segment, n: int, notes: Notes) -> Location | None:
    parts = seg.parts(n)
    if not parts:
        return None
    loc = Location(
        unit=_clip(parts[0], _PLACE, seg, n, notes),
        room=_clip(_at(parts, 2), _PLACE, seg, n, notes),
        bed=_clip(_at(parts, 3), _PLACE, seg, n, notes),
        facility=_clip(_at(parts, 4), _PLACE, seg, n, notes),
    )
    return None if loc.is_empty() else loc


def _visit_number(msg: Message, pv1: Segment | None, site: SiteProfile,
                  notes: Notes | None = None) -> Identifier | None:
    """PV1-19, else the PID-18 patient account number (Meditech- and Cerner-like feeds
    carry the stay there), under the visit system rules: no authority, the site's."""
    ids = _identifiers(pv1, 19, site, site.visit_system) if pv1 is not None else []
    if not ids and (pid := msg.segment("PID")) is not None:
        ids = _identifiers(pid, 18, site, site.visit_system)
        if ids and notes is not None:
            notes.append(AckIssue(101, "PV1-19 is empty: the PID-18 account number is the "
                                       "visit number", "PV1", 19))
    return ids[0] if ids else None


# A visit update with no PV1 at all changes the patient only (no stay is named or sent).
PATIENT_UPDATE_WITHOUT_PV1 = frozenset({"A08"})
# Identity events whose PV1-19 is the key being moved or changed to: never guessed.
_NEEDS_VISIT_NUMBER = frozenset({"A45", "A50"})


def _visit(msg: Message, trigger: str, site: SiteProfile, zone: ZoneInfo,
           notes: Notes) -> VisitData | None:
    """The PV1/PV2 visit. No visit number (PV1-19, PID-18), or no PV1, is not refused here:
    the stay is then the patient's one open stay, or a new one under a synthetic key
    (engine.intake.encounters), and only a stay that cannot be told is refused there."""
    pv1 = msg.segment("PV1")
    if pv1 is None and trigger in PATIENT_UPDATE_WITHOUT_PV1:
        notes.append(AckIssue(100, "no PV1: patient updated, no stay changed", "PV1"))
        return None
    if pv1 is None and trigger not in _NEEDS_VISIT_NUMBER:
        notes.append(AckIssue(100, f"no PV1 segment: {trigger} has no visit data", "PV1"))
        return VisitData(visit_number=_visit_number(msg, None, site, notes))
    if pv1 is None:
        raise Hl7Refusal("AE", AckIssue(100, f"PV1 segment is required for {trigger}", "PV1"))
    visit_number = _visit_number(msg, pv1, site, notes)
    if visit_number is None and trigger in _NEEDS_VISIT_NUMBER:
        raise Hl7Refusal("AE", AckIssue(
            101, f"PV1-19 visit number (or PID-18 account number) is required for {trigger}",
            "PV1", 19))
    patient_class = _clip(pv1.value(2), _CLASS, pv1, 2, notes)
    patient_type = _clip(pv1.value(18), _TYPE, pv1, 18, notes)
    care_status = None
    if patient_class or patient_type:
        care_status = site.status_for(patient_class, patient_type)
        if care_status is None:
            # A local or new code: the stay is applied, its care status left as it was
            # (unknown on a new stay, so no rule that asks for one fires), and the operator
            # told, rather than the whole stay lost for one code.
            notes.append(AckIssue(
                103, f"patient class {(patient_class or '')[:20]!r} (PV1-2) with patient "
                f"type {(patient_type or '')[:20]!r} (PV1-18) is not mapped in the site "
                "profile; care status not changed", "PV1", 2))
    pv2 = msg.segment("PV2")
    attending = pv1.parts(7)
    # HL7 '""' means "erase this value", unlike an empty field ("not sent").
    nulled = {
        "attending_id": pv1.raw(7) == '""',
        "attending_name": pv1.raw(7) == '""',
        "hospital_service": pv1.raw(10) == '""',
        "admit_source": pv1.raw(14) == '""',
        "discharge_disposition": pv1.raw(36) == '""',
        "expected_discharge_date": pv2 is not None and pv2.raw(9) == '""',
    }
    return VisitData(
        cleared=frozenset(name for name, erased in nulled.items() if erased),
        visit_number=visit_number,
        patient_class=patient_class,
        patient_type=patient_type,
        care_status=care_status,
        location=_location(pv1, 3, notes),
        prior_location=_location(pv1, 6, notes),
        attending_id=_clip(_at(attending, 1), _ATTENDING_ID, pv1, 7, notes),
        attending_name=_clip(
            " ".join(p for p in (_at(attending, 3), _at(attending, 2)) if p and p != '""'),
            _ATTENDING_NAME, pv1, 7, notes,
        ),
        hospital_service=_clip(pv1.value(10), _SERVICE, pv1, 10, notes),
        admission_type=_clip(pv1.value(4), _SHORT_CODE, pv1, 4, notes),
        admit_source=_clip(pv1.value(14), _SHORT_CODE, pv1, 14, notes),
        admit_time=_soft(lambda: _dtm(pv1, 44, zone), notes, "the event time stands"),
        discharge_time=_soft(lambda: _dtm(pv1, 45, zone), notes, "the event time stands"),
        discharge_disposition=_clip(pv1.value(36), _SHORT_CODE, pv1, 36, notes),
        expected_discharge_date=_soft(lambda: _date(pv2, 9), notes,
                                      "the expected discharge date is not changed")
        if pv2 is not None else None,
    )


_T = TypeVar("_T")


def _soft(read: Callable[[], _T | None], notes: Notes, consequence: str) -> _T | None:
    """A visit time that is garbled is a warning with its consequence, not a lost message:
    each has a fallback (the event time, the value on file)."""
    try:
        return read()
    except Hl7Refusal as refusal:
        notes.append(AckIssue(refusal.error.code, f"{refusal.error.text}; {consequence}",
                              refusal.error.segment, refusal.error.field))
        return None


def _diagnoses(msg: Message, notes: Notes) -> list[DiagnosisData] | None:
    segs = msg.all("DG1")
    if not segs:
        return None
    out = []
    for i, dg1 in enumerate(segs, 1):
        diagnosis = dg1.parts(3)
        code = _clip(_at(diagnosis, 1), _DX_CODE, dg1, 3, notes)
        if code is None:
            continue
        seq = dg1.value(1)
        out.append(
            DiagnosisData(
                code=code,
                system=_clip(_at(diagnosis, 3), _DX_SYSTEM, dg1, 3, notes),
                display=_clip(_opt(_at(diagnosis, 2)) or dg1.value(4), _DX_TEXT, dg1, 3, notes),
                diagnosis_type=_clip(dg1.value(6), _DX_TYPE, dg1, 6, notes),
                sequence=int(seq) if seq.isdigit() else i,
            )
        )
    return out


def _coverage(msg: Message, site: SiteProfile, notes: Notes) -> CoverageData | None:
    in1 = msg.segment("IN1")
    if in1 is None:
        return None
    plan = _clip(in1.value(2, 1), _PLAN, in1, 2, notes)
    return CoverageData(
        plan_code=plan,
        payer_name=_clip(in1.value(4, 1), _PAYER, in1, 4, notes),
        payer_class=site.payer_class_for(plan),
        authorization=_clip(in1.value(14, 1), _AUTH, in1, 14, notes),
    )


# The MRG field each identity event cannot do without (v2.5.1 ch. 3).
_MRG_NEEDS = {
    "A40": (1, "prior patient identifier"),
    "A45": (1, "prior patient identifier (the patient the visit moves from)"),
    "A47": (1, "prior patient identifier (the identifier being changed)"),
    "A50": (5, "prior visit number (the visit number being changed)"),
}


def to_event(msg: Message, header: Header, site: SiteProfile,
             notes: Notes | None = None) -> AdtEvent:
    """Read an accepted ADT message into an AdtEvent, or refuse it with AE and a reason.

    What is accepted but not kept exactly as sent is added to `notes` as warnings."""
    notes = notes if notes is not None else []
    if msg.msh.raw(2) == DOUBLED_ESCAPE:
        notes.append(AckIssue(102, f"MSH-2 is '{DOUBLED_ESCAPE}' (the escape character "
                                   "doubled): read as '^~\\&'", "MSH", 2))
    trigger = header.trigger
    zone = site.zone
    read_as = version_read_as(header.version)
    if read_as is not None and read_as != header.version:
        notes.append(AckIssue(203, f"HL7 version {header.version[:20]} (MSH-12) is read as "
                                   f"{read_as}", "MSH", 12))
    try:
        when = event_time(msg, site, zone, notes)
    except EventError as exc:
        raise Hl7Refusal("AE", AckIssue(101, str(exc), "EVN", 2)) from exc
    patient = _patient(msg, site, notes)
    results = _labs(msg, zone, when)
    if trigger == RESULTS:
        return AdtEvent(trigger=trigger, event_time=when, patient=patient,
                        visit=_result_visit(msg, site), labs=results or [])
    visit = None if trigger in PATIENT_ONLY else _visit(msg, trigger, site, zone, notes)
    drg = None
    drg_seg = msg.segment("DRG")
    if drg_seg is not None:
        drg_parts = drg_seg.parts(1)
        if drg_code := _clip(_at(drg_parts, 1), _DRG, drg_seg, 1, notes):
            drg = (drg_code, _clip(_at(drg_parts, 2), _DRG_TEXT, drg_seg, 1, notes))
    prior_patient: list[Identifier] = []
    prior_visit = None
    mrg = msg.segment("MRG")
    if mrg is not None:
        prior_patient = _identifiers(mrg, 1, site, site.default_id_system)
        visits = _identifiers(mrg, 5, site, site.visit_system)
        prior_visit = visits[0] if visits else None
    needed = _MRG_NEEDS.get(trigger)
    if needed is not None and not (prior_visit if needed[0] == 5 else prior_patient):
        raise Hl7Refusal("AE", AckIssue(
            101, f"{trigger} needs MRG-{needed[0]} with the {needed[1]}", "MRG", needed[0]))
    return AdtEvent(
        trigger=trigger,
        event_time=when,
        patient=patient,
        visit=visit,
        diagnoses=_diagnoses(msg, notes),
        drg=drg,
        coverage=_coverage(msg, site, notes),
        prior_patient=prior_patient,
        prior_visit=prior_visit,
        labs=results,
    )


def _result_visit(msg: Message, site: SiteProfile) -> VisitData | None:
    """The visit a result belongs to (PV1-19), when sent: results change no visit state."""
    number = _visit_number(msg, msg.segment("PV1"), site)
    return VisitData(visit_number=number) if number is not None else None


def _labs(msg: Message, zone: ZoneInfo, when: datetime) -> list[LabData] | None:
    """OBX results with a LOINC code the engine uses (others are not kept)."""
    obr = msg.segment("OBR")
    default = (_dtm(obr, 7, zone) if obr is not None else None) or when
    out = []
    for obx in msg.all("OBX"):
        code = obx.value(3, 1)
        if code not in labs.LOINC:
            continue
        status = _opt(obx.value(11)) or None
        taken = _dtm(obx, 14, zone) or default
        if status in labs.WITHDRAWN or status in labs.NO_RESULT:
            out.append(LabData(labs.LOINC[code][0], code, 0.0, "", taken, status))
            continue
        text = obx.value(5)
        try:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
        except ValueError as exc:
            raise Hl7Refusal("AE", AckIssue(
                102, f"OBX-5 {text[:40]!r} for LOINC {code} is not a number", "OBX", 5)) from exc
        try:
            name, value, unit = labs.reading(code, number, obx.value(6, 1), "OBX-6")
        except EventError as exc:
            raise Hl7Refusal("AE", AckIssue(102, str(exc), "OBX", 6)) from exc
        out.append(LabData(name, code, value, unit, taken, status))
    return out or None
