"""ADT semantics: an HL7 v2 message, read through the site profile, becomes an AdtEvent."""

from __future__ import annotations

from datetime import datetime

from engine.events import (
    PATIENT_ONLY,
    AdtEvent,
    CoverageData,
    DiagnosisData,
    EventError,
    Identifier,
    Location,
    PatientData,
    VisitData,
)
from engine.hl7.ack import SUPPORTED_VERSIONS, AckError, Header
from engine.hl7.message import Message, Segment
from engine.hl7.timestamps import Hl7TimestampError, parse_date, parse_dtm
from engine.site import SiteProfile


class Hl7Refusal(Exception):
    """The message is answered AE or AR with this error; the raw input is quarantined."""

    def __init__(self, ack_code: str, error: AckError) -> None:
        super().__init__(error.text)
        self.ack_code = ack_code
        self.error = error


def header_of(msg: Message) -> Header:
    msh = msg.msh
    return Header(
        sending_application=msh.value(3),
        sending_facility=msh.value(4),
        receiving_application=msh.value(5),
        receiving_facility=msh.value(6),
        control_id=msh.value(10),
        version=msh.value(12),
        trigger=msh.value(9, 2) or _evn_trigger(msg),
        processing_id=msh.value(11),
    )


def _evn_trigger(msg: Message) -> str:
    evn = msg.segment("EVN")
    return evn.value(1) if evn else ""


def check_envelope(msg: Message, header: Header, site: SiteProfile) -> None:
    """Refuse (AR) what is not for us: wrong version, wrong type, wrong receiver, no id."""
    if not header.control_id:
        raise Hl7Refusal("AR", AckError(101, "MSH-10 message control id is empty", "MSH", 10))
    if header.version not in SUPPORTED_VERSIONS:
        raise Hl7Refusal(
            "AR",
            AckError(
                203,
                f"HL7 version {header.version or '(empty)'} in MSH-12 is not supported "
                f"(accepted: 2.3 to 2.8.2)",
                "MSH",
                12,
            ),
        )
    msg_type = msg.msh.value(9, 1)
    if msg_type != "ADT":
        raise Hl7Refusal(
            "AR",
            AckError(
                200, f"message type {msg_type or '(empty)'} is not accepted here (ADT only)",
                "MSH", 9,
            ),
        )
    if not site.accepts_receiver(header.receiving_application):
        raise Hl7Refusal(
            "AR",
            AckError(
                204,
                f"message is addressed to {header.receiving_application!r} (MSH-5), "
                f"not to this engine",
                "MSH",
                5,
            ),
        )


def event_time(msg: Message, site: SiteProfile) -> datetime:
    """When it happened: EVN-6 occurred, else EVN-2 recorded, else MSH-7."""
    evn = msg.segment("EVN")
    candidates = []
    if evn is not None:
        candidates += [(evn, 6), (evn, 2)]
    candidates.append((msg.msh, 7))
    for seg, n in candidates:
        raw = seg.value(n)
        if raw:
            when = _dtm(seg, n, site)
            if when is not None:
                return when
    raise EventError("no event time: EVN-6, EVN-2 and MSH-7 are all empty")


def _dtm(seg: Segment, n: int, site: SiteProfile, component: int = 1) -> datetime | None:
    try:
        return parse_dtm(seg.value(n, component), site.zone)
    except Hl7TimestampError as exc:
        raise Hl7Refusal("AE", AckError(102, f"{seg.name}-{n}: {exc}", seg.name, n)) from exc


def _date(seg: Segment, n: int):
    try:
        return parse_date(seg.value(n))
    except Hl7TimestampError as exc:
        raise Hl7Refusal("AE", AckError(102, f"{seg.name}-{n}: {exc}", seg.name, n)) from exc


def _opt(text: str) -> str | None:
    return text if text and text != '""' else None


def _identifiers(seg: Segment, n: int) -> list[Identifier]:
    out = []
    for rep in range(len(seg.repetitions(n))):
        value = seg.value(n, 1, rep)
        if not value:
            continue
        system = seg.value(n, 4, rep) or seg.value(n, 4, rep, sub=2)
        out.append(Identifier(system=system, value=value, type_code=_opt(seg.value(n, 5, rep))))
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
        raise Hl7Refusal("AE", AckError(100, "PID segment is missing", "PID"))
    ids = _identifiers(pid, 3)
    mrn = _mrn(ids, site)
    if mrn is None:
        rule = site.mrn
        raise Hl7Refusal(
            "AE",
            AckError(
                101,
                f"PID-3 has no MRN with assigning authority {rule.assigning_authority}"
                f"{' and type ' + rule.identifier_type if rule.identifier_type else ''}",
                "PID",
                3,
            ),
        )
    address = None
    if pid.value(11):
        keys = ("line", "line2", "city", "state", "postal_code", "country")
        address = {k: v for i, k in enumerate(keys, 1) if (v := pid.value(11, i))}
    return PatientData(
        identifiers=ids,
        mrn=mrn,
        family=_opt(pid.value(5, 1)),
        given=_opt(pid.value(5, 2)),
        middle=_opt(pid.value(5, 3)),
        birth_date=_date(pid, 7),
        sex=_opt(pid.value(8)),
        address=address,
    )


def _location(seg: Segment, n: int) -> Location | None:
    if not seg.raw(n):
        return None
    loc = Location(
        unit=_opt(seg.value(n, 1)),
        room=_opt(seg.value(n, 2)),
        bed=_opt(seg.value(n, 3)),
        facility=_opt(seg.value(n, 4)),
    )
    return None if loc.is_empty() else loc


def _visit(msg: Message, trigger: str, site: SiteProfile) -> VisitData:
    pv1 = msg.segment("PV1")
    if pv1 is None:
        raise Hl7Refusal("AE", AckError(100, f"PV1 segment is required for {trigger}", "PV1"))
    visit_ids = _identifiers(pv1, 19)
    if not visit_ids:
        raise Hl7Refusal(
            "AE", AckError(101, f"PV1-19 visit number is required for {trigger}", "PV1", 19)
        )
    visit_number = visit_ids[0]
    visit_number.system = visit_number.system or site.visit_number_authority
    patient_class = _opt(pv1.value(2))
    patient_type = _opt(pv1.value(18))
    care_status = None
    if patient_class or patient_type:
        care_status = site.status_for(patient_class, patient_type)
        if care_status is None:
            raise Hl7Refusal(
                "AE",
                AckError(
                    103,
                    f"patient class {patient_class!r} (PV1-2) with patient type "
                    f"{patient_type!r} (PV1-18) is not mapped in the site profile",
                    "PV1",
                    2,
                ),
            )
    pv2 = msg.segment("PV2")
    return VisitData(
        visit_number=visit_number,
        patient_class=patient_class,
        patient_type=patient_type,
        care_status=care_status,
        location=_location(pv1, 3),
        prior_location=_location(pv1, 6),
        attending_id=_opt(pv1.value(7, 1)),
        attending_name=_opt(" ".join(p for p in (pv1.value(7, 3), pv1.value(7, 2)) if p)),
        hospital_service=_opt(pv1.value(10)),
        admission_type=_opt(pv1.value(4)),
        admit_source=_opt(pv1.value(14)),
        admit_time=_dtm(pv1, 44, site),
        discharge_time=_dtm(pv1, 45, site),
        discharge_disposition=_opt(pv1.value(36)),
        expected_discharge_date=_date(pv2, 9) if pv2 is not None else None,
    )


def _diagnoses(msg: Message) -> list[DiagnosisData] | None:
    segs = msg.all("DG1")
    if not segs:
        return None
    out = []
    for i, dg1 in enumerate(segs, 1):
        code = dg1.value(3, 1)
        if not code:
            continue
        seq = dg1.value(1)
        out.append(
            DiagnosisData(
                code=code,
                system=_opt(dg1.value(3, 3)),
                display=_opt(dg1.value(3, 2)) or _opt(dg1.value(4)),
                diagnosis_type=_opt(dg1.value(6)),
                sequence=int(seq) if seq.isdigit() else i,
            )
        )
    return out


def _coverage(msg: Message, site: SiteProfile) -> CoverageData | None:
    in1 = msg.segment("IN1")
    if in1 is None:
        return None
    plan = _opt(in1.value(2, 1))
    return CoverageData(
        plan_code=plan,
        payer_name=_opt(in1.value(4, 1)),
        payer_class=site.payer_class_for(plan),
        authorization=_opt(in1.value(14, 1)),
    )


def to_event(msg: Message, header: Header, site: SiteProfile) -> AdtEvent:
    """Read an accepted ADT message into an AdtEvent, or refuse it with AE and a reason."""
    trigger = header.trigger
    try:
        when = event_time(msg, site)
    except EventError as exc:
        raise Hl7Refusal("AE", AckError(101, str(exc), "EVN", 2)) from exc
    patient = _patient(msg, site)
    visit = None if trigger in PATIENT_ONLY else _visit(msg, trigger, site)
    drg = None
    drg_seg = msg.segment("DRG")
    if drg_seg is not None and drg_seg.value(1):
        drg = (drg_seg.value(1, 1), _opt(drg_seg.value(1, 2)))
    prior_patient: list[Identifier] = []
    prior_visit = None
    if trigger == "A40":
        mrg = msg.segment("MRG")
        if mrg is None or not mrg.value(1):
            raise Hl7Refusal(
                "AE", AckError(101, "A40 needs MRG-1 with the prior patient identifier", "MRG", 1)
            )
        prior_patient = _identifiers(mrg, 1)
        visits = _identifiers(mrg, 5)
        prior_visit = visits[0] if visits else None
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
    )
