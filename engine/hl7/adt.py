"""ADT semantics: an HL7 v2 message, read through the site profile, becomes an AdtEvent."""

from __future__ import annotations

import math
from datetime import date, datetime
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
from engine.core.site import SiteProfile
from engine.hl7.ack import SUPPORTED_VERSIONS, AckIssue, Header
from engine.hl7.message import Message, Segment
from engine.hl7.timestamps import Hl7TimestampError, parse_date, parse_dtm

# What the store can hold. A value that does not fit would fail its insert on every retry
# ("storage unavailable"), stalling the sender's queue behind it; instead free text is cut
# to fit and identifiers or codes that do not fit are refused (AE), kept for replay.
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


def check_envelope(msg: Message, header: Header, site: SiteProfile) -> None:
    """Refuse (AR) what is not for us: wrong version, processing id, type or receiver, no id."""
    if not header.control_id:
        raise Hl7Refusal("AR", AckIssue(101, "MSH-10 message control id is empty", "MSH", 10))
    msh = msg.msh
    for n, limit in ((10, CONTROL_ID_MAX), (3, SENDER_PART_MAX), (4, SENDER_PART_MAX)):
        if len(msh.value(n)) > limit:
            raise Hl7Refusal(
                "AR", AckIssue(102, f"MSH-{n} is longer than {limit} characters", "MSH", n)
            )
    if header.version not in SUPPORTED_VERSIONS:
        raise Hl7Refusal(
            "AR",
            AckIssue(
                203,
                f"HL7 version {header.version or '(empty)'} in MSH-12 is not supported "
                f"(accepted: 2.3 to 2.8.2)",
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


def event_time(msg: Message, site: SiteProfile, zone: ZoneInfo | None = None) -> datetime:
    """When it happened: EVN-6 occurred, else EVN-2 recorded, else MSH-7.

    Every one of them that is sent must be a valid timestamp (a malformed EVN-2 is an AE
    even when EVN-6 is fine): a feed that garbles one time cannot be trusted with another.
    """
    zone = zone or site.zone
    evn = msg.segment("EVN")
    sent = _dtm(msg.msh, 7, zone)
    if evn is not None:
        recorded = _dtm(evn, 2, zone)
        sent = _dtm(evn, 6, zone) or recorded or sent
    if sent is None:
        raise EventError("no event time: EVN-6, EVN-2 and MSH-7 are all empty")
    return sent


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
    """A coded or identifying value: refused (AE) when it is too long to keep."""
    if len(text) > limit:
        raise Hl7Refusal("AE", AckIssue(
            102, f"{seg.name}-{n} is {len(text)} characters long; at most {limit} are accepted",
            seg.name, n))
    return text if text and text != '""' else None


def _clip(text: str, limit: int) -> str | None:
    """Free text: cut to what the store keeps."""
    return text[:limit] if text and text != '""' else None


def _identifiers(seg: Segment, n: int) -> list[Identifier]:
    """CX repetitions with a value; the authority is CX-4.1, else CX-4.2 (a bare OID)."""
    out = []
    for rep in range(len(seg.repetitions(n))):
        parts = seg.parts(n, rep)
        value = parts[0] if parts else ""
        if not value or value == '""':
            continue
        system = _at(parts, 4) or seg.value(n, 4, rep, sub=2)
        _code(value, _ID_VALUE, seg, n)
        _code(system, _ID_SYSTEM, seg, n)
        out.append(
            Identifier(system=system, value=value, type_code=_code(_at(parts, 5), _ID_TYPE, seg, n))
        )
    return out


def _mrn(ids: list[Identifier], site: SiteProfile) -> Identifier | None:
    rule = site.mrn
    for ident in ids:
        if ident.system == rule.assigning_authority and (
            rule.identifier_type is None or ident.type_code == rule.identifier_type
        ):
            return ident
    return None


def _patient(msg: Message, site: SiteProfile) -> PatientData:
    pid = msg.segment("PID")
    if pid is None:
        raise Hl7Refusal("AE", AckIssue(100, "PID segment is missing", "PID"))
    ids = _identifiers(pid, 3)
    mrn = _mrn(ids, site)
    if mrn is None:
        rule = site.mrn
        raise Hl7Refusal(
            "AE",
            AckIssue(
                101,
                f"PID-3 has no MRN with assigning authority {rule.assigning_authority}"
                f"{' and type ' + rule.identifier_type if rule.identifier_type else ''}",
                "PID",
                3,
            ),
        )
    address = None
    if parts := pid.parts(11):
        address = {k: v for k, v in zip(_ADDRESS, parts, strict=False) if v and v != '""'}
    name = pid.parts(5)
    return PatientData(
        identifiers=ids,
        mrn=mrn,
        family=_clip(_at(name, 1), _NAME),
        given=_clip(_at(name, 2), _NAME),
        middle=_clip(_at(name, 3), _NAME),
        birth_date=_date(pid, 7),
        sex=_code(pid.value(8), _SEX, pid, 8),
        address=address,
    )


_ADDRESS = ("line", "line2", "city", "state", "postal_code", "country")


def _location(seg: Segment, n: int) -> Location | None:
    parts = seg.parts(n)
    if not parts:
        return None
    loc = Location(
        unit=_code(parts[0], _PLACE, seg, n),
        room=_code(_at(parts, 2), _PLACE, seg, n),
        bed=_code(_at(parts, 3), _PLACE, seg, n),
        facility=_code(_at(parts, 4), _PLACE, seg, n),
    )
    return None if loc.is_empty() else loc


def _visit(msg: Message, trigger: str, site: SiteProfile, zone: ZoneInfo) -> VisitData:
    pv1 = msg.segment("PV1")
    if pv1 is None:
        raise Hl7Refusal("AE", AckIssue(100, f"PV1 segment is required for {trigger}", "PV1"))
    visit_ids = _identifiers(pv1, 19)
    if not visit_ids:
        raise Hl7Refusal(
            "AE", AckIssue(101, f"PV1-19 visit number is required for {trigger}", "PV1", 19)
        )
    visit_number = visit_ids[0]
    visit_number.system = visit_number.system or site.visit_number_authority
    patient_class = _code(pv1.value(2), _CLASS, pv1, 2)
    patient_type = _code(pv1.value(18), _TYPE, pv1, 18)
    care_status = None
    if patient_class or patient_type:
        care_status = site.status_for(patient_class, patient_type)
        if care_status is None:
            raise Hl7Refusal(
                "AE",
                AckIssue(
                    103,
                    f"patient class {patient_class!r} (PV1-2) with patient type "
                    f"{patient_type!r} (PV1-18) is not mapped in the site profile",
                    "PV1",
                    2,
                ),
            )
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
        location=_location(pv1, 3),
        prior_location=_location(pv1, 6),
        attending_id=_code(_at(attending, 1), _ATTENDING_ID, pv1, 7),
        attending_name=_clip(
            " ".join(p for p in (_at(attending, 3), _at(attending, 2)) if p and p != '""'),
            _ATTENDING_NAME,
        ),
        hospital_service=_code(pv1.value(10), _SERVICE, pv1, 10),
        admission_type=_code(pv1.value(4), _SHORT_CODE, pv1, 4),
        admit_source=_code(pv1.value(14), _SHORT_CODE, pv1, 14),
        admit_time=_dtm(pv1, 44, zone),
        discharge_time=_dtm(pv1, 45, zone),
        discharge_disposition=_code(pv1.value(36), _SHORT_CODE, pv1, 36),
        expected_discharge_date=_date(pv2, 9) if pv2 is not None else None,
    )


def _diagnoses(msg: Message) -> list[DiagnosisData] | None:
    segs = msg.all("DG1")
    if not segs:
        return None
    out = []
    for i, dg1 in enumerate(segs, 1):
        diagnosis = dg1.parts(3)
        code = _code(_at(diagnosis, 1), _DX_CODE, dg1, 3)
        if code is None:
            continue
        seq = dg1.value(1)
        out.append(
            DiagnosisData(
                code=code,
                system=_code(_at(diagnosis, 3), _DX_SYSTEM, dg1, 3),
                display=_clip(_opt(_at(diagnosis, 2)) or dg1.value(4), _DX_TEXT),
                diagnosis_type=_code(dg1.value(6), _DX_TYPE, dg1, 6),
                sequence=int(seq) if seq.isdigit() else i,
            )
        )
    return out


def _coverage(msg: Message, site: SiteProfile) -> CoverageData | None:
    in1 = msg.segment("IN1")
    if in1 is None:
        return None
    plan = _code(in1.value(2, 1), _PLAN, in1, 2)
    return CoverageData(
        plan_code=plan,
        payer_name=_clip(in1.value(4, 1), _PAYER),
        payer_class=site.payer_class_for(plan),
        authorization=_code(in1.value(14, 1), _AUTH, in1, 14),
    )


# The MRG field each identity event cannot do without (v2.5.1 ch. 3).
_MRG_NEEDS = {
    "A40": (1, "prior patient identifier"),
    "A45": (1, "prior patient identifier (the patient the visit moves from)"),
    "A47": (1, "prior patient identifier (the identifier being changed)"),
    "A50": (5, "prior visit number (the visit number being changed)"),
}


def to_event(msg: Message, header: Header, site: SiteProfile) -> AdtEvent:
    """Read an accepted ADT message into an AdtEvent, or refuse it with AE and a reason."""
    trigger = header.trigger
    zone = site.zone
    try:
        when = event_time(msg, site, zone)
    except EventError as exc:
        raise Hl7Refusal("AE", AckIssue(101, str(exc), "EVN", 2)) from exc
    patient = _patient(msg, site)
    results = _labs(msg, zone, when)
    if trigger == RESULTS:
        return AdtEvent(trigger=trigger, event_time=when, patient=patient,
                        visit=_result_visit(msg, site), labs=results or [])
    visit = None if trigger in PATIENT_ONLY else _visit(msg, trigger, site, zone)
    drg = None
    drg_seg = msg.segment("DRG")
    if drg_seg is not None:
        drg_parts = drg_seg.parts(1)
        if _code(_at(drg_parts, 1), _DRG, drg_seg, 1):
            drg = (drg_parts[0], _clip(_at(drg_parts, 2), _DRG_TEXT))
    prior_patient: list[Identifier] = []
    prior_visit = None
    mrg = msg.segment("MRG")
    if mrg is not None:
        prior_patient = _identifiers(mrg, 1)
        visits = _identifiers(mrg, 5)
        prior_visit = visits[0] if visits else None
        if prior_visit is not None:
            prior_visit.system = prior_visit.system or site.visit_number_authority
    needed = _MRG_NEEDS.get(trigger)
    if needed is not None and not (prior_visit if needed[0] == 5 else prior_patient):
        raise Hl7Refusal("AE", AckIssue(
            101, f"{trigger} needs MRG-{needed[0]} with the {needed[1]}", "MRG", needed[0]))
    return AdtEvent(
        trigger=trigger,
        event_time=when,
        patient=patient,
        visit=visit,
        diagnoses=_diagnoses(msg),
        drg=drg,
        coverage=_coverage(msg, site),
        prior_patient=prior_patient,
        prior_visit=prior_visit,
        labs=results,
    )


def _result_visit(msg: Message, site: SiteProfile) -> VisitData | None:
    """The visit a result belongs to (PV1-19), when sent: results change no visit state."""
    pv1 = msg.segment("PV1")
    ids = _identifiers(pv1, 19) if pv1 is not None else []
    if not ids:
        return None
    ids[0].system = ids[0].system or site.visit_number_authority
    return VisitData(visit_number=ids[0])


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
