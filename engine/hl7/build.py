"""Synthetic HL7 v2 messages: the one builder behind the tests, the ruleset case stories, the
simulator, the benchmarks and the fixture files, so every synthetic feed is written the same
way. Nothing built here is real patient data: callers supply invented people.

Three levels, each on the one below:

* ER7 text: `segment` (fields by number), `er7` (segments, CR-terminated), `cx`.
* Segments by their HL7 field names: `msh`, `evn`, `pid`, `pv1`, `pv2`, `dg1`, `drg`, `in1`,
  `obr`, `obx`, `mrg`. A field not given is empty; trailing empty fields are trimmed unless
  `pad_to` keeps them (real feeds do both).
* Whole messages: `adt`, `merge` and `oru` for the GENHOSP test feed (tests/, bench/), and
  `site_message` for a `StoryStep` told in clinical words and sent in a site profile's own
  dialect (ruleset case stories, the simulator).

Pure: text in, text out; no parsing, no storage.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from engine.core.lab_codes import LOINC

if TYPE_CHECKING:  # types only: the builder needs no pydantic (fixtures/hl7/generate.py)
    from engine.core.site import SiteProfile

ENCODING = "^~\\&"
Fields = Mapping[int, object]


class BuildError(ValueError):
    """The message cannot be built as asked (a status the site has no code for...)."""


# -- ER7 text -----------------------------------------------------------------------------

def segment(name: str, fields: Fields, pad_to: int = 0) -> str:
    """A segment from {field number: value}. Trailing empty fields are trimmed, down to
    `pad_to` fields when that is given (real feeds send such padding)."""
    values = [str(fields.get(i) or "") for i in range(1, max([0, *fields.keys()]) + 1)]
    while len(values) > pad_to and values[-1] == "":
        values.pop()
    values += [""] * (pad_to - len(values))
    return "|".join([name, *values])


def er7(segments: Iterable[str]) -> str:
    """The message text: every segment ends in CR, the last one too."""
    segments = list(segments)
    for s in segments:
        if "\r" in s or "\n" in s:
            raise BuildError(f"a segment holds a line break: {s[:40]!r}")
    return "\r".join(segments) + "\r"


def cx(identifier: str, authority: str, kind: str) -> str:
    """An identifier (CX): id^^^assigning authority^identifier type."""
    return f"{identifier}^^^{authority}^{kind}"


def hd(namespace: str | None, oid: str | None = None) -> str:
    """An assigning authority (HD): namespace, `namespace&OID&ISO`, or `&OID&ISO`."""
    return f"{namespace or ''}&{oid}&ISO" if oid else namespace or ""


def _oid_or_namespace(authority: str) -> str:
    """A site's visit authority as a HD: an OID as `&OID&ISO`, else the namespace."""
    bare = authority.removeprefix("urn:oid:")
    is_oid = bool(bare) and all(p.isdigit() for p in bare.split("."))
    return hd(None, bare) if is_oid and "." in bare else authority


# -- segments -----------------------------------------------------------------------------

def msh(trigger: str, control_id: str, when: str, *, message_type: str = "ADT",
        structure: str = "", version: str = "2.5.1", sending_application: str = "ADTSYS",
        sending_facility: str = "GENHOSP", receiving_application: str = "DCPLAN",
        receiving_facility: str = "GENHOSP", processing_id: str = "P",
        extra: Fields | None = None) -> str:
    """MSH; MSH-9 is type^trigger, ^structure too when one is given. MSH-2 to MSH-12 are
    always written (an empty MSH-11 or MSH-12 stays a field), `extra` adds MSH-13 on."""
    fields = {2: ENCODING, 3: sending_application, 4: sending_facility,
              5: receiving_application, 6: receiving_facility, 7: when,
              9: f"{message_type}^{trigger}" + (f"^{structure}" if structure else ""),
              10: control_id, 11: processing_id, 12: version, **(extra or {})}
    return "MSH|" + "|".join(str(fields.get(i) or "") for i in range(2, max(fields) + 1))


def evn(trigger: str, recorded: str, *, occurred: str = "", reason: str = "",
        operator: str = "", facility: str = "", pad_to: int = 0) -> str:
    """EVN-1 trigger, EVN-2 recorded, EVN-4 reason, EVN-5 operator, EVN-6 occurred,
    EVN-7 event facility."""
    return segment("EVN", {1: trigger, 2: recorded, 4: reason, 5: operator, 6: occurred,
                           7: facility}, pad_to)


def pid(identifiers: str, name: str, *, birth_date: str = "", sex: str = "",
        address: str = "", phone: str = "", language: str = "", marital: str = "",
        ssn: str = "", extra: Fields | None = None, pad_to: int = 0) -> str:
    """PID-3 identifiers, 5 name, 7 birth date, 8 sex, 11 address, 13 home phone,
    15 language, 16 marital status, 19 SSN (withdrawn in 2.7)."""
    return segment("PID", {1: "1", 3: identifiers, 5: name, 7: birth_date, 8: sex,
                           11: address, 13: phone, 15: language, 16: marital, 19: ssn,
                           **(extra or {})}, pad_to)


def pv1(patient_class: str, location: str = "", *, admission_type: str = "",
        prior_location: str = "", attending: str = "", service: str = "",
        admit_source: str = "", admitting: str = "", patient_type: str = "", visit: str = "",
        disposition: str = "", discharged_to: str = "", admit_time: str = "",
        discharge_time: str = "", extra: Fields | None = None, pad_to: int = 0) -> str:
    """PV1-2 class, 3 location, 4 admission type, 6 prior location, 7 attending,
    10 service, 14 admit source, 17 admitting doctor, 18 patient type, 19 visit number,
    36 disposition, 37 discharged to, 44 admit time, 45 discharge time."""
    return segment("PV1", {1: "1", 2: patient_class, 3: location, 4: admission_type,
                           6: prior_location, 7: attending, 10: service, 14: admit_source,
                           17: admitting, 18: patient_type, 19: visit, 36: disposition,
                           37: discharged_to, 44: admit_time, 45: discharge_time,
                           **(extra or {})}, pad_to)


def pv2(*, admit_reason: str = "", expected_admit: str = "", expected_discharge: str = "",
        extra: Fields | None = None) -> str:
    """PV2-3 admit reason (CWE), 8 expected admit date, 9 expected discharge date."""
    return segment("PV2", {3: admit_reason, 8: expected_admit, 9: expected_discharge,
                           **(extra or {})})


def dg1(set_id: int, code: str, *, text: str = "", dx_type: str = "", diagnosed_at: str = "",
        coding_method: str = "", pad_to: int = 0) -> str:
    """DG1-3 code^text^I10, 5 diagnosis time, 6 type (A admitting, W working, F final);
    DG1-2 coding method was required in 2.3."""
    return segment("DG1", {1: str(set_id), 2: coding_method, 3: f"{code}^{text}^I10",
                           5: diagnosed_at, 6: dx_type}, pad_to)


def drg(code: str, *, title: str = "", assigned_at: str = "") -> str:
    """DRG-1 the bare code, or code^title^MS-DRG with a title; DRG-2 assigned time."""
    return segment("DRG", {1: f"{code}^{title}^MS-DRG" if title else code, 2: assigned_at})


def in1(set_id: int, plan: str, *, company_id: str = "", company_name: str = "",
        company_address: str = "", group: str = "", plan_effective: str = "",
        authorization: str = "", plan_type: str = "", insured: str = "",
        relationship: str = "", policy: str = "") -> str:
    """IN1-2 plan, 3 company id, 4 company name, 5 its address, 8 group number,
    12 plan effective date, 14 authorization, 15 plan type, 16 insured's name,
    17 relationship to the insured, 36 policy number."""
    return segment("IN1", {1: str(set_id), 2: plan, 3: company_id, 4: company_name,
                           5: company_address, 8: group, 12: plan_effective,
                           14: authorization, 15: plan_type, 16: insured, 17: relationship,
                           36: policy})


def obr(set_id: int, service: str, *, placer: str = "", filler: str = "",
        requested_at: str = "", observed_at: str = "", result_status: str = "") -> str:
    """OBR-2 placer and 3 filler order numbers, 4 universal service, 6 requested time,
    7 observation time, 25 result status."""
    return segment("OBR", {1: str(set_id), 2: placer, 3: filler, 4: service,
                           6: requested_at, 7: observed_at, 25: result_status})


def obx(set_id: int, value_type: str, code: str, value: str, *, units: str = "",
        status: str = "F", observed_at: str = "", pad_to: int = 0) -> str:
    """OBX-2 value type, 3 identifier, 5 value, 6 units, 11 status, 14 observation time."""
    return segment("OBX", {1: str(set_id), 2: value_type, 3: code, 5: value, 6: units,
                           11: status, 14: observed_at}, pad_to)


def mrg(prior_identifiers: str, *, prior_account: str = "", prior_visit: str = "") -> str:
    """MRG-1 prior patient identifiers, 3 prior account number, 5 prior visit number."""
    return segment("MRG", {1: prior_identifiers, 3: prior_account, 5: prior_visit})


# -- the GENHOSP test feed ------------------------------------------------------------------

FACILITY = "GENHOSP"
_adt_ids = itertools.count(1)
_oru_ids = itertools.count(1)


def adt(
    trigger: str,
    when: str,
    *,
    mrn: str = "100001",
    visit: str = "V1001",
    patient_class: str | None = None,
    patient_type: str = "",
    status: str | None = None,
    location: str = "4WEST^412^A^GENHOSP",
    prior_location: str = "",
    control_id: str | None = None,
    version: str = "2.5.1",
    name: str = "TESTPATIENT^ALPHA^Q",
    attending: str = "1234^DOCTOR^TEST",
    admission_type: str = "E",
    admit_time: str = "",
    discharge_time: str = "",
    disposition: str = "",
    expected_discharge: str = "",
    extra: list[str] | None = None,
    plan: str = "MCR001",
    processing_id: str = "P",
    site: SiteProfile | None = None,
) -> bytes:
    """One ADT message from GENHOSP's ADTSYS; `when` is MSH-7 and EVN-2 (local time unless
    it carries an offset). `extra` segments follow PV1 (and PV2), before IN1.

    With `site`, in that site's dialect instead: its receiver, MRN and visit authorities,
    the PV1-2/PV1-18 codes of a care `status` (inpatient unless a class is given) and the
    plan of a payer class given as `plan`."""
    mrn_hd, visit_hd, receiver = FACILITY, FACILITY, ("DCPLAN", FACILITY)
    if site is not None:
        mrn_hd, visit_hd = mrn_authority(site), _oid_or_namespace(site.visit_number_authority)
        receiver = (site.receiving_application, site.receiving_facility)
        if patient_class is None and not patient_type:
            patient_class, patient_type = _status_codes(status or "inpatient", site)
        plan = _plan(plan, site) if plan else plan
    elif status is not None:
        raise BuildError("a care status needs the site profile that codes it")
    segments = [
        msh(trigger, control_id or f"T{next(_adt_ids):08d}", when, version=version,
            processing_id=processing_id, receiving_application=receiver[0],
            receiving_facility=receiver[1]),
        # `when` again in EVN-7 (the event facility), as this feed has always sent it;
        # the engine reads EVN-6, then EVN-2, so the event time is `when` either way
        evn(trigger, when, facility=when, pad_to=7),
        pid(cx(mrn, mrn_hd, "MR"), name, birth_date="19450612", sex="F",
            address="100 TEST ST^^SPRINGFIELD^IL^62701"),
        pv1("I" if patient_class is None else patient_class, location,
            admission_type=admission_type,
            prior_location=prior_location, attending=attending, service="MED",
            admit_source="7", patient_type=patient_type, visit=cx(visit, visit_hd, "VN"),
            disposition=disposition, admit_time=admit_time, discharge_time=discharge_time),
    ]
    if expected_discharge:
        segments.append(pv2(expected_discharge=expected_discharge))
    segments += extra or []
    if plan:
        segments.append(in1(1, plan, company_id="CMS", company_name=f"PAYER {plan}"))
    return er7(segments).encode()


def merge(when: str, *, mrn: str, prior_mrn: str, control_id: str | None = None,
          name: str = "TESTPATIENT^SURVIVOR", site: SiteProfile | None = None) -> bytes:
    """An A40: the record `prior_mrn` merged into the survivor `mrn` (in `site`'s dialect
    when given)."""
    authority = mrn_authority(site) if site is not None else FACILITY
    receiver = ("DCPLAN", FACILITY) if site is None else (site.receiving_application,
                                                          site.receiving_facility)
    return er7([
        msh("A40", control_id or f"T{next(_adt_ids):08d}", when, structure="ADT_A39",
            receiving_application=receiver[0], receiving_facility=receiver[1]),
        evn("A40", when, pad_to=2),
        pid(cx(mrn, authority, "MR"), name, birth_date="19450612", sex="F"),
        mrg(cx(prior_mrn, authority, "MR")),
    ]).encode()


def mrn_authority(site: SiteProfile) -> str:
    """The site's first (preferred) MRN authority as its feed writes it in CX-4."""
    first = site.mrn[0]
    return hd(first.namespace, first.oid) or first.system or ""


def oru(when: str, *results: str, visit: str = "V1001", mrn: str = "100001",
        control_id: str | None = None, trigger: str = "R01") -> bytes:
    """An ORU^R01 from GENHOSP's LAB; each result given as 'LOINC|value|unit|status|time'
    (status F unless given). No visit: no PV1."""
    segments = [
        msh(trigger, control_id or f"L{next(_oru_ids):08d}", when, message_type="ORU",
            sending_application="LAB"),
        pid(cx(mrn, FACILITY, "MR"), "TESTPATIENT^ALPHA", birth_date="19450612", sex="F"),
        *([pv1("I", visit=cx(visit, FACILITY, "VN"))] if visit else []),
        obr(1, "CHEM^Chemistry", requested_at=when, observed_at=when),
    ]
    for n, item in enumerate(results, 1):
        code, value, unit, status, taken = (item.split("|") + [""] * 5)[:5]
        segments.append(obx(n, "NM", f"{code}^^LN", value, units=unit, status=status or "F",
                            observed_at=taken, pad_to=14))
    return er7(segments).encode()


# -- a story step in a site's own dialect ----------------------------------------------------

Diagnosis = tuple[str, str | None] | str  # code, or (code, DG1-6 type)


@dataclass(frozen=True)
class StoryStep:
    """One message of a patient's story in clinical words: the site profile turns a care
    status into its PV1-2/PV1-18 codes and a payer class into one of its plans."""

    event: str  # ADT trigger (A01...), or R01 for lab results
    visit: str = "V1"
    mrn: str = "MRN1"
    status: str | None = None  # a care status; or patient_class/patient_type as sent
    patient_class: str | None = None
    patient_type: str | None = None
    payer: str | None = None  # IN1-2 plan code, or a payer class the site maps a plan to
    authorization: str | None = None
    unit: str | None = None
    admission_type: str | None = None
    service: str | None = None
    admit_source: str | None = None
    diagnoses: Sequence[Diagnosis] | None = None
    drg: str | None = None
    disposition: str | None = None
    expected_discharge: date | None = None
    birth_date: date = date(1945, 6, 12)
    sex: str = "F"
    prior_mrn: str | None = None  # A40: the merged record
    name: str = "STORY^CASE"  # PID-5 (XPN); the simulator gives each patient a synthetic one
    labs: Mapping[str, float] | None = None  # R01: results by name (hemoglobin...)


_IMPLIED_STATUS = {"A01": "inpatient", "A06": "inpatient", "A05": "preadmit"}


def _status_codes(status: str, site: SiteProfile) -> tuple[str, str]:
    """The PV1-2 class and PV1-18 type this site sends for a care status."""
    for rule in site.care_status:
        if rule.status == status:
            pair = (rule.patient_class or "", rule.patient_type or "")
            if site.status_for(pair[0] or None, pair[1] or None) == status:
                return pair
    raise BuildError(f"the site profile has no patient class/type for status {status!r}; "
                     "give class and type instead")


def _plan(payer: str, site: SiteProfile) -> str:
    if payer in site.payers:
        return payer
    for plan, payer_class in site.payers.items():
        if payer_class == payer:
            return plan
    return payer  # an unmapped plan code: the site's default payer class applies


def _pairs(items: Sequence[Diagnosis] | None) -> list[tuple[str, str | None]]:
    return [(item, None) if isinstance(item, str) else (item[0], item[1]) for item in items or []]


def _results(step: StoryStep, ts: str, site: SiteProfile, control_id: str, patient: str
             ) -> list[str]:
    """ORU^R01 segments, one OBX per lab (LOINC codes and units from engine.core.lab_codes)."""
    codes = {name: (code, unit) for code, (name, unit) in LOINC.items()}
    segments = [
        msh("R01", control_id, ts, message_type="ORU", sending_application="LAB",
            sending_facility=site.receiving_facility,
            receiving_application=site.receiving_application,
            receiving_facility=site.receiving_facility),
        patient,
        pv1("", visit=cx(step.visit, _oid_or_namespace(site.visit_number_authority), "VN")),
        obr(1, "CHEM^Chemistry", requested_at=ts, observed_at=ts),
    ]
    for n, (name, value) in enumerate((step.labs or {}).items(), 1):
        if name not in codes:
            raise BuildError(f"lab {name!r} is not one the engine reads ({', '.join(codes)})")
        code, unit = codes[name]
        segments.append(obx(n, "NM", f"{code}^{name}^LN", f"{value:g}", units=unit,
                            observed_at=ts))
    return segments


def site_message(step: StoryStep, when: datetime, site: SiteProfile, control_id: str, *,
                 sender: str = "CASES") -> bytes:
    """One ADT (or ORU^R01) message for a story step, in the site's own dialect: its
    receiver, identifier authorities, care-status codes and plans. Raises BuildError."""
    ts = when.astimezone(site.zone).strftime("%Y%m%d%H%M%S%z")
    trigger = step.event
    patient_class, patient_type = step.patient_class or "", step.patient_type or ""
    sent_codes = bool(step.patient_class or step.patient_type)
    status = step.status or (None if sent_codes else _IMPLIED_STATUS.get(trigger))
    if status is not None and not sent_codes:
        patient_class, patient_type = _status_codes(status, site)
    mrn = site.mrn[0]
    authority = mrn_authority(site)
    patient = pid(cx(step.mrn, authority, mrn.identifier_type or "MR"),
                  step.name, birth_date=f"{step.birth_date:%Y%m%d}", sex=step.sex, pad_to=8)
    if trigger == "R01":
        return er7(_results(step, ts, site, control_id, patient)).encode()
    segments = [
        msh(trigger, control_id, ts, sending_application=sender,
            sending_facility=site.receiving_facility,
            receiving_application=site.receiving_application,
            receiving_facility=site.receiving_facility),
        evn(trigger, ts, facility=ts, pad_to=7),  # EVN-7 as in `adt`
        patient,
    ]
    if trigger == "A40":
        if not step.prior_mrn:
            raise BuildError("an A40 merge needs prior_mrn")
        segments.append(mrg(cx(step.prior_mrn, authority, mrn.identifier_type or "MR")))
        return er7(segments).encode()
    segments.append(pv1(
        patient_class, step.unit or "", admission_type=step.admission_type or "",
        service=step.service or "", admit_source=step.admit_source or "",
        patient_type=patient_type,
        visit=cx(step.visit, _oid_or_namespace(site.visit_number_authority), "VN"),
        disposition=step.disposition or "", discharge_time=ts if trigger == "A03" else ""))
    if step.expected_discharge is not None:
        segments.append(pv2(expected_discharge=f"{step.expected_discharge:%Y%m%d}"))
    for n, (code, dx_type) in enumerate(_pairs(step.diagnoses), 1):
        segments.append(dg1(n, code, dx_type=dx_type or "", pad_to=6))
    if step.drg:
        segments.append(drg(step.drg))
    if step.payer:
        segments.append(in1(1, _plan(step.payer, site), company_name="PAYER",
                            authorization=step.authorization or ""))
    return er7(segments).encode()
