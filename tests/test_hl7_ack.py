"""Every ACK we send is a well-formed HL7 message of the sender's version.

An interface engine that cannot parse our answer will resend forever or stop the feed, so
each ACK (AA, AE, AR) at each version we accept is parsed back by hl7apy at that version,
and what it mirrors from the incoming message is checked field by field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import hl7 as python_hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import get_message_info, parse_segments

from engine.hl7.ack import AckIssue, Header, build_ack
from engine.hl7.adt import header_of
from engine.hl7.message import parse

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 16, 15, 7, tzinfo=UTC)
VERSIONS = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1",
            "2.8.2"]
UNKNOWN_VERSIONS = ["2.9.9", "9.0", "", "2.2"]
ERR1_VERSIONS = {"2.3", "2.3.1", "2.4"}  # ERR-1 ELD until ERR-2..8 arrived in 2.5
NO_MSA3 = {"2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}  # MSA-3 withdrawn in 2.7
NASTY_TEXT = "PID-3 says 'A|B^C&D~E\\F' and \\T\\ is not an escape here"


def incoming(version: str, control_id: str = "CTRL-0001", trigger: str = "A01") -> Header:
    """The header of an ADT from ADTSYS at GENHOSP to DCPLAN at GENHOSP, read as intake does."""
    structure = "" if version in ("2.3", "") else f"^ADT_{trigger}"
    text = (
        f"MSH|^~\\&|ADTSYS^1.2.840.99^ISO|GENHOSP|DCPLAN|GENHOSPFAC|20260302101500||"
        f"ADT^{trigger}{structure}|{control_id}|P|{version}\rEVN|{trigger}|20260302101500\r"
    )
    return header_of(parse(text))


def ack_for(code: str, header: Header, error: AckIssue | None = None) -> str:
    return build_ack(code, header, our_application="DCPLAN", our_facility="GENHOSP",
                     now=NOW, zone=CHICAGO, error=error)


def hl7apy_parse(ack: str, version: str):
    """Parse with hl7apy as an ACK of `version`, strictly, and validate it.

    `parse_message` finds the structure from MSH-9.3, which 2.3 does not have (MSG-3 came
    in 2.3.1), so the ACK structure is named here and the segments parsed into it. Strict
    parsing refuses a field in a position the version does not define (e.g. MSA-3 in 2.8);
    `validate()` checks required fields and cardinalities. hl7apy ships no 2.7.1 library:
    that ACK is read as 2.7, which has the same MSH, MSA and ERR.
    """
    library = "2.7" if version == "2.7.1" else version
    encoding, _structure, declared = get_message_info(ack)
    assert declared == version
    msg = Message("ACK", version=library, validation_level=VALIDATION_LEVEL.STRICT,
                  encoding_chars=encoding)
    msg.children = parse_segments(ack, library, encoding, VALIDATION_LEVEL.STRICT,
                                  msg.reference, find_groups=True)
    assert msg.validate()
    return msg


def field(ref, segment: str, n: int) -> str:
    """hl7apy's ER7 text of field n of the first `segment`, found by position."""
    seg = next(s for s in ref.children if s.name == segment)
    reps = [f.to_er7() for f in seg.children if f.name == f"{segment}_{n}"]
    return "~".join(reps)


CASES = [
    ("AA", None),
    ("AE", AckIssue(101, "PID-3 has no MRN with assigning authority GENHOSP", "PID", 3)),
    ("AR", AckIssue(203, "HL7 version in MSH-12 is not supported")),
]


@pytest.mark.parametrize("version", VERSIONS + UNKNOWN_VERSIONS)
@pytest.mark.parametrize(("code", "error"), CASES, ids=[c[0] for c in CASES])
def test_each_ack_parses_at_its_version_and_mirrors_the_message(version, code, error):
    header = incoming(version)
    answered = version if version in VERSIONS else "2.5.1"  # unknown: our fallback

    ack = ack_for(code, header, error)

    ref = hl7apy_parse(ack, answered)
    assert [s.name for s in ref.children] == (["MSH", "MSA"] + (["ERR"] if error else []))
    assert field(ref, "MSH", 12) == answered
    ours = parse(ack)
    msh = ours.msh
    assert msh.value(12) == answered
    # Routing is mirrored: we answer as the application the sender addressed.
    assert msh.parts(3) == ["DCPLAN"] and msh.value(4) == "GENHOSPFAC"
    assert msh.parts(5) == ["ADTSYS", "1.2.840.99", "ISO"] and msh.value(6) == "GENHOSP"
    assert field(ref, "MSH", 5) == "ADTSYS^1.2.840.99^ISO"
    assert msh.value(7) == "20260302101507-0600"  # the hospital's local time, with offset
    assert msh.value(9) == "ACK" and msh.value(9, 2) == "A01"
    assert msh.value(9, 3) == ("" if answered == "2.3" else "ACK")
    assert msh.value(11) == "P"
    assert re.fullmatch(r"A\w{19}", msh.value(10))
    assert field(ref, "MSA", 1) == code
    assert field(ref, "MSA", 2) == "CTRL-0001"
    if error is None:
        assert ours.segment("ERR") is None and field(ref, "MSA", 3) == ""
        return
    err = ours.segment("ERR")
    assert err is not None
    if answered in ERR1_VERSIONS:
        assert err.value(1, 4) == str(error.code)
        assert err.value(1, 4, sub=3) == "HL70357"
        assert field(ref, "ERR", 1).split("^")[3].split("&")[0] == str(error.code)
        if error.segment:
            assert err.parts(1)[:3] == [error.segment, "1", str(error.field)]
    else:
        assert field(ref, "ERR", 3).split("^")[0] == str(error.code)
        assert field(ref, "ERR", 3).endswith("^HL70357")
        assert field(ref, "ERR", 4) == "E"
        assert err.value(8) == error.text
        if error.segment:
            assert field(ref, "ERR", 2) == f"{error.segment}^1^{error.field}"
        else:
            assert field(ref, "ERR", 2) == ""
    msa = ours.segment("MSA")
    assert msa is not None
    assert msa.value(3) == ("" if answered in NO_MSA3 else error.text)


@pytest.mark.parametrize("version", ["2.3", "2.5.1", "2.8"])
def test_an_error_text_full_of_delimiters_is_escaped_and_reads_back_exactly(version):
    error = AckIssue(102, NASTY_TEXT, "PID", 3)
    ack = ack_for("AE", incoming(version), error)

    segments = ack.split("\r")
    assert len(segments) == 3  # no delimiter in the text made a segment of its own
    ref = hl7apy_parse(ack, version)
    err = next(s for s in ref.children if s.name == "ERR")
    if version == "2.3":
        # ERR-1 is the only field and the text sits in its fourth component.
        assert [f.name for f in err.children] == ["ERR_1"]
        assert parse(ack).segment("ERR").value(1, 4, sub=2) == "Data type error"  # type: ignore[union-attr]
    else:
        # hl7apy keeps escaped text; python-hl7 decodes it independently of our reader.
        unescape = python_hl7.parse(ack).unescape
        assert unescape(field(ref, "ERR", 8)) == NASTY_TEXT
        assert parse(ack).segment("ERR").value(8) == NASTY_TEXT  # type: ignore[union-attr]
    if version != "2.8":
        msa = next(s for s in ref.children if s.name == "MSA")
        assert [f.name for f in msa.children] == ["MSA_1", "MSA_2", "MSA_3"]
        assert parse(ack).segment("MSA").value(3) == NASTY_TEXT  # type: ignore[union-attr]


def test_a_control_id_with_delimiters_is_echoed_exactly():
    """MSH-10 `A\\F\\B^C` (escaped pipe and a component) comes back as sent, decoded alike."""
    text = ("MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|20260302101500||ADT^A01^ADT_A01|"
            "A\\F\\B~X|P|2.5.1\r")
    header = header_of(parse(text))
    assert header.control_id == "A|B"  # first repetition, decoded
    ack = ack_for("AA", header)
    assert parse(ack).segment("MSA").value(2) == "A|B"  # type: ignore[union-attr]
    assert field(hl7apy_parse(ack, "2.5.1"), "MSA", 2) == "A\\F\\B"


def test_a_value_that_looks_like_a_template_token_is_not_substituted():
    header = incoming("2.5.1", control_id="QQERRMSGQQ")
    ack = ack_for("AE", header, AckIssue(207, "QQREFIDQQ stays text"))
    msa = parse(ack).segment("MSA")
    assert msa is not None and msa.value(2) == "QQERRMSGQQ"
    assert parse(ack).segment("ERR").value(8) == "QQREFIDQQ stays text"  # type: ignore[union-attr]


def test_the_truncation_character_declared_from_2_7_is_escaped_in_values():
    """hl7apy declares `^~\\&#` for 2.7+; a '#' in a mirrored value must then read as text."""
    ack = ack_for("AA", incoming("2.8", control_id="ROOM#12"))
    assert ack.startswith("MSH|^~\\&#|")
    assert "ROOM\\P\\12" in ack
    assert parse(ack).segment("MSA").value(2) == "ROOM#12"  # type: ignore[union-attr]
    hl7apy_parse(ack, "2.8")


def test_a_header_without_routing_still_gets_a_complete_ack():
    """What intake salvages from an unreadable message: no routing, maybe no trigger."""
    ack = ack_for("AR", Header(control_id="X1"), AckIssue(100, "no MSH"))
    msh = parse(ack).msh
    assert msh.value(3) == "DCPLAN" and msh.value(4) == "GENHOSP"
    assert msh.value(5) == "" and msh.value(9) == "ACK" and msh.value(9, 2) == ""
    hl7apy_parse(ack, "2.5.1")


def test_a_long_error_fits_msa_3_and_is_whole_in_err_8():
    text = "reason " * 40
    ack = ack_for("AE", incoming("2.5.1"), AckIssue(207, text))
    hl7apy_parse(ack, "2.5.1")
    msg = parse(ack)
    assert len(msg.segment("MSA").value(3)) <= 80  # MSA-3 is ST(80) in 2.3 to 2.6  # type: ignore[union-attr]
    assert msg.segment("ERR").value(8) == text.strip()  # type: ignore[union-attr]


def test_ack_control_ids_are_unique():
    header = incoming("2.5.1")
    ids = {parse(ack_for("AA", header)).msh.value(10) for _ in range(2000)}
    assert len(ids) == 2000
