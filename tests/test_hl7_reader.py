"""Stories for the fast ER7 reader, its timestamps, and the hostile inputs it must refuse.

The reader is what every ADT message goes through first: it must read what real feeds send
(odd delimiters, LF line ends, Latin-1 names, Z-segments), never crash on what they should
not send, and the refusals it leads to must keep the input byte for byte.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.hl7.build import adt
from engine.hl7.message import Encoding, Hl7ParseError, decode, parse
from engine.hl7.timestamps import Hl7TimestampError, parse_date, parse_dtm
from engine.storage.models import Encounter, InboundMessage, Patient

NASTY = Path(__file__).resolve().parent.parent / "fixtures" / "hl7" / "nasty"
CHICAGO = ZoneInfo("America/Chicago")


def message(*segments: str, sep: str = "\r") -> str:
    return sep.join(segments) + sep


MSH = "MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|20260302101500||ADT^A01^ADT_A01|C1|P|2.5.1"


# -- escapes -----------------------------------------------------------------------------


def test_a_family_name_with_every_delimiter_escaped_reads_as_written():
    pid = parse(message(MSH, "PID|1||1^^^GENHOSP^MR||O\\F\\BRIEN\\S\\X\\T\\Y\\R\\Z\\E\\END^ANN"))
    segment = pid.segment("PID")
    assert segment is not None
    assert segment.value(5, 1) == "O|BRIEN^X&Y~Z\\END"
    assert segment.value(5, 2) == "ANN"


@pytest.mark.parametrize(
    ("escaped", "decoded"),
    [
        ("\\X41\\", "A"),
        ("caf\\XC3A9\\", "café"),  # hex bytes that are UTF-8
        ("caf\\XE9\\", "café"),  # hex bytes that are not: Latin-1
        ("line one\\.br\\line two", "line one\nline two"),
        ("\\H\\urgent\\N\\ call", "urgent call"),  # highlighting has no plain-text form
        ("a\\Zlocal\\b", "a\\Zlocal\\b"),  # site-defined: kept as written
        ("a\\X4\\b", "a\\X4\\b"),  # odd hex: kept as written
        ("50\\ off", "50\\ off"),  # an escape never closed: kept as written
        ("\\E\\\\E\\", "\\\\"),
        ("\\T\\\\S\\", "&^"),
    ],
)
def test_escape_sequences_decode_and_unknown_ones_survive(escaped, decoded):
    nte = parse(message(MSH, f"NTE|1||{escaped}")).segment("NTE")
    assert nte is not None
    assert nte.value(3) == decoded
    assert nte.parts(3) == [decoded]


def test_encoding_unescape_is_a_no_op_without_escape_characters():
    text = "plain text"
    assert Encoding().unescape(text) is text


# -- delimiters --------------------------------------------------------------------------


def test_a_sender_with_its_own_delimiters_is_read_with_them():
    """`$` components, `%` repetitions, `*` escape, `@` subcomponents, `#` truncation (2.7+)."""
    text = message(
        "MSH|$%*@#|ADTSYS|GENHOSP|DCPLAN$1.2.3$ISO|GENHOSP|20260302101500||ADT$A01$ADT_A01|"
        "C*F*2|P|2.8",
        "PID|1||111$$$GENHOSP$MR%222$$$SSA$SS||SMITH*S*JONES$O^NEIL&CO$Q||19450612|F|||"
        "1 MAIN ST$$SPRINGFIELD$IL$62701",
        "PV1|1|I|4WEST$412$A$GENHOSP@1.2@ISO",
        "NTE|1||APT *P*5 (truncated#",
    )
    msg = parse(text)
    assert msg.encoding.chars == "|$%*@#"
    msh, pid, pv1 = msg.msh, msg.segment("PID"), msg.segment("PV1")
    assert pid is not None and pv1 is not None
    assert msh.value(1) == "|" and msh.value(2) == "$%*@#"
    assert msh.value(5) == "DCPLAN" and msh.parts(5) == ["DCPLAN", "1.2.3", "ISO"]
    assert msh.value(9, 2) == "A01"
    assert msh.value(10) == "C|2"
    assert [pid.value(3, 1, r) for r in range(2)] == ["111", "222"]
    assert pid.value(3, 5, rep=1) == "SS"
    assert pid.value(5, 1) == "SMITH$JONES"  # *S* is this sender's component separator
    assert pid.value(5, 2) == "O^NEIL&CO"  # ^ and & are plain text with these delimiters
    assert pv1.value(3, 4) == "GENHOSP"
    assert pv1.value(3, 4, sub=2) == "1.2"
    # *P* is the escaped truncation character; a bare one marks a truncated value.
    assert msg.segment("NTE").value(3) == "APT #5 (truncated#"  # type: ignore[union-attr]


def test_another_field_separator_works_too():
    msg = parse("MSH!^~\\&!ADTSYS!GENHOSP!DCPLAN!!20260302!!ADT^A08!C9!P!2.3\rEVN!A08!20260302")
    assert msg.msh.value(3) == "ADTSYS"
    assert msg.msh.value(9, 2) == "A08"
    assert msg.segment("EVN").value(2) == "20260302"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("MSH|^~\\|ADTSYS", "three encoding characters: the subcomponent one is missing"),
        ("MSH|^^\\&|ADTSYS", "a delimiter declared twice"),
        ("MSH|^~|&|ADTSYS", "the field separator used as an encoding character"),
        ("MSH|^~\\&#$|ADTSYS", "six encoding characters"),
        ("MSHA^~\\&A", "a letter as field separator"),
        ("MSH|", "no encoding characters at all"),
    ],
)
def test_an_unusable_header_is_refused(header, why):
    with pytest.raises(Hl7ParseError):
        parse(header + "|GENHOSP|DCPLAN\rEVN|A01\r")


# -- fields, repetitions, segments -------------------------------------------------------


def test_repetitions_components_and_absent_values():
    pid = parse(
        message(MSH, "PID|1||A1^^^GENHOSP^MR~B2^^^SSA^SS~C3^^^&2.16.840.1.113883.4.1&ISO^SS|"
                     "|DOE^JANE||||||||||||||||||||||||||||")
    ).segment("PID")
    assert pid is not None
    assert pid.repetitions(3) == ["A1^^^GENHOSP^MR", "B2^^^SSA^SS",
                                  "C3^^^&2.16.840.1.113883.4.1&ISO^SS"]
    assert [pid.value(3, 1, rep) for rep in range(3)] == ["A1", "B2", "C3"]
    assert pid.value(3, 4, rep=2) == ""  # the namespace subcomponent is empty...
    assert pid.value(3, 4, rep=2, sub=2) == "2.16.840.1.113883.4.1"  # ...the OID is not
    assert pid.value(3, 1, rep=3) == ""  # no fourth repetition
    assert pid.value(5, 3) == ""  # no middle name component
    assert pid.value(4) == "" and pid.repetitions(4) == [] and pid.parts(4) == []
    assert pid.value(99) == ""  # far beyond the last field
    assert len(pid) == 33  # trailing empty fields are kept, not an error


def test_the_hl7_null_is_read_literally_and_left_to_adt_semantics():
    pv2 = parse(message(MSH, 'PV2|||||||||""')).segment("PV2")
    assert pv2 is not None and pv2.value(9) == '""'


def test_msh_numbering_counts_the_field_separator_as_msh_1():
    msh = parse(message(MSH)).msh
    assert [msh.value(n) for n in (1, 2, 3, 7, 10, 12)] == [
        "|", "^~\\&", "ADTSYS", "20260302101500", "C1", "2.5.1"]
    assert msh.repetitions(2) == ["^~\\&"]  # never split on its own delimiters
    assert msh.value(2, 2) == ""


def test_z_segments_and_unknown_segments_are_kept_and_readable():
    msg = parse(message(MSH, "ZPV|custom^data|x", "PID|1||1^^^GENHOSP^MR", "ZPV|second"))
    assert [s.name for s in msg.segments] == ["MSH", "ZPV", "PID", "ZPV"]
    assert msg.segment("ZPV").value(1, 2) == "data"  # type: ignore[union-attr]
    assert [z.value(1) for z in msg.all("ZPV")] == ["custom", "second"]
    assert msg.all("NK1") == [] and msg.segment("NK1") is None


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n", "\n\r"], ids=["CR", "LF", "CRLF", "LFCR"])
def test_any_line_ending_gives_the_same_segments(sep):
    msg = parse(message(MSH, "EVN|A01|20260302", "PID|1||7^^^GENHOSP^MR", sep=sep))
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID"]
    assert msg.msh.value(12) == "2.5.1"  # not '2.5.1\n'
    assert msg.segment("PID").value(3) == "7"  # type: ignore[union-attr]


def test_mllp_bytes_blank_lines_and_a_byte_order_mark_around_a_message_are_ignored():
    msg = parse("\ufeff\x0b" + message(MSH, "", "EVN|A01", "   ") + "\x1c\r\n")
    assert [s.name for s in msg.segments] == ["MSH", "EVN"]


@pytest.mark.parametrize(
    "body",
    ["EVN|A01\rpid|1", "EVN|A01\r PID|1", "EVN|A01\rPIDX|1", "EVN|A01\rP1|x"],
    ids=["lowercase", "leading-space", "four-letters", "short"],
)
def test_a_line_that_is_not_a_segment_is_refused(body):
    with pytest.raises(Hl7ParseError, match="invalid segment name"):
        parse(MSH + "\r" + body)


# -- bytes to text -----------------------------------------------------------------------


def test_latin1_bytes_decode_without_error():
    raw = ("PID|1||1^^^GENHOSP^MR||M\u00dcLLER^ANDR\u00c9").encode("latin-1")
    assert decode(MSH.encode() + b"\r" + raw).endswith("M\u00dcLLER^ANDR\u00c9")


def test_utf8_is_preferred_and_msh_18_chooses_among_8_bit_charsets():
    header = "MSH|^~\\&|A|B|C|D|20260302||ADT^A01|C1|P|2.5.1||||||{}\rNTE|1||"
    utf8 = (header.format("") + "Andr\u00e9").encode()
    assert decode(utf8).endswith("Andr\u00e9")
    # Declared Latin-1 but valid UTF-8: the bytes win (a common misconfiguration).
    assert decode((header.format("8859/1") + "Andr\u00e9").encode()).endswith("Andr\u00e9")
    # Not UTF-8: 0x80 is a control character in Latin-1, the euro sign in Windows-1252.
    assert decode(header.format("8859/1").encode() + b"5\x80").endswith("5\x80")
    assert decode(header.format("").encode() + b"5\x80").endswith("5\u20ac")


def test_bytes_that_no_charset_maps_still_decode():
    assert decode(MSH.encode() + b"\rNTE|1||\x81\x8d\x8f\x90\x9d").endswith("\ufffd" * 5)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_either_parse_or_are_refused_cleanly(raw):
    for candidate in (raw, MSH.encode() + b"\r" + raw):
        text = decode(candidate)
        try:
            msg = parse(text)
        except Hl7ParseError:
            continue
        for seg in msg.segments:
            for n in range(len(seg) + 2):
                seg.value(n, 2, 1, 2)
                seg.parts(n)


# -- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20260302101500", datetime(2026, 3, 2, 10, 15, tzinfo=CHICAGO)),
        ("202603021015", datetime(2026, 3, 2, 10, 15, tzinfo=CHICAGO)),
        ("2026030210", datetime(2026, 3, 2, 10, tzinfo=CHICAGO)),
        ("20260302", datetime(2026, 3, 2, tzinfo=CHICAGO)),
        ("20260302101530.25", datetime(2026, 3, 2, 10, 15, 30, 250000, tzinfo=CHICAGO)),
        ("20260302101500-0600", datetime(2026, 3, 2, 16, 15, tzinfo=UTC)),
        ("20260302101500+0530", datetime(2026, 3, 2, 4, 45, tzinfo=UTC)),
        ("20260302101500.1234+0000", datetime(2026, 3, 2, 10, 15, 0, 123400, tzinfo=UTC)),
        ("  20260302  ", datetime(2026, 3, 2, tzinfo=CHICAGO)),
        ("99991231", datetime(9999, 12, 31, tzinfo=CHICAGO)),
        ("00010101", datetime(1, 1, 1, tzinfo=CHICAGO)),
        ("", None),
    ],
)
def test_timestamps_with_and_without_offsets(text, expected):
    got = parse_dtm(text, CHICAGO)
    assert got == expected
    if got is not None:
        assert got.tzinfo is not None


def test_an_offset_is_kept_as_sent_not_converted_to_the_hospital_zone():
    got = parse_dtm("20260302101500-0500", CHICAGO)
    assert got is not None and got.utcoffset() == timedelta(hours=-5)
    assert got.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "text",
    ["2026-03-02", "20261399", "20260230", "2026030225", "202603021", "20260302101500-2400",
     "20260302101500Z", "NOW", "20260302 1015", "00000101", "2026030210150",
     "99991231235959"],  # the last has no UTC form in Chicago
)
def test_what_is_not_a_timestamp_is_refused(text):
    with pytest.raises(Hl7TimestampError):
        parse_dtm(text, CHICAGO)


def test_the_repeated_autumn_hour_reads_as_its_first_pass():
    """2026-11-01 01:30 happens twice in Chicago; without an offset we take the first
    (daylight time, fold=0). A sender that means the second must send -0600."""
    first = parse_dtm("202611010130", CHICAGO)
    assert first is not None
    assert first.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert first.utcoffset() == timedelta(hours=-5) and first.fold == 0
    second = parse_dtm("202611010130-0600", CHICAGO)
    assert second is not None
    assert second - first == timedelta(hours=1)


def test_a_spring_gap_time_reads_with_the_offset_before_the_jump():
    """2026-03-08 02:30 never happens in Chicago (02:00 jumps to 03:00). fold=0 reads it
    with the standard-time offset (-06:00): the instant 08:30Z, whose real wall time is
    03:30 CDT, and that real wall time is what we return."""
    got = parse_dtm("202603080230", CHICAGO)
    assert got is not None
    assert got.astimezone(UTC) == datetime(2026, 3, 8, 8, 30, tzinfo=UTC)
    assert (got.hour, got.minute, got.utcoffset()) == (3, 30, timedelta(hours=-5))
    just_before = parse_dtm("202603080159", CHICAGO)
    assert just_before is not None
    # Aware datetimes sharing a tzinfo subtract as wall times (1:31 here): compare instants.
    assert got.astimezone(UTC) - just_before.astimezone(UTC) == timedelta(minutes=31)


def test_dates():
    assert parse_date("19450612") == date(1945, 6, 12)
    assert parse_date("194506120000") == date(1945, 6, 12)  # a TS sent where a DT was due
    assert parse_date("") is None
    assert parse_date("1945") == date(1945, 1, 1)  # partial dates are legal DTs
    assert parse_date("194506") == date(1945, 6, 1)
    for bad in ("1945-06-12", "19450631", "194", "19450612XYZ", "1945061"):
        with pytest.raises(Hl7TimestampError):
            parse_date(bad)


# -- hostile inputs through the one path -------------------------------------------------

# fixtures/hl7/nasty/README.md: the answer each file should get, and the ERR code.
NASTY_EXPECTED = {
    "garbage_binary.hl7": ("rejected", 100),
    "empty.hl7": ("rejected", 100),
    "truncated_msh.hl7": ("rejected", 100),
    "encoding_chars_short.hl7": ("rejected", 102),
    "encoding_chars_duplicate.hl7": ("rejected", 102),
    "version_2.9.9.hl7": ("accepted", 203),  # read as 2.8.2, with a warning (ERR W)
    "version_9.0.hl7": ("rejected", 203),
    "non_adt_oru_r01.hl7": ("accepted", None),  # a lab result, none the engine keeps
    "non_adt_qry_a19.hl7": ("rejected", 200),
    "adt_a01_missing_pid.hl7": ("error", 100),
    "adt_a01_missing_pid3.hl7": ("error", 101),
    "adt_a01_missing_pv1_19.hl7": ("accepted", 101),  # a stay under a synthetic key (W)
    "evn2_iso_date.hl7": ("accepted", 102),  # EVN-6 is usable: EVN-2 is a warning
    "evn2_invalid_month.hl7": ("accepted", 102),
    "msh10_empty.hl7": ("accepted", 101),  # applied, no duplicate detection (W)
    "latin1_name.hl7": ("accepted", None),
    "latin1_name_declared.hl7": ("accepted", None),
    "unknown_trigger_a60.hl7": ("ignored", None),
    "long_field_100kb.hl7": ("accepted", None),
    "mixed_separators.hl7": ("accepted", None),
    "oversize_2mb.hl7": ("rejected", None),
}
ACK_CODE = {"accepted": "AA", "ignored": "AA", "rejected": "AR", "error": "AE"}
# Every nasty fixture gets its documented answer through Intake.hl7 (size cap included).


def test_every_nasty_fixture_has_an_expected_answer():
    assert sorted(NASTY_EXPECTED) == sorted(p.name for p in NASTY.glob("*.hl7"))


def _err_code(ack: str) -> int | None:
    msg = parse(ack)
    err = msg.segment("ERR")
    if err is None:
        return None
    if msg.msh.value(12) in ("2.3", "2.3.1", "2.4"):
        return int(err.value(1, 4))
    return int(err.value(3, 1))


@pytest.mark.parametrize(
    "name",
    sorted(NASTY_EXPECTED),
)
def test_hostile_input_gets_the_right_answer_and_is_kept_byte_for_byte(runtime, name):
    raw = (NASTY / name).read_bytes()
    outcome, err_code = NASTY_EXPECTED[name]

    receipt = runtime.intake.hl7(raw, channel="file")

    assert receipt.outcome == outcome, receipt.reason
    ack = parse(receipt.ack)
    assert ack.segment("MSA").value(1) == ACK_CODE[outcome]  # type: ignore[union-attr]
    control_id = parse(decode(raw)).msh.value(10) if outcome != "rejected" else None
    if control_id:
        assert ack.segment("MSA").value(2) == control_id  # type: ignore[union-attr]
    if err_code is not None:
        assert _err_code(receipt.ack) == err_code
    with runtime.sessions() as session:
        row = session.get(InboundMessage, receipt.message_id)
        assert row is not None
        assert bytes(row.raw) == raw
        assert row.outcome == outcome
        assert row.ack == receipt.ack
        if outcome in ("error", "rejected"):
            assert row.reason  # a person can read why


@pytest.mark.parametrize("when", ["99991231235959", "99991231235959-1200", "18000101"])
def test_an_absurd_event_time_is_an_error_kept_for_replay_not_a_stalled_feed(runtime, when):
    """Year 9999 in Chicago has no UTC form; storing it failed on every retry ("storage
    unavailable"), so the sender resent it forever and the feed behind it stalled."""
    raw = adt("A01", when, mrn="740001", visit="V740001")
    receipt = runtime.intake.hl7(raw, channel="file")
    assert receipt.outcome == "error"
    assert _err_code(receipt.ack) == 102
    assert runtime.intake.hl7(raw, channel="file").ack == receipt.ack  # answered, once


OVERLONG = {
    "MRN": (dict(mrn="9" * 300), "error", "PID-3", None),
    "visit number": (dict(visit="V" * 300), "error", "PV1-19", None),
    "control id": (dict(control_id="C" * 250), "rejected", "MSH-10", None),
    "unit": (dict(location="U" * 300 + "^1^A^GENHOSP"), "accepted", "PV1-3", Encounter.unit),
    "attending id": (dict(attending="D" * 300), "accepted", "PV1-7", Encounter.attending_id),
    "family name": (dict(name="X" * 300 + "^ANN"), "accepted", "PID-5", Patient.family),
}


@pytest.mark.parametrize("what", list(OVERLONG))
def test_an_overlong_value_is_refused_or_cut_never_a_stalled_feed(runtime, what):
    """PostgreSQL enforces column widths: a value too long for its column failed the
    insert on every retry ("storage unavailable"), so the feed stalled behind it. Keys
    beyond their generous bound are refused (AE/AR, kept for replay); anything else is cut
    to its (wide) column with a warning on the inbound row."""
    fields, outcome, where, column = OVERLONG[what]
    raw = adt("A01", "20260302101500", **{"mrn": "750001", "visit": "V750001", **fields})
    receipt = runtime.intake.hl7(raw, channel="file")
    assert receipt.outcome == outcome, receipt.reason
    if column is None:
        assert receipt.reason.startswith(where)
    else:
        with runtime.sessions() as session:
            assert len(session.scalars(select(column)).one()) == 250
            warnings = session.get(InboundMessage, receipt.message_id).warnings
            assert warnings.startswith(f"{where} is 30"), warnings


def test_a_latin1_name_is_stored_as_the_sender_meant_it(runtime):
    for name in ("latin1_name.hl7", "latin1_name_declared.hl7"):
        receipt = runtime.intake.hl7((NASTY / name).read_bytes(), channel="file")
        assert receipt.outcome == "accepted"
    with runtime.sessions() as session:
        assert session.scalars(select(Patient.given)).all() == ["Andr\u00e9"]


def test_an_unreadable_message_keeps_its_control_id_in_the_answer_when_it_can(runtime):
    receipt = runtime.intake.hl7((NASTY / "encoding_chars_short.hl7").read_bytes())
    assert receipt.outcome == "rejected"
    assert parse(receipt.ack).segment("MSA").value(2) == "NASTY-ENC-0001"  # type: ignore[union-attr]


def test_a_100kb_field_is_read_whole_and_the_fields_around_it_intact():
    msg = parse(decode((NASTY / "long_field_100kb.hl7").read_bytes()))
    obx = [s for s in msg.all("OBX") if len(s.raw(5)) > 1000]
    assert len(obx) == 1 and len(obx[0].value(5)) == 102_400
    assert obx[0].value(11) == "F" or obx[0].value(11) == ""
    assert msg.segment("PID").value(3) == "290001"  # type: ignore[union-attr]
