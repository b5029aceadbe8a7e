"""Write the conformance corpus: `python -m tests.corpus.generate` (deterministic).

The messages are written from the HL7 v2 field definitions (2.3 to 2.8) in the shapes
three families of senders are known to use; every person, number and place is invented
(TESTPATIENT names, 999 SSNs, 555 phones, the 2.16.840.1.113883.3.9999 OID arc):

* Epic-like: several PID-3 repetitions (MRN, SSN, enterprise id), PV1-3 with the location
  description in PL-9, an attending with its NPI authority, PV1-19 with its authority,
  EVN-2 and EVN-6, ZPD/ZPV segments.
* Cerner-like: assigning authorities as `namespace&OID&ISO`, PID-18 account (FIN)
  numbers, descriptive fields as words (PV1-10 service, PV1-14 admit source), IN1 with
  long plan ids.
* Meditech-like: 2.3/2.4, PID-2 external id, short forms, visit numbers without an
  authority, a message with LF segment separators.

The generator is how the files were first written; the files and the two manifests
(hl7/expected.yaml, fhir/expected.yaml) are the corpus. Messages of one story share a
prefix and sort in the order they must be sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OID = "2.16.840.1.113883.3.9999.1"  # the synthetic hospital's OID (test arc)
NPI = "NPI&2.16.840.1.113883.4.6&ISO"


@dataclass
class Case:
    name: str
    text: str
    expect: dict[str, Any]


@dataclass
class Corpus:
    cases: list[Case] = field(default_factory=list)
    n: int = 0

    def add(self, slug: str, text: str, **expect: Any) -> None:
        self.n += 1
        self.cases.append(Case(f"{self.n:03d}_{slug}", text, expect))


# -- segment helpers ----------------------------------------------------------------------------
def seg(name: str, fields: dict[int, str]) -> str:
    top = max(fields) if fields else 0
    return "|".join([name, *(fields.get(i, "") for i in range(1, top + 1))])


def msh(app: str, fac: str, when: str, trigger: str, cid: str, version: str, *,
        msg_type: str = "ADT", structure: str = "", receiver: str = "DCPLAN",
        processing: str = "P") -> str:
    kind = f"{msg_type}^{trigger}" + (f"^{structure}" if structure else "")
    fields = {2: "^~\\&", 3: app, 4: fac, 5: receiver, 6: "GENHOSP", 7: when, 9: kind,
              10: cid, 11: processing, 12: version}
    if version not in ("2.3", "2.3.1"):
        fields.update({15: "AL", 16: "NE"})
    # MSH-1 is the field separator itself: MSH|^~\&|... so field 2 is the first after MSH|
    return "MSH|" + "|".join(fields.get(i, "") for i in range(2, max(fields) + 1))


def message(*segments: str, sep: str = "\r") -> str:
    return sep.join(s for s in segments if s) + sep


# -- dialects ------------------------------------------------------------------------------------
STRUCT = {"A01": "ADT_A01", "A04": "ADT_A01", "A08": "ADT_A01", "A13": "ADT_A01",
          "A02": "ADT_A02", "A03": "ADT_A03", "A05": "ADT_A05", "A14": "ADT_A05",
          "A28": "ADT_A05", "A31": "ADT_A05", "A06": "ADT_A06", "A07": "ADT_A06",
          "A09": "ADT_A09", "A10": "ADT_A09", "A11": "ADT_A09", "A12": "ADT_A12",
          "A15": "ADT_A15", "A16": "ADT_A16", "A21": "ADT_A21", "A22": "ADT_A21",
          "A25": "ADT_A21", "A26": "ADT_A21", "A27": "ADT_A21", "A29": "ADT_A21",
          "A32": "ADT_A21", "A33": "ADT_A21", "A38": "ADT_A38", "A40": "ADT_A39",
          "A44": "ADT_A43", "A45": "ADT_A45", "A47": "ADT_A30", "A49": "ADT_A30",
          "A50": "ADT_A50", "A52": "ADT_A52", "A53": "ADT_A52", "A54": "ADT_A54",
          "A55": "ADT_A54", "A60": "ADT_A60", "A24": "ADT_A24", "A37": "ADT_A37",
          "R01": "ORU_R01"}


@dataclass
class Person:
    mrn: str
    family: str
    given: str
    dob: str
    sex: str
    n: int  # for the other numbers


class Epic:
    """Epic-like: 2.5.1 to 2.8, PID-3 with three repetitions, long PL, Z-segments."""

    app, fac = "EPIC", "GENHOSP"

    def __init__(self, version: str) -> None:
        self.version = version

    def header(self, trigger: str, when: str, cid: str, **kw: Any) -> list[str]:
        evn1 = "" if self.version in ("2.7", "2.8") else trigger
        return [msh(self.app, self.fac, when, trigger, cid, self.version,
                    structure=STRUCT.get(trigger, ""), **kw),
                seg("EVN", {1: evn1, 2: when, 5: "E900123^TESTCLERK^ONE^^^^^^EPI",
                            6: when[:10] + "00"})]

    def pid(self, p: Person, *, first: str | None = None) -> str:
        ids = [f"{p.mrn}^^^GENHOSP^MR", f"999-{p.n:02d}-{p.n + 1000:04d}^^^SSA^SS",
               f"Z{p.n:07d}^^^EPI^PI"]
        if first:
            ids.insert(0, first)
        return seg("PID", {1: "1", 3: "~".join(ids),
                           5: f"{p.family}^{p.given}^Q^^^^L", 7: p.dob, 8: p.sex, 10: "2106-3",
                           11: f"{100 + p.n} TEST AVE^APT {p.n}^SPRINGFIELD^IL^62701^USA^H",
                           13: f"^PRN^PH^^1^555^010{p.n % 10:01d}{p.n:03d}", 16: "M",
                           18: f"AC{p.n:06d}^^^GENHOSP^AN", 19: f"999-{p.n:02d}-{p.n + 1000:04d}"})

    def pv1(self, visit: str, *, klass: str = "I", unit: str = "ICU", room: str = "0412",
            bed: str = "A", desc: str = "Intensive Care Unit North", attending: str = "1234567",
            service: str = "MED", prior: str = "", extra: dict[int, str] | None = None) -> str:
        fields = {1: "1", 2: klass, 3: f"{unit}^{room}^{bed}^GENHOSP^^^^^{desc}", 4: "E",
                  6: prior,
                  7: f"{attending}^TESTDOC^ALPHA^B^^^MD^^{NPI}^L^^^NPI",
                  10: service, 14: "7", 18: "IP" if klass == "I" else "", 19:
                  f"{visit}^^^GENHOSP^VN", 44: "20260401073000"}
        fields.update(extra or {})
        return seg("PV1", fields)

    def z(self, p: Person) -> list[str]:
        return [f"ZPD|1|ADVANCE DIRECTIVE ON FILE^Y|PREFERRED LANGUAGE^ENG|{p.n}",
                "ZPV|1|EPIC^VISIT^EXTRA||CSN^1000" + str(p.n)]


class Cerner:
    """Cerner-like: namespace&OID&ISO authorities, FIN in PID-18, words for codes, IN1."""

    app, fac = "CERNER", "GENHOSP_CERN"
    auth = f"GENHOSP&{OID}&ISO"

    def __init__(self, version: str) -> None:
        self.version = version

    def header(self, trigger: str, when: str, cid: str, **kw: Any) -> list[str]:
        structure = STRUCT.get(trigger, "") if self.version not in ("2.3.1",) else ""
        return [msh(self.app, self.fac, when, trigger, cid, self.version, structure=structure,
                    **kw),
                seg("EVN", {1: trigger, 2: when, 4: "01", 5: "12345^TESTREGISTRAR^TWO"})]

    def pid(self, p: Person) -> str:
        return seg("PID", {1: "1", 2: f"{p.mrn}^^^{self.auth}^MR",
                           3: f"{p.mrn}^^^{self.auth}^MR~CM{p.n:08d}^^^CERNER_CMRN&"
                              f"2.16.840.1.113883.3.9999.2&ISO^PI",
                           5: f"{p.family}^{p.given}^^^^^Current", 7: p.dob, 8: p.sex,
                           11: f"{200 + p.n} SAMPLE ROAD^^SPRINGFIELD^IL^62704^USA^Home",
                           13: f"(555)010-{p.n:04d}^Home^Tel", 15: "English",
                           18: f"FIN{p.n:07d}^^^{self.auth}^FIN NBR",
                           19: f"999-{p.n:02d}-{p.n + 2000:04d}"})

    def pv1(self, visit: str, *, klass: str = "I", unit: str = "4WEST", room: str = "401",
            bed: str = "B", attending: str = "9876543", service: str = "Internal Medicine",
            prior: str = "", extra: dict[int, str] | None = None) -> str:
        fields = {1: "1", 2: klass, 3: f"{unit}^{room}^{bed}^GENHOSP^^Bed^GENHOSP MAIN",
                  4: "Emergency", 6: prior,
                  7: f"{attending}^TESTPHYS^BETA^C^^^^^{NPI}^^^^NPI", 10: service,
                  14: "Physician Referral", 18: "Inpatient" if klass == "I" else "",
                  19: f"{visit}^^^{self.auth}^VN", 44: "20260402091500"}
        fields.update(extra or {})
        return seg("PV1", fields)

    def in1(self) -> str:
        plan = "MEDICARE-PART-A-AND-B-TRADITIONAL-FEE-FOR-SERVICE-00001"  # 55 characters
        return seg("IN1", {1: "1", 2: f"{plan}^MEDICARE PART A AND B^L",
                           3: "MEDICARE-CMS-0001^^^" + self.auth,
                           4: "CENTERS FOR MEDICARE AND MEDICAID SERVICES",
                           15: "MCR", 36: "1EG4TE5MK73"})


class Meditech:
    """Meditech-like: 2.3/2.4, PID-2 external id, short forms, no visit authority."""

    app, fac = "MT", "GH"

    def __init__(self, version: str) -> None:
        self.version = version

    def header(self, trigger: str, when: str, cid: str, **kw: Any) -> list[str]:
        return [msh(self.app, self.fac, when, trigger, cid, self.version, **kw),
                seg("EVN", {1: trigger, 2: when})]

    def pid(self, p: Person, *, authority: str = "GENHOSP") -> str:
        mrn = f"{p.mrn}^^^{authority}^MR" if authority else p.mrn
        return seg("PID", {1: "1", 2: p.mrn, 3: mrn, 5: f"{p.family}^{p.given}",
                           7: p.dob, 8: p.sex, 11: "1 TEST LN^^SPRINGFIELD^IL^62702",
                           18: f"MA{p.n:06d}"})

    def pv1(self, visit: str, *, klass: str = "I", unit: str = "3EAST", room: str = "310",
            bed: str = "1", attending: str = "TESDO", service: str = "MED",
            extra: dict[int, str] | None = None) -> str:
        fields = {1: "1", 2: klass, 3: f"{unit}^{room}^{bed}", 4: "EL",
                  7: f"{attending}^TESTDOC^GAMMA", 10: service, 19: visit}
        fields.update(extra or {})
        return seg("PV1", fields)


def ts(day: int, hour: int, minute: int = 0) -> str:
    return f"202604{day:02d}{hour:02d}{minute:02d}00"


# -- the HL7 corpus -------------------------------------------------------------------------------
LONG = "item 2 (no refusal for length)"
MERGES = "item 1 (A47/A50/A45/A44/A49 with MRG)"
CANCELS = "item 1 (A38/A27 cancel, A29 inactivate)"
RECEIVER = "item 3 (receiver check off unless listed)"


def epic_stories(c: Corpus) -> None:
    # E1 2.5.1: ED registration, admit to ICU, transfer, update, discharge home.
    e, p, v = Epic("2.5.1"), Person("E100001", "TESTPATIENT", "ALPHA", "19480312", "F", 1), \
        "V100001"
    c.add("epic_A04_ed_registration", message(
        *e.header("A04", ts(1, 6), "EP251-0001"), e.pid(p),
        e.pv1(v, klass="E", unit="ED", room="TR04", bed="1", desc="Emergency Department"),
        *e.z(p)), ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="ED",
        attending="1234567", story="E1")
    c.add("epic_A01_admit_icu", message(
        *e.header("A01", ts(1, 8), "EP251-0002"), e.pid(p), e.pv1(v),
        "PV2|||^SEPSIS||||||20260406",
        "DG1|1||A41.9^Sepsis, unspecified organism^I10||20260401|A", *e.z(p)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="ICU",
        story="E1")
    c.add("epic_A02_transfer_4west", message(
        *e.header("A02", ts(3, 10), "EP251-0003"), e.pid(p),
        e.pv1(v, unit="4WEST", room="0418", bed="B", desc="Medical Surgical 4 West",
              prior="ICU^0412^A^GENHOSP^^^^^Intensive Care Unit North")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="4WEST",
        story="E1")
    c.add("epic_A08_update_attending_dx", message(
        *e.header("A08", ts(4, 9), "EP251-0004"), e.pid(p),
        e.pv1(v, unit="4WEST", room="0418", bed="B", desc="Medical Surgical 4 West",
              attending="7654321"),
        "DG1|1||A41.9^Sepsis, unspecified organism^I10||20260401|A",
        "DG1|2||J18.9^Pneumonia, unspecified organism^I10||20260403|W", *e.z(p)),
        ack="AA", patient=p.mrn, encounter=v, location="4WEST", attending="7654321",
        story="E1")
    c.add("epic_A03_discharge_home", message(
        *e.header("A03", ts(6, 14), "EP251-0005"), e.pid(p),
        e.pv1(v, unit="4WEST", room="0418", bed="B", desc="Medical Surgical 4 West",
              attending="7654321", extra={36: "01", 45: ts(6, 13, 45)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="E1")

    # E2 2.6: pre-admission for surgery, then cancelled (A38).
    e, p, v = Epic("2.6"), Person("E100002", "TESTPATIENT", "BRAVO", "19550704", "M", 2), \
        "V100002"
    c.add("epic_A05_preadmit_surgery", message(
        *e.header("A05", ts(2, 9), "EP26-0001"), e.pid(p),
        e.pv1(v, klass="P", unit="PREOP", room="", bed="", desc="Pre-Admission Testing",
              service="SUR", extra={4: "R", 44: ""}),
        "PV2||||||||20260410"), ack="AA", patient=p.mrn, encounter=v, status="planned",
        story="E2")
    c.add("epic_A38_cancel_preadmit", message(
        *e.header("A38", ts(3, 11), "EP26-0002"), e.pid(p),
        e.pv1(v, klass="P", unit="PREOP", room="", bed="", desc="Pre-Admission Testing",
              service="SUR", extra={4: "R", 44: ""})),
        ack="AA", patient=p.mrn, encounter=v, status="cancelled", depends=CANCELS,
        story="E2")

    # E3 2.7: admit, leave of absence and back, pending discharge and its cancel, discharge.
    e, p, v = Epic("2.7"), Person("E100003", "TESTPATIENT", "CHARLIE", "19400101", "F", 3), \
        "V100003"
    pv = dict(unit="5NORTH", room="0502", bed="A", desc="Oncology 5 North", service="ONC")
    c.add("epic_A01_admit_oncology", message(
        *e.header("A01", ts(2, 7), "EP27-0001"), e.pid(p), e.pv1(v, **pv),
        "DG1|1||C34.90^Malignant neoplasm of unsp part of unsp bronchus or lung^I10||"
        "20260402|A", *e.z(p)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="5NORTH",
        story="E3")
    c.add("epic_A21_leave_of_absence", message(
        *e.header("A21", ts(4, 10), "EP27-0002"), e.pid(p), e.pv1(v, **pv),
        "PV2|" + "|" * 46 + "20260404180000"),
        ack="AA", patient=p.mrn, encounter=v, status="onleave", story="E3")
    c.add("epic_A22_return_from_leave", message(
        *e.header("A22", ts(4, 18), "EP27-0003"), e.pid(p), e.pv1(v, **pv)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", story="E3")
    c.add("epic_A16_pending_discharge", message(
        *e.header("A16", ts(5, 9), "EP27-0004"), e.pid(p), e.pv1(v, **pv),
        "PV2||||||||20260407"),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", story="E3")
    c.add("epic_A25_cancel_pending_discharge", message(
        *e.header("A25", ts(5, 15), "EP27-0005"), e.pid(p), e.pv1(v, **pv)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", story="E3")
    c.add("epic_A03_discharge_snf", message(
        *e.header("A03", ts(8, 11), "EP27-0006"), e.pid(p),
        e.pv1(v, **pv, extra={36: "03", 37: "SNF0001^TEST SKILLED NURSING", 45: ts(8, 10)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="E3")

    # E4 2.8: admit, transfer, cancel transfer, discharge, cancel discharge.
    e, p, v = Epic("2.8"), Person("E100004", "TESTPATIENT", "DELTA", "19621120", "M", 4), \
        "V100004"
    west = dict(unit="4WEST", room="0420", bed="A", desc="Medical Surgical 4 West")
    c.add("epic_A01_admit_4west", message(
        *e.header("A01", ts(3, 8), "EP28-0001"), e.pid(p), e.pv1(v, **west), *e.z(p)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="4WEST",
        story="E4")
    c.add("epic_A02_transfer_icu", message(
        *e.header("A02", ts(3, 20), "EP28-0002"), e.pid(p),
        e.pv1(v, prior="4WEST^0420^A^GENHOSP^^^^^Medical Surgical 4 West")),
        ack="AA", patient=p.mrn, encounter=v, location="ICU", story="E4")
    c.add("epic_A12_cancel_transfer", message(
        *e.header("A12", ts(3, 21), "EP28-0003"), e.pid(p),
        e.pv1(v, **west, prior="ICU^0412^A^GENHOSP^^^^^Intensive Care Unit North")),
        ack="AA", patient=p.mrn, encounter=v, location="4WEST", story="E4")
    c.add("epic_A03_discharge", message(
        *e.header("A03", ts(5, 12), "EP28-0004"), e.pid(p),
        e.pv1(v, **west, extra={36: "01", 45: ts(5, 12)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="E4")
    c.add("epic_A13_cancel_discharge", message(
        *e.header("A13", ts(5, 13), "EP28-0005"), e.pid(p), e.pv1(v, **west)),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="4WEST",
        story="E4")

    # E5 2.5.1: person registered and updated, admitted, MRN corrected (A47), updated.
    e, p, v = Epic("2.5.1"), Person("E100005", "TESTPATIENT", "ECHO", "19700215", "F", 5), \
        "V100005"
    c.add("epic_A28_add_person", message(
        *e.header("A28", ts(1, 9), "EP251-0101"), e.pid(p), "PV1|1|N"),
        ack="AA", patient=p.mrn, story="E5")
    c.add("epic_A31_update_person", message(
        *e.header("A31", ts(1, 10), "EP251-0102"), e.pid(p), "PV1|1|N", *e.z(p)),
        ack="AA", patient=p.mrn, story="E5")
    c.add("epic_A01_admit_3east", message(
        *e.header("A01", ts(2, 12), "EP251-0103"), e.pid(p),
        e.pv1(v, unit="3EAST", room="0301", bed="A", desc="Cardiac 3 East", service="CAR")),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", story="E5")
    new = Person("E100095", p.family, p.given, p.dob, p.sex, 5)
    c.add("epic_A47_change_mrn", message(
        *e.header("A47", ts(2, 15), "EP251-0104"), e.pid(new),
        "MRG|E100005^^^GENHOSP^MR"),
        ack="AA", patient=new.mrn, depends=MERGES, story="E5")
    c.add("epic_A08_under_new_mrn", message(
        *e.header("A08", ts(3, 9), "EP251-0105"), e.pid(new),
        e.pv1(v, unit="3EAST", room="0301", bed="A", desc="Cardiac 3 East", service="CAR",
              attending="2223334")),
        ack="AA", patient=new.mrn, encounter=v, attending="2223334", encounters=1,
        depends=MERGES, story="E5")

    # E6 2.6: the long fields real feeds send (each refused today for its length).
    e, p, v = Epic("2.6"), Person("E100006", "TESTPATIENT", "FOXTROT", "19580808", "M", 6), \
        "V100006"
    long_ref = "R" + "7" * 119  # a 120-character non-MRN PID-3 repetition
    long_unit = "CARDIOTHORACIC-ICU-PAVILION-NORTH"  # PV1-3 of 54 characters in all
    c.add("epic_A01_long_fields", message(
        *e.header("A01", ts(2, 16), "EP26-0101"),
        e.pid(p).replace("^^^EPI^PI", f"^^^EPI^PI~{long_ref}^^^REFLAB^PI"),
        e.pv1(v, unit=long_unit, room="12", bed="B", desc="", attending="9" * 60,
              service="Cardiothoracic Surgery And Interventional Cardiology Unit",
              extra={4: "EMERGENCY-ROOM", 14: "Transferred from another acute hospital"}),
        "IN1|1|" + "COMMERCIAL-PPO-" + "9" * 45 + "|ACME01|ACME TEST HEALTH PLAN"),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", depends=LONG, story="E6")
    c.add("epic_A08_long_service_and_source", message(
        *e.header("A08", ts(3, 8), "EP26-0102"), e.pid(p),
        e.pv1(v, unit="ICU", attending="1234567",
              service="Internal Medicine Hospitalist Service Teaching Team Number Two",
              extra={4: "URGENT-ADMIT-01", 14: "Emergency Department Referral - Walk In"})),
        ack="AA", patient=p.mrn, encounter=v, location="ICU", attending="1234567",
        depends=LONG, story="E6")

    # E7 2.7: outpatient registration, becomes inpatient (A06), back to outpatient (A07).
    e, p, v = Epic("2.7"), Person("E100007", "TESTPATIENT", "GOLF", "19810505", "F", 7), \
        "V100007"
    c.add("epic_A04_outpatient_infusion", message(
        *e.header("A04", ts(6, 8), "EP27-0101"), e.pid(p),
        e.pv1(v, klass="O", unit="INFUSION", room="02", bed="1", desc="Infusion Center")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="INFUSION",
        story="E7")
    c.add("epic_A06_outpatient_to_inpatient", message(
        *e.header("A06", ts(6, 12), "EP27-0102"), e.pid(p),
        e.pv1(v, unit="4WEST", room="0422", bed="A", desc="Medical Surgical 4 West")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="4WEST",
        story="E7")
    c.add("epic_A07_inpatient_to_outpatient", message(
        *e.header("A07", ts(7, 9), "EP27-0103"), e.pid(p),
        e.pv1(v, klass="O", unit="4WEST", room="0422", bed="A", desc="Medical Surgical")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", story="E7")

    # E8 2.8: the first PID-3 repetition is the enterprise id, not the MRN.
    e, p, v = Epic("2.8"), Person("E100008", "TESTPATIENT", "HOTEL", "19661212", "M", 8), \
        "V100008"
    c.add("epic_A01_enterprise_id_first", message(
        *e.header("A01", ts(4, 7), "EP28-0101"), e.pid(p, first="EID0000008^^^EPIENT^PI"),
        e.pv1(v, unit="5NORTH", room="0510", bed="B", desc="Oncology 5 North")),
        ack="AA", patient="EID0000008", encounter=v, location="5NORTH", story="E8")


def cerner_stories(c: Corpus) -> None:
    # C1 2.3.1: admit, update with insurance, transfer, discharge.
    r, p, v = Cerner("2.3.1"), Person("C200001", "TESTPATIENT", "INDIA", "19450923", "F", 11), \
        "FIN2000001"
    c.add("cerner_A01_admit", message(
        *r.header("A01", ts(1, 11), "CER231-0001"), r.pid(p), r.pv1(v), r.in1()),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="4WEST",
        attending="9876543", depends=LONG, story="C1")
    c.add("cerner_A08_update", message(
        *r.header("A08", ts(2, 9), "CER231-0002"), r.pid(p), r.pv1(v),
        "DG1|1|I10|I50.9^Heart failure, unspecified^I10||20260402|Working", r.in1()),
        ack="AA", patient=p.mrn, encounter=v, location="4WEST", depends=LONG, story="C1")
    c.add("cerner_A02_transfer", message(
        *r.header("A02", ts(2, 17), "CER231-0003"), r.pid(p),
        r.pv1(v, unit="3EAST", room="305", bed="A",
              prior="4WEST^401^B^GENHOSP^^Bed^GENHOSP MAIN")),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", depends=LONG, story="C1")
    c.add("cerner_A03_discharge_home_health", message(
        *r.header("A03", ts(5, 10), "CER231-0004"), r.pid(p),
        r.pv1(v, unit="3EAST", room="305", bed="A",
              extra={36: "Home Health Care", 45: ts(5, 9, 30)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", depends=LONG, story="C1")

    # C1b 2.5.1: UTF-8 declared in MSH-18, a name outside ASCII.
    r8, p8 = Cerner("2.5.1"), Person("C200009", "TESTPATIËNT", "ZOË", "19880808", "F", 19)
    head = r8.header("A04", ts(1, 15), "CER251-0009")
    head[0] += "|USA|UNICODE UTF-8"
    c.add("cerner_A04_utf8_name", message(
        *head, r8.pid(p8), r8.pv1("FIN2000009", klass="O", unit="CLINIC1", room="", bed="",
                                  extra={14: "1"})),
        ack="AA", patient=p8.mrn, encounter="FIN2000009", family="TESTPATIËNT", story="C1b")

    # C2 2.4: pending admit (A14), cancelled (A27).
    r, p, v = Cerner("2.4"), Person("C200002", "TESTPATIENT", "JULIET", "19521111", "M", 12), \
        "FIN2000002"
    c.add("cerner_A14_pending_admit", message(
        *r.header("A14", ts(3, 9), "CER24-0001"), r.pid(p),
        r.pv1(v, klass="P", extra={44: ""}), "PV2||||||||20260409"),
        ack="AA", patient=p.mrn, encounter=v, status="planned", depends=LONG, story="C2")
    c.add("cerner_A27_cancel_pending_admit", message(
        *r.header("A27", ts(3, 15), "CER24-0002"), r.pid(p),
        r.pv1(v, klass="P", extra={44: ""})),
        ack="AA", patient=p.mrn, encounter=v, status="cancelled", depends=CANCELS, story="C2")

    # C3 2.5.1: admit, visit number corrected (A50), discharge on the new number.
    r, p = Cerner("2.5.1"), Person("C200003", "TESTPATIENT", "KILO", "19490606", "F", 13)
    v, v2 = "FIN2000003", "FIN2000093"
    c.add("cerner_A01_admit", message(
        *r.header("A01", ts(4, 8), "CER251-0001"), r.pid(p), r.pv1(v, unit="ICU", room="02",
                                                                   bed="A")),
        ack="AA", patient=p.mrn, encounter=v, location="ICU", depends=LONG, story="C3")
    c.add("cerner_A50_change_visit_number", message(
        *r.header("A50", ts(4, 12), "CER251-0002"), r.pid(p),
        f"MRG|{p.mrn}^^^{r.auth}^MR||||{v}^^^{r.auth}^VN",
        r.pv1(v2, unit="ICU", room="02", bed="A")),
        ack="AA", patient=p.mrn, encounter=v2, depends=MERGES, story="C3")
    c.add("cerner_A03_discharge_new_visit", message(
        *r.header("A03", ts(7, 13), "CER251-0003"), r.pid(p),
        r.pv1(v2, unit="ICU", room="02", bed="A", extra={36: "01", 45: ts(7, 13)})),
        ack="AA", patient=p.mrn, encounter=v2, status="finished", encounters=1,
        depends=MERGES, story="C3")

    # C4 2.4: outpatient registration cancelled (A11).
    r, p, v = Cerner("2.4"), Person("C200004", "TESTPATIENT", "LIMA", "19770303", "M", 14), \
        "FIN2000004"
    c.add("cerner_A04_register_outpatient", message(
        *r.header("A04", ts(5, 8), "CER24-0101"), r.pid(p),
        r.pv1(v, klass="O", unit="CLINIC2", room="", bed="", service="Cardiology")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", depends=LONG, story="C4")
    c.add("cerner_A11_cancel_admit", message(
        *r.header("A11", ts(5, 9), "CER24-0102"), r.pid(p),
        r.pv1(v, klass="O", unit="CLINIC2", room="", bed="", service="Cardiology")),
        ack="AA", patient=p.mrn, encounter=v, status="cancelled", depends=LONG, story="C4")

    # C5 2.5.1: duplicate person merged (A40), then updated under the survivor.
    r = Cerner("2.5.1")
    keep = Person("C200005", "TESTPATIENT", "MIKE", "19510101", "M", 15)
    dup = Person("C200085", "TESTPATIENT", "MIKE", "19510101", "M", 85)
    v = "FIN2000005"
    c.add("cerner_A28_add_survivor", message(
        *r.header("A28", ts(1, 13), "CER251-0101"), r.pid(keep), "PV1|1|N"),
        ack="AA", patient=keep.mrn, story="C5")
    c.add("cerner_A28_add_duplicate", message(
        *r.header("A28", ts(1, 14), "CER251-0102"), r.pid(dup), "PV1|1|N"),
        ack="AA", patient=dup.mrn, story="C5")
    c.add("cerner_A01_admit_duplicate", message(
        *r.header("A01", ts(2, 10), "CER251-0103"), r.pid(dup), r.pv1(v)),
        ack="AA", patient=dup.mrn, encounter=v, depends=LONG, story="C5")
    c.add("cerner_A40_merge_into_survivor", message(
        *r.header("A40", ts(2, 14), "CER251-0104"), r.pid(keep),
        f"MRG|{dup.mrn}^^^{r.auth}^MR"),
        ack="AA", patient=keep.mrn, story="C5")
    c.add("cerner_A08_update_survivor", message(
        *r.header("A08", ts(3, 9), "CER251-0105"), r.pid(keep), r.pv1(v)),
        ack="AA", patient=keep.mrn, encounter=v, location="4WEST", depends=LONG, story="C5")

    # C6 2.3.1: a visit registered under the wrong person is moved (A45).
    r = Cerner("2.3.1")
    wrong = Person("C200006", "TESTPATIENT", "NOVEMBER", "19600101", "F", 16)
    right = Person("C200007", "TESTPATIENT", "OSCAR", "19600202", "F", 17)
    v = "FIN2000006"
    c.add("cerner_A01_admit_wrong_person", message(
        *r.header("A01", ts(3, 10), "CER231-0101"), r.pid(wrong), r.pv1(v)),
        ack="AA", patient=wrong.mrn, encounter=v, depends=LONG, story="C6")
    c.add("cerner_A28_add_right_person", message(
        *r.header("A28", ts(3, 11), "CER231-0102"), r.pid(right), "PV1|1|N"),
        ack="AA", patient=right.mrn, story="C6")
    c.add("cerner_A45_move_visit", message(
        *r.header("A45", ts(3, 12), "CER231-0103"), r.pid(right),
        f"MRG|{wrong.mrn}^^^{r.auth}^MR||||{v}^^^{r.auth}^VN", r.pv1(v)),
        ack="AA", patient=right.mrn, encounter=v, depends=MERGES, story="C6")

    # C7 2.4: admit, then lab results (ORU^R01): hemoglobin and sodium.
    r, p, v = Cerner("2.4"), Person("C200008", "TESTPATIENT", "PAPA", "19390909", "M", 18), \
        "FIN2000008"
    c.add("cerner_A01_admit", message(
        *r.header("A01", ts(6, 9), "CER24-0201"), r.pid(p), r.pv1(v)),
        ack="AA", patient=p.mrn, encounter=v, depends=LONG, story="C7")
    for k, (loinc, name, value, unit) in enumerate((
            ("718-7", "Hemoglobin [Mass/volume] in Blood", "8.9", "g/dL"),
            ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "129", "mmol/L"))):
        c.add(f"cerner_R01_{'hemoglobin' if k == 0 else 'sodium'}", message(
            msh("CERNER_LAB", "GENHOSP_CERN", ts(6, 14 + k), "R01", f"CER24-02{k + 2:02d}",
                "2.4", msg_type="ORU", structure="ORU_R01"),
            r.pid(p), r.pv1(v),
            f"ORC|RE|ORD{k}^CERNER|FIL{k}^LAB",
            f"OBR|1|ORD{k}^CERNER|FIL{k}^LAB|{loinc}^{name}^LN|||{ts(6, 13 + k)}",
            f"OBX|1|NM|{loinc}^{name}^LN||{value}|{unit}^{unit}^UCUM|||||F|||{ts(6, 13 + k)}"),
            ack="AA", patient=p.mrn, story="C7")
    c.add("cerner_R01_unused_loinc", message(
        msh("CERNER_LAB", "GENHOSP_CERN", ts(6, 17), "R01", "CER24-0205", "2.4",
            msg_type="ORU", structure="ORU_R01"),
        r.pid(p), r.pv1(v), "OBR|1|ORD9^CERNER|FIL9^LAB|2345-7^Glucose^LN|||" + ts(6, 16),
        "OBX|1|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||104|mg/dL|||||F"),
        ack="AA", patient=p.mrn, story="C7")


def meditech_stories(c: Corpus) -> None:
    # M1 2.3: ER, admitted, discharged.
    m, p, v = Meditech("2.3"), Person("M300001", "TESTPATIENT", "QUEBEC", "19330303", "F", 21), \
        "MV3000001"
    c.add("meditech_A04_er", message(
        *m.header("A04", ts(1, 3), "MT23-0001"), m.pid(p),
        m.pv1(v, klass="E", unit="ER", room="", bed="", service="EMR")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="ER",
        story="M1")
    c.add("meditech_A01_admit", message(
        *m.header("A01", ts(1, 6), "MT23-0002"), m.pid(p), m.pv1(v)),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", attending="TESDO",
        story="M1")
    c.add("meditech_A03_discharge", message(
        *m.header("A03", ts(4, 11), "MT23-0003"), m.pid(p),
        m.pv1(v, extra={36: "01", 45: ts(4, 11)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="M1")

    # M2 2.3 with LF segment separators (a sender's text export).
    m, p, v = Meditech("2.3"), Person("M300002", "TESTPATIENT", "ROMEO", "19440404", "M", 22), \
        "MV3000002"
    c.add("meditech_A01_admit_lf_separators", message(
        *m.header("A01", ts(2, 5), "MT23-0101"), m.pid(p), m.pv1(v, unit="ICU"), sep="\n"),
        ack="AA", patient=p.mrn, encounter=v, location="ICU", story="M2")
    c.add("meditech_A02_transfer", message(
        *m.header("A02", ts(3, 5), "MT23-0102"), m.pid(p),
        m.pv1(v, extra={6: "ICU^^"})),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", story="M2")
    c.add("meditech_A03_discharge_hospice", message(
        *m.header("A03", ts(5, 5), "MT23-0103"), m.pid(p),
        m.pv1(v, extra={36: "50", 45: ts(5, 4)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="M2")

    # M3 2.4: pre-admit, admit, discharge.
    m, p, v = Meditech("2.4"), Person("M300003", "TESTPATIENT", "SIERRA", "19570707", "F", 23), \
        "MV3000003"
    c.add("meditech_A05_preadmit", message(
        *m.header("A05", ts(2, 8), "MT24-0001"), m.pid(p),
        m.pv1(v, klass="P", unit="", room="", bed="", service="ORT")),
        ack="AA", patient=p.mrn, encounter=v, status="planned", story="M3")
    c.add("meditech_A01_admit", message(
        *m.header("A01", ts(6, 7), "MT24-0002"), m.pid(p),
        m.pv1(v, unit="5NORTH", service="ORT")),
        ack="AA", patient=p.mrn, encounter=v, status="in-progress", location="5NORTH",
        story="M3")
    c.add("meditech_A03_discharge_irf", message(
        *m.header("A03", ts(9, 10), "MT24-0003"), m.pid(p),
        m.pv1(v, unit="5NORTH", service="ORT", extra={36: "62", 45: ts(9, 10)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", story="M3")

    # M4 2.3: PID-3 without an assigning authority (the facility's only MRN).
    m, p, v = Meditech("2.3"), Person("M300004", "TESTPATIENT", "TANGO", "19680808", "M", 24), \
        "MV3000004"
    ident = "item 3 (an MRN without CX-4: the site's authority)"
    c.add("meditech_A01_pid3_without_authority", message(
        *m.header("A01", ts(3, 6), "MT23-0201"), m.pid(p, authority=""), m.pv1(v)),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", depends=ident, story="M4")
    c.add("meditech_A08_pid3_without_authority", message(
        *m.header("A08", ts(3, 9), "MT23-0202"), m.pid(p, authority=""),
        m.pv1(v, attending="TESDX")),
        ack="AA", patient=p.mrn, encounter=v, attending="TESDX", depends=ident, story="M4")
    c.add("meditech_A03_pid3_without_authority", message(
        *m.header("A03", ts(6, 9), "MT23-0203"), m.pid(p, authority=""),
        m.pv1(v, extra={36: "01", 45: ts(6, 9)})),
        ack="AA", patient=p.mrn, encounter=v, status="finished", depends=ident, story="M4")

    # M5 2.4: a person registered in error, then deleted (A29).
    m, p = Meditech("2.4"), Person("M300005", "TESTPATIENT", "UNIFORM", "19900101", "F", 25)
    c.add("meditech_A28_add_person", message(
        *m.header("A28", ts(4, 8), "MT24-0101"), m.pid(p), "PV1|1|N"),
        ack="AA", patient=p.mrn, story="M5")
    c.add("meditech_A29_delete_person", message(
        *m.header("A29", ts(4, 9), "MT24-0102"), m.pid(p), "PV1|1|N"),
        ack="AA", patient=p.mrn, active=False, depends=CANCELS, story="M5")

    # M6 2.4: account moves (A44) and account number change (A49).
    m = Meditech("2.4")
    p = Person("M300006", "TESTPATIENT", "VICTOR", "19720202", "M", 26)
    q = Person("M300007", "TESTPATIENT", "WHISKEY", "19720203", "M", 27)
    v = "MV3000006"
    c.add("meditech_A01_admit", message(
        *m.header("A01", ts(7, 8), "MT24-0201"), m.pid(p), m.pv1(v)),
        ack="AA", patient=p.mrn, encounter=v, location="3EAST", story="M6")
    c.add("meditech_A28_add_other_person", message(
        *m.header("A28", ts(7, 9), "MT24-0202"), m.pid(q), "PV1|1|N"),
        ack="AA", patient=q.mrn, story="M6")
    ignorable = dict(ack="AA|AR", err="201", ignorable=True, depends=MERGES, story="M6")
    c.add("meditech_A44_move_account", message(
        *m.header("A44", ts(7, 10), "MT24-0203"),
        m.pid(q).replace(f"MA{q.n:06d}", f"MA{p.n:06d}"),
        f"MRG|{p.mrn}^^^GENHOSP^MR||MA{p.n:06d}"), patient=q.mrn, **ignorable)
    c.add("meditech_A49_change_account_number", message(
        *m.header("A49", ts(7, 11), "MT24-0204"), m.pid(q).replace(f"MA{q.n:06d}", "MA999026"),
        f"MRG|{q.mrn}^^^GENHOSP^MR||MA{p.n:06d}"), patient=q.mrn, **ignorable)


def edge_cases(c: Corpus) -> None:
    """Shapes HL7 allows that are refused today, each on its own patient."""
    def simple(version: str, trigger: str, when: str, cid: str, mrn: str, visit: str, *,
               pid: str | None = None, msh_line: str | None = None, evn: str | None = None,
               unit: str = "4WEST", **kw: Any) -> str:
        head = msh_line or msh("ADTSYS", "GENHOSP", when, trigger, cid, version,
                               structure=STRUCT.get(trigger, ""), **kw)
        return message(head, evn or seg("EVN", {1: trigger, 2: when}),
                       pid or f"PID|1||{mrn}^^^GENHOSP^MR||TESTPATIENT^EDGE||19500101|F",
                       f"PV1|1|I|{unit}^401^A^GENHOSP||||1234^TESTDOC^ALPHA|||MED|||||||||"
                       f"{visit}^^^GENHOSP^VN")

    c.add("generic_A01_year_only_birth_date", simple(
        "2.5", "A01", ts(8, 8), "GEN25-0001", "G400001", "GV400001",
        pid="PID|1||G400001^^^GENHOSP^MR||TESTPATIENT^YEARONLY||1950|M"),
        ack="AA", patient="G400001", encounter="GV400001", location="4WEST",
        depends="item 2 (partial dates)", story="G1")
    c.add("generic_A01_msh7_microseconds_offset", simple(
        "2.5", "A01", "20260408091500.123456-0500", "GEN25-0002", "G400002", "GV400002",
        evn="EVN|A01|20260408091500.123456-0500"),
        ack="AA", patient="G400002", encounter="GV400002", location="4WEST",
        depends="item 2 (fractional seconds)", story="G2")
    bad = msh("ADTSYS", "GENHOSP", "2026-04-08 10:15", "A01", "GEN28-0003", "2.8",
              structure="ADT_A01")
    c.add("generic_A01_bad_msh7_good_evn2", simple(
        "2.8", "A01", "", "GEN28-0003", "G400003", "GV400003", msh_line=bad,
        evn="EVN||20260408101500"),
        ack="AA", patient="G400003", encounter="GV400003", location="4WEST",
        depends="item 2 (EVN-2 when MSH-7 is unusable)", story="G3")
    c.add("generic_A01_alias_name_first", simple(
        "2.5", "A01", ts(8, 11), "GEN25-0004", "G400004", "GV400004",
        pid="PID|1||G400004^^^GENHOSP^MR||ALIASNAME^NICK^^^^^A~TESTPATIENT^LEGAL^^^^^L||"
            "19610101|F|||PO BOX 1^^SPRINGFIELD^IL^62701^^M~4 TEST ST^^SPRINGFIELD^IL^62701^^H"),
        ack="AA", patient="G400004", encounter="GV400004", family="TESTPATIENT",
        depends="item 2 (PID-5 by name type)", story="G4")
    c.add("generic_A01_other_receiver_name", simple(
        "2.6", "A01", ts(8, 12), "GEN26-0005", "G400005", "GV400005",
        receiver="CASEMGMT_PROD"),
        ack="AA", patient="G400005", encounter="GV400005", location="4WEST",
        depends=RECEIVER, story="G5")
    c.add("generic_A01_counter_reset_first", simple(
        "2.5.1", "A01", ts(8, 13), "0001", "G400006", "GV400006"),
        ack="AA", patient="G400006", encounter="GV400006", story="G6")
    c.add("generic_A01_counter_reset_same_msh10_new_content", simple(
        "2.5.1", "A01", ts(9, 7), "0001", "G400007", "GV400007", unit="3EAST"),
        ack="AA|AE", patient="G400007", encounter="GV400007", location="3EAST",
        depends="item 1 (reused MSH-10 with other content is not a duplicate)", story="G6")
    c.add("generic_A08_visit_of_another_patient", simple(
        "2.5.1", "A08", ts(9, 8), "GEN251-0008", "G400008", "V100001"),
        ack="AE", err="204|205", patient_absent="G400008",
        depends="item 2 (business conflict is not ERR 207)", story="G7")


def shapes(c: Corpus) -> None:
    """Shapes real feeds send that the standard allows: each on its own patient, one A01."""
    def a01(slug: str, version: str, cid: str, mrn: str, visit: str, *, pid: str = "",
            pv1: str = "", head: str = "", more: tuple[str, ...] = (), sep: str = "\r",
            end: bool = True, **expect: Any) -> None:
        when = ts(12, 8 + len(c.cases) % 10)
        text = message(
            head or msh("ADTSYS", "GENHOSP", when, "A01", cid, version, structure="ADT_A01"),
            seg("EVN", {1: "A01", 2: when}),
            pid or f"PID|1||{mrn}^^^GENHOSP^MR||TESTPATIENT^SHAPE||19500101|M",
            pv1 or f"PV1|1|I|4WEST^401^A^GENHOSP||||1234^TESTDOC^ALPHA|||MED|||||||||"
                   f"{visit}^^^GENHOSP^VN", *more, sep=sep)
        c.add(slug, text if end else text.rstrip(sep), ack="AA", patient=mrn, encounter=visit,
              story="S", **expect)

    a01("shape_A01_msh12_with_country", "2.5.1", "SHP-0001", "S800001", "SV800001",
        head=msh("ADTSYS", "GENHOSP", ts(12, 8), "A01", "SHP-0001", "2.5.1^USA",
                 structure="ADT_A01"), location="4WEST")
    a01("shape_A01_pid3_check_digit", "2.4", "SHP-0002", "S800002", "SV800002",
        pid="PID|1||S800002^7^M10^GENHOSP^MR||TESTPATIENT^CHECKDIGIT||19500101|F",
        location="4WEST")
    a01("shape_A01_two_attendings", "2.5", "SHP-0003", "S800003", "SV800003",
        pv1="PV1|1|I|4WEST^401^A^GENHOSP||||5555^TESTDOC^FIRST~6666^TESTDOC^SECOND|||MED"
            "|||||||||SV800003^^^GENHOSP^VN", attending="5555")
    a01("shape_A01_z_segment_after_pid", "2.5.1", "SHP-0004", "S800004", "SV800004",
        pid="PID|1||S800004^^^GENHOSP^MR||TESTPATIENT^ZSEG||19500101|M\rZPI|1|LOCAL^DATA",
        location="4WEST")
    a01("shape_A01_no_final_segment_terminator", "2.6", "SHP-0005", "S800005", "SV800005",
        end=False, location="4WEST")
    a01("shape_A01_crlf_separators", "2.3", "SHP-0006", "S800006", "SV800006",
        head=msh("ADTSYS", "GENHOSP", ts(12, 9), "A01", "SHP-0006", "2.3"), sep="\r\n",
        location="4WEST")
    a01("shape_A01_escapes_and_formatting", "2.7", "SHP-0007", "S800007", "SV800007",
        pid="PID|1||S800007^^^GENHOSP^MR||TESTPATIENT\\T\\SON^ESC||19500101|F|||"
            "1 MAIN ST\\.br\\APT 2^^SPRINGFIELD^IL^62701",
        more=("NTE|1||FIRST LINE\\X0D0A\\SECOND LINE \\H\\BOLD\\N\\",),
        family="TESTPATIENT&SON")
    a01("shape_A01_many_segments", "2.5.1", "SHP-0008", "S800008", "SV800008",
        more=("PV2|||^CHEST PAIN||||||20260415",
              "ROL|1|AD|AT^Attending^HL70443|1234^TESTDOC^ALPHA",
              "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F",
              "AL1|1|DA|^SULFA|MO|RASH", "AL1|2|FA|^PEANUT|SV|ANAPHYLAXIS",
              "DG1|1||R07.9^Chest pain, unspecified^I10||20260412|A",
              "GT1|1||TESTGUARANTOR^ONE", "IN1|1|COM300^COMMERCIAL^L|ACME01|ACME TEST PLAN",
              "IN2|1||TESTEMPLOYER", "IN1|2|SELF^SELF PAY^L|SELF|SELF PAY",
              "NK1|1|TESTKIN^ONE|SPO^Spouse"), location="4WEST")
    a01("shape_A01_mrn_without_type", "2.4", "SHP-0009", "S800009", "SV800009",
        pid="PID|1||S800009^^^GENHOSP||TESTPATIENT^NOTYPE||19500101|M",
        depends="item 3 (identifier type optional: the site's one authority)")
    a01("shape_A01_msh7_without_seconds_offset_utc", "2.8", "SHP-0010", "S800010",
        "SV800010", head=msh("ADTSYS", "GENHOSP", "202604121005+0000", "A01", "SHP-0010",
                             "2.8", structure="ADT_A01"), location="4WEST")


UNKNOWN = [  # trigger, version, what it means (HL7 chapter 3)
    ("A60", "2.5.1", "update adverse reaction information"),
    ("A10", "2.5", "patient arriving - tracking"),
    ("A09", "2.5", "patient departing - tracking"),
    ("A15", "2.4", "pending transfer"),
    ("A26", "2.4", "cancel pending transfer"),
    ("A32", "2.6", "cancel patient arriving - tracking"),
    ("A33", "2.6", "cancel patient departing - tracking"),
    ("A54", "2.7", "change attending doctor"),
    ("A55", "2.7", "cancel change attending doctor"),
    ("A52", "2.8", "cancel leave of absence"),
    ("A53", "2.8", "cancel patient returned from leave of absence"),
    ("A24", "2.3", "link patient information"),
]


def unknown_triggers(c: Corpus) -> None:
    """Triggers the engine does not apply: AA (listed as ignored, or applied) or AR 201."""
    e, p, v = Epic("2.5.1"), Person("U500001", "TESTPATIENT", "UNKNOWN", "19500505", "F", 31), \
        "UV500001"
    c.add("epic_A01_admit_for_unknown_triggers", message(
        *e.header("A01", ts(10, 7), "UNK-0000"), e.pid(p),
        e.pv1(v, unit="4WEST", room="0401", bed="A", desc="Medical Surgical 4 West")),
        ack="AA", patient=p.mrn, encounter=v, location="4WEST", story="U1")
    for k, (trigger, version, meaning) in enumerate(UNKNOWN, 1):
        e = Epic(version)
        extra = ["AL1|1|DA|^PENICILLIN|SV|HIVES"] if trigger == "A60" else []
        c.add(f"epic_{trigger}_unknown_{meaning.split(' - ')[0].replace(' ', '_')}", message(
            *e.header(trigger, ts(10, 8 + k // 2, (k % 2) * 30), f"UNK-{k:04d}"), e.pid(p),
            e.pv1(v, unit="4WEST", room="0401", bed="A", desc="Medical Surgical 4 West"),
            *extra),
            ack="AA|AR", err="201", unknown=True, meaning=meaning,
            depends="item 1 (harmless and listed as ignored, or AR 201)", story="U1")


def refusals(c: Corpus) -> None:
    """What must stay refused, with its ACK code and ERR (HL7 table 0357)."""
    def with_pid(version: str, cid: str, pid: str, pv1: str, *, trigger: str = "A01",
                 **kw: Any) -> str:
        when = ts(11, 9)
        return message(msh("ADTSYS", "GENHOSP", when, trigger, cid, version,
                           structure=STRUCT.get(trigger, ""), **kw),
                       seg("EVN", {1: trigger, 2: when}), pid, pv1)

    pv1 = "PV1|1|I|4WEST^401^A^GENHOSP|||||||MED|||||||||RV600001^^^GENHOSP^VN"
    pid = "PID|1||R600001^^^GENHOSP^MR||TESTPATIENT^REFUSED||19500101|F"
    c.add("refusal_A01_no_pid", with_pid("2.5.1", "REF-0001", "", pv1),
          ack="AE", err="100", story="R")
    c.add("refusal_A01_pid3_empty", with_pid(
        "2.5.1", "REF-0002", "PID|1||||TESTPATIENT^NOID||19500101|F", pv1),
          ack="AE", err="101", story="R")
    c.add("refusal_A03_no_visit_number_no_open_stay", with_pid(
        "2.4", "REF-0003", pid, "PV1|1|I|4WEST^401^A^GENHOSP", trigger="A03"),
          ack="AE", err="101", patient_absent="R600001", story="R")
    c.add("refusal_A01_training_processing_id", with_pid(
        "2.5.1", "REF-0004", pid, pv1, processing="T"),
          ack="AR", err="202", patient_absent="R600001", story="R")
    c.add("refusal_SIU_S12_unsupported_type", message(
        msh("SCHED", "GENHOSP", ts(11, 9), "S12", "REF-0005", "2.5.1", msg_type="SIU",
            structure="SIU_S12"),
        "SCH|1|1||||CHECKUP^Checkup|||30|MIN", pid), ack="AR", err="200", story="R")
    c.add("refusal_ORM_O01_unsupported_type", message(
        msh("ORDERS", "GENHOSP", ts(11, 9), "O01", "REF-0006", "2.3", msg_type="ORM"),
        pid, "ORC|NW|ORD1", "OBR|1|ORD1||CBC^Complete blood count"),
          ack="AR", err="200", story="R")
    c.add("refusal_A01_version_1_0", with_pid("1.0", "REF-0007", pid, pv1),
          ack="AR", err="203", story="R")
    c.add("warning_A01_empty_msh10", with_pid(
        "2.5.1", "", pid.replace("R600001", "R600004"), pv1.replace("RV600001", "RV600004")),
          ack="AA", patient="R600004", encounter="RV600004", status="in-progress", story="R",
          depends="issue 13 lenient visits (an empty MSH-10 is applied with a warning, "
                  "ERR 101 W; no duplicate detection, MSA-2 empty)")
    c.add("refusal_garbage", "THIS IS NOT HL7 \x01\x02 AT ALL\r", ack="AR", story="R")
    c.add("refusal_R01_hemoglobin_not_a_number", message(
        msh("LAB", "GENHOSP", ts(11, 10), "R01", "REF-0010", "2.5.1", msg_type="ORU",
            structure="ORU_R01"),
        "PID|1||E100001^^^GENHOSP^MR||TESTPATIENT^ALPHA||19480312|F",
        "OBR|1|ORDX||718-7^Hemoglobin^LN|||20260411090000",
        "OBX|1|NM|718-7^Hemoglobin^LN||PENDING|g/dL|||||F"), ack="AE", err="102", story="R")
    c.add("generic_A01_unmapped_patient_class", with_pid(
        "2.5.1", "REF-0011", "PID|1||R600002^^^GENHOSP^MR||TESTPATIENT^CLASSZ||19500101|F",
        pv1.replace("|I|", "|Z|").replace("RV600001", "RV600002")),
          ack="AA", patient="R600002", encounter="RV600002", story="R",
          depends="item 2 (an unmapped patient class is applied with a warning, ERR 103 W)")
    c.add("warning_A01_version_2_9_9", with_pid(
        "2.9.9", "REF-0012", "PID|1||R600003^^^GENHOSP^MR||TESTPATIENT^NEWVERSION||19500101|F",
        pv1.replace("RV600001", "RV600003")),
          ack="AA", patient="R600003", encounter="RV600003", story="R",
          depends="item 2 (a 2.x version past 2.8.2 is read as 2.8.2 with a warning, ERR 203 W)")


def lenient_visits(c: Corpus) -> None:
    """Messages of library samples and vendor guides that name no stay or carry a sloppy
    MSH: applied with warnings; a visit event is refused only when its stay cannot be told."""
    def adt(trigger: str, cid: str, when: str, mrn: str, pv1: str | None) -> str:
        return message(msh("ADTSYS", "GENHOSP", when, trigger, cid, "2.5.1",
                           structure=STRUCT.get(trigger, "")),
                       seg("EVN", {1: trigger, 2: when}),
                       f"PID|1||{mrn}^^^GENHOSP^MR||TESTPATIENT^LENIENT||19500101|F", pv1)
    why = "issue 13 lenient visits (applied with a warning, ERR W)"
    c.add("lenient_A01_no_visit_number", adt(
        "A01", "LEN-0001", ts(12, 8), "L700001", "PV1|1|I|4WEST^402^A^GENHOSP"),
          ack="AA", patient="L700001", encounters=1, story="L", depends=why)
    c.add("lenient_A08_no_pv1", adt("A08", "LEN-0002", ts(12, 9), "L700001", None)
          .replace("TESTPATIENT^LENIENT", "RENAMED^LENIENT"),
          ack="AA", patient="L700001", family="RENAMED", encounters=1, story="L",
          depends=why)
    c.add("lenient_A02_no_visit_number", adt(
        "A02", "LEN-0003", ts(12, 10), "L700001", "PV1|1|I|5EAST^501^B^GENHOSP"),
          ack="AA", patient="L700001", encounters=1, story="L", depends=why)
    c.add("lenient_A03_no_pv1", adt("A03", "LEN-0004", ts(12, 11), "L700001", None),
          ack="AA", patient="L700001", encounters=1, story="L", depends=why)
    doubled = adt("A04", "LEN-0005", ts(12, 12), "L700002",
                  "PV1|1|O|CLINIC^1^^GENHOSP|||||||MED|||||||||LV700002^^^GENHOSP^VN")
    c.add("lenient_A04_msh2_escape_doubled", doubled.replace("MSH|^~\\&|", "MSH|^~\\\\&|", 1),
          ack="AA", patient="L700002", encounter="LV700002", status="in-progress",
          location="CLINIC", story="L", depends=why)


# -- the FHIR corpus ------------------------------------------------------------------------------
MRN_SYSTEM = "urn:engine:id:GENHOSP"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
US_CORE = "http://hl7.org/fhir/us-core/StructureDefinition"
CONVERTERS = "item 4 (converter Bundles: any resource type, Location/Practitioner in the Bundle)"
BATCH = "item 4 (batch Bundles entry by entry)"


def uuid(k: int, n: int) -> str:
    return f"urn:uuid:{k:08d}-0000-4000-8000-{n:012d}"


def patient(mrn: str, k: int, *, first: dict | None = None, assigner: bool = False) -> dict:
    mrn_id: dict = {"use": "usual", "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                    "value": mrn}
    if assigner:
        mrn_id["assigner"] = {"display": "GENHOSP"}
    else:
        mrn_id["system"] = MRN_SYSTEM
    ids = [mrn_id,
           {"type": {"coding": [{"system": V2_0203, "code": "SS"}]},
            "system": "http://hl7.org/fhir/sid/us-ssn", "value": f"999-70-{k:04d}"},
           {"type": {"coding": [{"system": V2_0203, "code": "PI"}]},
            "system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": f"CM7{k:07d}"}]
    if first:
        ids.insert(0, first)
    return {
        "resourceType": "Patient",
        "meta": {"profile": [f"{US_CORE}/us-core-patient"]},
        "extension": [
            {"url": f"{US_CORE}/us-core-race", "extension": [
                {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                       "code": "2106-3", "display": "White"}},
                {"url": "text", "valueString": "White"}]},
            {"url": f"{US_CORE}/us-core-birthsex", "valueCode": "F" if k % 2 else "M"}],
        "identifier": ids,
        "name": [{"use": "official", "family": "TESTFHIR", "given": [f"PATIENT{k:02d}", "Q"]}],
        "telecom": [{"system": "phone", "value": f"555-010-{k:04d}", "use": "home"}],
        "gender": "female" if k % 2 else "male",
        "birthDate": f"19{40 + k:02d}-0{1 + k % 9}-1{k % 10}",
        "address": [{"use": "home", "line": [f"{k} TEST ST"], "city": "SPRINGFIELD",
                     "state": "IL", "postalCode": "62701", "country": "USA"}],
    }


def practitioner(npi: str) -> dict:
    return {"resourceType": "Practitioner",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
            "name": [{"family": "TESTDOC", "given": ["ALPHA"], "suffix": ["MD"]}]}


def organization(name: str, ident: str) -> dict:
    return {"resourceType": "Organization", "active": True,
            "identifier": [{"system": f"urn:oid:{OID}", "value": ident}], "name": name}


def location(unit: str, room: str = "", bed: str = "") -> dict:
    return {"resourceType": "Location", "status": "active", "mode": "instance",
            "name": unit, "description": " ".join(x for x in (unit, room, bed) if x),
            "identifier": [{"value": "^".join((unit, room, bed, "GENHOSP")).rstrip("^")}],
            "physicalType": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                "code": "wa", "display": "Ward"}]}}


def encounter(visit: str, subject: str, *, status: str = "in-progress", klass: str = "IMP",
              start: str = "2026-04-12T08:00:00-05:00", end: str | None = None,
              practitioner_ref: dict | None = None, location_ref: str | None = None,
              org_ref: str | None = None, disposition: str | None = None) -> dict:
    enc: dict = {
        "resourceType": "Encounter",
        "identifier": [{"use": "official",
                        "type": {"coding": [{"system": V2_0203, "code": "VN"}]},
                        "system": MRN_SYSTEM, "value": visit}],
        "status": status,
        "class": {"system": ACT, "code": klass},
        "type": [{"text": "Hospital admission"}],
        "subject": {"reference": subject},
        "period": {"start": start, **({"end": end} if end else {})},
        "hospitalization": {"admitSource": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0023", "code": "7"}]}},
    }
    if practitioner_ref:
        enc["participant"] = [{"type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "ATND", "display": "attender"}]}], "individual": practitioner_ref}]
    if location_ref:
        enc["location"] = [{"location": {"reference": location_ref}, "status": "active"}]
    if org_ref:
        enc["serviceProvider"] = {"reference": org_ref}
    if disposition:
        enc["hospitalization"]["dischargeDisposition"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
            "code": disposition}]}
    return enc


def message_header(event: str, focus: str) -> dict:
    return {"resourceType": "MessageHeader",
            "eventCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                            "code": event},
            "source": {"name": "EPIC", "endpoint": "urn:oid:2.16.840.1.113883.3.9999.9"},
            "destination": [{"name": "DCPLAN", "endpoint": "urn:engine:dcplan"}],
            "focus": [{"reference": focus}]}


def condition(code: str, text: str, subject: str, enc: str) -> dict:
    return {"resourceType": "Condition",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code,
                                 "display": text}]},
            "subject": {"reference": subject}, "encounter": {"reference": enc}}


def allergy(subject: str) -> dict:
    return {"resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"}]},
            "code": {"text": "PENICILLIN"}, "patient": {"reference": subject},
            "reaction": [{"manifestation": [{"text": "HIVES"}]}]}


def procedure(subject: str, enc: str) -> dict:
    return {"resourceType": "Procedure", "status": "completed",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99223"}]},
            "subject": {"reference": subject}, "encounter": {"reference": enc},
            "performedDateTime": "2026-04-12T09:00:00-05:00"}


def coverage(subject: str, payor: str, plan: str = "MCR001") -> dict:
    return {"resourceType": "Coverage", "status": "active",
            "beneficiary": {"reference": subject}, "payor": [{"reference": payor}],
            "class": [{"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                "code": "plan"}]}, "value": plan, "name": "MEDICARE PART A"}]}


def observation(subject: str, loinc: str, value: float, unit: str,
                enc: str | None = None) -> dict:
    obs: dict = {"resourceType": "Observation", "status": "final",
                 "category": [{"coding": [{
                     "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                     "code": "laboratory"}]}],
                 "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                 "subject": {"reference": subject},
                 "effectiveDateTime": "2026-04-12T10:00:00-05:00",
                 "valueQuantity": {"value": value, "unit": unit,
                                   "system": "http://unitsofmeasure.org", "code": unit}}
    if enc:
        obs["encounter"] = {"reference": enc}
    return obs


def provenance(targets: list[str]) -> dict:
    return {"resourceType": "Provenance", "target": [{"reference": t} for t in targets],
            "recorded": "2026-04-12T08:00:05-05:00",
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                     "code": "CREATE"}]},
            "agent": [{"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "assembler"}]}, "who": {"display": "FHIR-Converter"}}]}


_SENT = [0]  # Bundles written so far: each has its own Bundle.identifier


def bundle(kind: str, k: int, entries: list[tuple[str, dict, str, str]]) -> dict:
    """entries: (fullUrl, resource, method, url)."""
    _SENT[0] += 1
    return {"resourceType": "Bundle", "type": kind,
            "identifier": {"system": "urn:ietf:rfc:3986",
                           "value": f"urn:uuid:{_SENT[0]:08d}-c0c0-4000-8000-{k:012d}"},
            "timestamp": f"2026-04-12T{8 + k // 4:02d}:{(k % 4) * 15:02d}:00-05:00",
            "entry": [{"fullUrl": full, "resource": res,
                       "request": {"method": method, "url": url}}
                      for full, res, method, url in entries]}


def adt_bundle(k: int, *, style: str, kind: str = "transaction", event: str = "A01",
               unit: str = "4WEST", npi: str | None = None, extra: tuple[str, ...] = (),
               status: str = "in-progress", klass: str = "IMP", end: str | None = None,
               disposition: str | None = None, first: dict | None = None,
               assigner: bool = False) -> dict:
    """One converter-style ADT Bundle. style ms: Microsoft FHIR-Converter (PUT Type/<id>);
    lfh: LinuxForHealth (POST, urn:uuid); cond: conditional PUT Type?identifier=."""
    mrn, visit = f"F7{k:05d}", f"FV7{k:05d}"
    npi = npi or f"19{k:08d}"
    ids = {name: uuid(k, n) for n, name in enumerate(
        ("header", "patient", "doc", "org", "loc", "enc", "payor", "cov", "dx", "allergy",
         "proc", "prov", "obs"), 1)}
    pat, enc = ids["patient"], ids["enc"]
    resources = {
        "header": message_header(event, enc),
        "patient": patient(mrn, k, first=first, assigner=assigner),
        "doc": practitioner(npi),
        "org": organization("GENERAL HOSPITAL (SYNTHETIC)", "GENHOSP"),
        "loc": location(unit, "401", "A"),
        "enc": encounter(visit, pat, status=status, klass=klass, end=end,
                         practitioner_ref={"reference": ids["doc"]},
                         location_ref=ids["loc"], org_ref=ids["org"],
                         disposition=disposition),
        "payor": organization("CENTERS FOR MEDICARE AND MEDICAID SERVICES", "CMS"),
        "cov": coverage(pat, ids["payor"]),
        "dx": condition("I50.9", "Heart failure, unspecified", pat, enc),
        "allergy": allergy(pat),
        "proc": procedure(pat, enc),
        "prov": provenance([pat, enc]),
        "obs": observation(pat, "718-7", 9.1, "g/dL", enc),
    }
    wanted = ["header", "patient", "doc", "org", "loc", "enc", *extra]
    entries = []
    for name in wanted:
        res, full = resources[name], ids[name]
        rtype = res["resourceType"]
        if style == "ms":
            local = full.removeprefix("urn:uuid:")
            entries.append((full, res, "PUT", f"{rtype}/{local}"))
        elif style == "cond" and name == "patient":
            entries.append((full, res, "PUT", f"Patient?identifier={MRN_SYSTEM}|{mrn}"))
        elif style == "cond" and name == "enc":
            entries.append((full, res, "PUT", f"Encounter?identifier={MRN_SYSTEM}|{visit}"))
        else:
            entries.append((full, res, "POST", rtype))
    return bundle(kind, k, entries)


def fhir_cases() -> list[tuple[str, Any, dict]]:
    """(file name, Bundle (or raw text for a malformed one), expectation)."""
    out: list[tuple[str, Any, dict]] = []

    def add(slug: str, doc: Any, **expect: Any) -> None:
        out.append((f"{len(out) + 1:02d}_{slug}.json", doc, expect))

    def ok(k: int, kind: str = "transaction", **more: Any) -> dict:
        base = {"status": 200, "type": f"{kind}-response", "patient": f"F7{k:05d}",
                "encounter": f"FV7{k:05d}", "depends": CONVERTERS}
        base.update(more)
        return base

    every = ("payor", "cov", "dx", "allergy", "proc", "prov")
    add("ms_adt_a01_transaction_every_resource",
        adt_bundle(1, style="ms", extra=every), **ok(1, location="4WEST", attending="1900000001"))
    add("ms_adt_a04_emergency_transaction",
        adt_bundle(2, style="ms", event="A04", unit="ED", klass="EMER", extra=("prov",)),
        **ok(2, location="ED", attending="1900000002", encounter_status="in-progress"))
    add("ms_adt_a03_discharge_transaction",
        adt_bundle(3, style="ms", event="A03", status="finished",
                   end="2026-04-15T11:00:00-05:00", disposition="home", extra=("dx", "prov")),
        **ok(3, encounter_status="finished", attending="1900000003"))
    add("lfh_adt_a01_transaction_post",
        adt_bundle(4, style="lfh", extra=("payor", "cov", "dx", "allergy", "prov")),
        **ok(4, location="4WEST", attending="1900000004"))
    add("lfh_adt_a08_with_observation",
        adt_bundle(5, style="lfh", event="A08", unit="3EAST", extra=("obs", "prov")),
        **ok(5, location="3EAST", attending="1900000005"))
    add("lfh_adt_a01_observation_class",
        adt_bundle(6, style="lfh", klass="OBSENC", unit="5NORTH", extra=("dx",)),
        **ok(6, location="5NORTH", attending="1900000006"))
    add("cond_put_transaction",
        adt_bundle(7, style="cond", extra=("cov", "payor")),
        **ok(7, location="4WEST", attending="1900000007"))
    add("cond_put_batch", adt_bundle(8, style="cond", kind="batch"),
        **ok(8, "batch", location="4WEST", attending="1900000008", depends=BATCH))
    add("lfh_batch_post", adt_bundle(9, style="lfh", kind="batch", extra=("allergy",)),
        **ok(9, "batch", location="4WEST", attending="1900000009", depends=BATCH))
    add("ms_batch_put", adt_bundle(10, style="ms", kind="batch", unit="ICU", extra=("dx",)),
        **ok(10, "batch", location="ICU", attending="1900000010", depends=BATCH))

    # Relative references to entries whose fullUrl is an absolute http URL.
    doc = adt_bundle(11, style="lfh")
    base = "https://converter.example.org/fhir"
    for entry in doc["entry"]:
        rtype = entry["resource"]["resourceType"]
        local = entry["fullUrl"].removeprefix("urn:uuid:")
        entry["resource"]["id"] = local
        entry["fullUrl"] = f"{base}/{rtype}/{local}"
    text = json.dumps(doc)
    for n in range(1, 14):
        full = uuid(11, n)
        for rtype in ("Patient", "Practitioner", "Location", "Organization", "Encounter"):
            text = text.replace(f'"reference": "{full}"',
                                f'"reference": "{rtype}/{full.removeprefix("urn:uuid:")}"'
                                if f'"{base}/{rtype}/{full.removeprefix("urn:uuid:")}"' in text
                                else f'"reference": "{full}"')
    add("relative_references_absolute_fullurls", json.loads(text),
        **ok(11, location="4WEST", attending="1900000011"))

    # The attending named by identifier only (no Practitioner entry).
    doc = adt_bundle(12, style="lfh")
    doc["entry"] = [e for e in doc["entry"] if e["resource"]["resourceType"] != "Practitioner"]
    enc = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Encounter")
    enc["participant"][0]["individual"] = {
        "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1900000012"},
        "display": "TESTDOC, ALPHA"}
    add("attending_by_identifier", doc, **ok(12, location="4WEST", attending="1900000012"))

    add("first_identifier_is_enterprise_oid",
        adt_bundle(13, style="lfh", first={"system": "urn:oid:2.16.840.1.113883.3.9999.5",
                                           "value": "ENT0000013"}),
        **ok(13, patient="ENT0000013", location="4WEST"))
    add("mrn_by_assigner_display", adt_bundle(14, style="lfh", assigner=True),
        **ok(14, location="4WEST"))

    # A person only: Patient, AllergyIntolerance, Provenance (an A28 converted).
    doc = adt_bundle(15, style="lfh", event="A28", extra=("allergy", "prov"))
    doc["entry"] = [e for e in doc["entry"]
                    if e["resource"]["resourceType"] not in ("Encounter", "Location",
                                                             "Practitioner")]
    for e in doc["entry"]:
        if e["resource"]["resourceType"] == "MessageHeader":
            e["resource"]["focus"] = [{"reference": uuid(15, 2)}]
        if e["resource"]["resourceType"] == "Provenance":
            e["resource"]["target"] = [{"reference": uuid(15, 2)}]
    add("person_only_a28", doc, status=200, type="transaction-response", patient="F700015",
        depends=CONVERTERS)

    # A lab result Bundle: the Observation the engine uses and one it does not.
    labs = bundle("transaction", 16, [
        (uuid(16, 2), patient("F700016", 16), "POST", "Patient"),
        (uuid(16, 13), observation(uuid(16, 2), "718-7", 8.2, "g/dL"), "POST", "Observation"),
        (uuid(16, 14), observation(uuid(16, 2), "8867-4", 88, "/min"), "POST", "Observation"),
    ])
    add("oru_r01_observations_used_and_unused", labs, status=200, type="transaction-response",
        patient="F700016", depends="item 4 (Observations with unused codes acknowledged)")
    add("transfer_of_bundle_1_patient_other_location",
        adt_bundle(1, style="ms", event="A02", unit="ICU"),
        **ok(1, location="ICU", attending="1900000001"))

    # Refused correctly.
    add("malformed_json", '{"resourceType": "Bundle", "type": "transaction", "entry": [',
        status="400", outcome=True)
    doc = adt_bundle(19, style="lfh")
    enc = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Encounter")
    enc["status"] = "not-a-status"
    add("transaction_with_invalid_entry_fails_whole", doc, status="400|422", outcome=True,
        patient_absent="F700019")
    good = adt_bundle(20, style="cond", kind="batch")
    bad = copy_without_identifier(adt_bundle(21, style="lfh"))
    good["entry"].extend(e for e in bad["entry"]
                         if e["resource"]["resourceType"] == "Encounter")
    add("batch_with_one_bad_entry", good, status=200, type="batch-response",
        patient="F700020", encounter="FV700020", location="4WEST", attending="1900000020",
        entry_fails=[len(good["entry"]) - 1], depends=BATCH)

    # Resources with no identifier, keyed by their logical id (urn:engine:fhir-id:<Type>).
    add("synthea_transaction_encounter_without_identifier", synthea_bundle(22), status=200,
        type="transaction-response", patient=f"{SYNTHEA_MRN}|{uuid(22, 1)[9:]}",
        encounter=f"{FHIR_ID}Encounter|{uuid(22, 2)[9:]}", encounter_status="in-progress",
        depends=NO_IDENTIFIER)
    pat = patient("unused", 23)
    pat.pop("identifier")
    enc = {"resourceType": "Encounter", "status": "in-progress",
           "class": {"system": ACT_CODE, "code": "IMP"},
           "subject": {"reference": uuid(23, 1)},
           "period": {"start": "2026-04-13T09:30:00-05:00"}}
    add("medplum_batch_patient_and_encounter_without_identifier",
        bundle("batch", 23, [(uuid(23, 1), pat, "POST", "Patient"),
                             (uuid(23, 2), enc, "PUT", "Encounter/enc-700023")]),
        status=200, type="batch-response", patient=f"{FHIR_ID}Patient|{uuid(23, 1)[9:]}",
        encounter=f"{FHIR_ID}Encounter|enc-700023", depends=NO_IDENTIFIER)
    return out


FHIR_ID = "urn:engine:fhir-id:"
SYNTHEA_MRN = "http://hospital.smarthealthit.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NO_IDENTIFIER = "item 4 (a Patient or Encounter with no identifier keyed by its resource id)"


def synthea_bundle(k: int) -> dict:
    """Synthea's shape: uuid ids and fullUrls, a Patient whose MR identifier is Synthea's
    system, an Encounter with no identifier, a SNOMED-coded Condition."""
    pid, eid = uuid(k, 1)[9:], uuid(k, 2)[9:]
    pat = patient("unused", k)
    pat["id"] = pid
    pat["identifier"] = [
        {"system": "https://github.com/synthetichealth/synthea", "value": pid},
        {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": SYNTHEA_MRN,
         "value": pid}]
    enc = {"resourceType": "Encounter", "id": eid, "status": "in-progress",
           "class": {"system": ACT_CODE, "code": "IMP"},
           "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "183452005"}]}],
           "subject": {"reference": uuid(k, 1)},
           "period": {"start": "2026-04-13T08:15:00-05:00"}}
    cond = {"resourceType": "Condition", "id": uuid(k, 3)[9:],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "233604007",
                                 "display": "Pneumonia (disorder)"}]},
            "subject": {"reference": uuid(k, 1)}, "encounter": {"reference": uuid(k, 2)}}
    return bundle("transaction", k, [(uuid(k, 1), pat, "POST", "Patient"),
                                     (uuid(k, 2), enc, "POST", "Encounter"),
                                     (uuid(k, 3), cond, "POST", "Condition")])


def copy_without_identifier(doc: dict) -> dict:
    """The same Bundle whose Encounter has no visit number, no id and no fullUrl: nothing
    to key it by (an entry that must fail)."""
    doc = json.loads(json.dumps(doc))
    for e in doc["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            e["resource"].pop("identifier")
            e["resource"].pop("id", None)
            e.pop("fullUrl", None)
            e["resource"]["subject"] = {"reference": "Patient?identifier="
                                                     f"{MRN_SYSTEM}|F700020"}
    return doc


# -- writing ------------------------------------------------------------------------------------
def write() -> None:
    corpus = Corpus()
    for part in (epic_stories, cerner_stories, meditech_stories, edge_cases, shapes,
                 unknown_triggers, refusals, lenient_visits):
        part(corpus)
    hl7_dir, fhir_dir = HERE / "hl7", HERE / "fhir"
    for folder in (hl7_dir, fhir_dir):
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*"):
            old.unlink()
    manifest = []
    for case in corpus.cases:
        (hl7_dir / f"{case.name}.hl7").write_bytes(case.text.encode("utf-8"))
        manifest.append({"file": f"{case.name}.hl7", **case.expect})
    header = ("# Expected outcome of each message, sent over MLLP in file-name order.\n"
              "# ack: AA | AE | AR (or 'AA|AR', 'AA|AE': either, never another); err: ERR\n"
              "# code (HL7 table 0357) for AE/AR; then what FHIR shows afterwards: patient\n"
              "# (Patient?identifier=<first PID-3 value>), encounter (Encounter?identifier=\n"
              "# <visit number>, its subject that patient), status, location (current unit),\n"
              "# attending (id), family, encounters (of the patient), active, patient_absent.\n"
              "# unknown: a trigger the engine does not apply; ignorable: one it may leave\n"
              "# unapplied (A44, A49): if AA, applied or listed as ignored, never AE.\n"
              "# Every other AA must be stored as applied ('accepted'), MSA-2 = MSH-10.\n"
              "# depends: the issue-13 item the expectation needs.\n")
    (hl7_dir / "expected.yaml").write_text(
        header + yaml.safe_dump(manifest, sort_keys=False, width=100), encoding="utf-8")
    fmanifest = []
    for name, doc, expect in fhir_cases():
        text = doc if isinstance(doc, str) else json.dumps(doc, indent=1)
        (fhir_dir / name).write_text(text + "\n", encoding="utf-8")
        fmanifest.append({"file": name, **expect})
    (fhir_dir / "expected.yaml").write_text(
        "# Expected answer of each Bundle, POSTed to /fhir in file-name order: status\n"
        "# (HTTP), type (of the response Bundle), patient (Patient?identifier=), encounter\n"
        "# (Encounter?identifier=, subject that patient), encounter_status, location\n"
        "# (unit or Location name), attending (Practitioner identifier), entry_fails\n"
        "# (entries answered 4xx), patient_absent, outcome (an OperationOutcome answers).\n"
        "# In every response Bundle the entries the engine does not keep (MessageHeader,\n"
        "# Provenance, AllergyIntolerance, Procedure) carry an OperationOutcome issue\n"
        "# 'information'.\n"
        + yaml.safe_dump(fmanifest, sort_keys=False, width=100), encoding="utf-8")
    print(f"{len(corpus.cases)} HL7 messages, {len(fmanifest)} FHIR Bundles")


if __name__ == "__main__":
    write()
