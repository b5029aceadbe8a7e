"""A compact builder for synthetic ADT messages in tests (no real patients, ever)."""

from __future__ import annotations

import itertools

_ids = itertools.count(1)


def adt(
    trigger: str,
    when: str,
    *,
    mrn: str = "100001",
    visit: str = "V1001",
    patient_class: str = "I",
    patient_type: str = "",
    location: str = "4WEST^412^A^GENHOSP",
    prior_location: str = "",
    control_id: str | None = None,
    version: str = "2.5.1",
    name: str = "TESTPATIENT^ALPHA^Q",
    attending: str = "1234^DOCTOR^TEST",
    admit_time: str = "",
    discharge_time: str = "",
    disposition: str = "",
    expected_discharge: str = "",
    extra: list[str] | None = None,
    plan: str = "MCR001",
    processing_id: str = "P",
) -> bytes:
    """One ADT message; `when` is EVN-2/EVN-6 (local time unless it carries an offset)."""
    ctrl = control_id or f"T{next(_ids):08d}"
    pv1 = [""] * 46
    pv1[0] = "PV1"
    pv1[1] = "1"
    pv1[2] = patient_class
    pv1[3] = location
    pv1[4] = "E"
    pv1[6] = prior_location
    pv1[7] = attending
    pv1[10] = "MED"
    pv1[14] = "7"
    pv1[18] = patient_type
    pv1[19] = f"{visit}^^^GENHOSP^VN"
    pv1[36] = disposition
    pv1[44] = admit_time
    pv1[45] = discharge_time
    segments = [
        f"MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|{when}||ADT^{trigger}|{ctrl}|{processing_id}|"
        f"{version}",
        f"EVN|{trigger}|{when}|||||{when}",
        f"PID|1||{mrn}^^^GENHOSP^MR||{name}||19450612|F|||100 TEST ST^^SPRINGFIELD^IL^62701",
        "|".join(pv1).rstrip("|"),
    ]
    if expected_discharge:
        segments.append(f"PV2|||||||||{expected_discharge}")
    segments += extra or []
    if plan:
        segments.append(f"IN1|1|{plan}|CMS|PAYER {plan}")
    return ("\r".join(segments) + "\r").encode()


def merge(when: str, *, mrn: str, prior_mrn: str, control_id: str | None = None) -> bytes:
    ctrl = control_id or f"T{next(_ids):08d}"
    return (
        "\r".join(
            [
                f"MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|{when}||ADT^A40^ADT_A39|{ctrl}|P|2.5.1",
                f"EVN|A40|{when}",
                f"PID|1||{mrn}^^^GENHOSP^MR||TESTPATIENT^SURVIVOR||19450612|F",
                f"MRG|{prior_mrn}^^^GENHOSP^MR",
            ]
        )
        + "\r"
    ).encode()
