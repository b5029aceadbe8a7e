"""The fast ER7 reader agrees with hl7apy on every fixture message.

engine.hl7.message is the hot path; hl7apy is the reference that knows each version's
structures. For every message under fixtures/hl7/events and fixtures/hl7/stories, the
fields the engine lives on must read the same through both.

Comparing like with like: hl7apy 1.3.5 never unescapes. A parsed element keeps the ER7
text it was given, and `to_er7()` returns that text, escape sequences and all (its
escaping regex leaves existing `\\X\\` sequences alone). It also has no public unescape
(`Message.unescape` exists only in later versions). So the reference value of a component
is hl7apy's ER7 text for that component, cut by hl7apy's own structure (its components
and subcomponents), then decoded by an independent implementation, python-hl7's
`hl7.util.unescape`, and compared with our decoded `Segment.value`. The undecoded
repetitions are compared too, so a structural mismatch cannot hide behind decoding.
"""

from __future__ import annotations

import re
from pathlib import Path

import hl7 as python_hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from engine.hl7.framing import split_file
from engine.hl7.message import Message, Segment, decode, parse

HL7_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7"

# (segment, field): every repetition and every component of these is compared.
FIELDS = [
    ("MSH", 3), ("MSH", 4), ("MSH", 5), ("MSH", 6), ("MSH", 7), ("MSH", 9), ("MSH", 10),
    ("MSH", 12),
    ("EVN", 2), ("EVN", 6),
    ("PID", 3), ("PID", 5), ("PID", 7), ("PID", 8), ("PID", 11),
    ("PV1", 2), ("PV1", 3), ("PV1", 4), ("PV1", 7), ("PV1", 10), ("PV1", 14), ("PV1", 18),
    ("PV1", 19), ("PV1", 36), ("PV1", 44), ("PV1", 45),
    ("PV2", 9),
    ("DG1", 3), ("DG1", 6),
    ("DRG", 1),
    ("IN1", 2),
    ("MRG", 1),
]
# python-hl7 reads \.br\ as CR and highlighting as "_" by default; the engine reads a line
# break as LF and drops highlighting (plain text has no emphasis). Same sequences, the
# engine's chosen replacements.
APP_MAP = {".br": "\n", ".sp": "\n", "H": "", "N": ""}
_POSITION = re.compile(r"_(\d+)$")


def _fixture_messages() -> list[tuple[str, bytes]]:
    out = []
    files = sorted((HL7_FIXTURES / "events").glob("*/*.hl7"))
    files += sorted((HL7_FIXTURES / "stories").glob("*.hl7"))
    for path in files:
        for i, raw in enumerate(split_file(path.read_bytes()), 1):
            out.append((f"{path.parent.name}/{path.stem}#{i}", raw))
    return out


MESSAGES = _fixture_messages()


def test_every_fixture_folder_is_present():
    """Three versions x 19 triggers, plus the stories; a missing file would shrink the test."""
    events = list((HL7_FIXTURES / "events").glob("*/*.hl7"))
    assert len(events) == 57
    assert len(MESSAGES) >= 57 + 30


# -- hl7apy, read by position ------------------------------------------------------------


def _reference(text: str):
    # hl7apy only splits segments on CR, the standard terminator; the reader's LF tolerance
    # is a separate story (test_hl7_reader.py). The stories' LF files get CRs for hl7apy.
    er7 = text.strip("\r\n").replace("\r\n", "\r").replace("\n", "\r")
    return parse_message(er7, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)


def _ref_segments(ref, name: str) -> list:
    # Attribute access (`ref.pv2`) would *create* a missing segment: look, don't touch.
    return [s for s in ref.children if s.name == name]


def _ref_repetitions(ref_seg, n: int) -> list:
    wanted = f"{ref_seg.name}_{n}"
    return [f for f in ref_seg.children if f.name == wanted]


def _position(element) -> int | None:
    m = _POSITION.search(element.name or "")
    return int(m.group(1)) if m else None


def _ref_components(rep) -> dict[int, str]:
    """Escaped ER7 text of each component of one repetition, by position (1-based).

    A primitive field is one component. A composite component (e.g. CX-4 HD, or PL-1 HD
    from 2.7 on) is read as its first subcomponent, as the engine reads it.
    """
    children = list(rep.children)
    if not children or all(_position(c) is None for c in children):
        return {1: rep.to_er7()}
    out = {}
    for comp in children:
        pos = _position(comp)
        assert pos is not None, f"unexpected hl7apy element {comp.name} in {rep.name}"
        subs = list(comp.children)
        if subs and any(_position(s) is not None for s in subs):
            first = [s for s in subs if _position(s) == 1]
            out[pos] = first[0].to_er7() if first else ""
        else:
            out[pos] = comp.to_er7()
    return out


# -- the comparison ----------------------------------------------------------------------


def _compare(ours: Message, ref, unescape) -> list[str]:
    problems = []
    our_names = [s.name for s in ours.segments]
    ref_names = [s.name for s in ref.children]
    if our_names != ref_names:
        return [f"segments differ: ours {our_names} hl7apy {ref_names}"]
    for name, n in FIELDS:
        our_segs: list[Segment] = ours.all(name)
        ref_segs = _ref_segments(ref, name)
        for k, (seg, ref_seg) in enumerate(zip(our_segs, ref_segs, strict=True), 1):
            where = f"{name}[{k}]-{n}"
            ref_reps = _ref_repetitions(ref_seg, n)
            our_reps = seg.repetitions(n)
            if our_reps != [r.to_er7() for r in ref_reps]:
                problems.append(f"{where} repetitions: ours {our_reps} hl7apy "
                                f"{[r.to_er7() for r in ref_reps]}")
                continue
            for r, ref_rep in enumerate(ref_reps):
                comps = _ref_components(ref_rep)
                width = max([len(seg.components(n, r)), *comps])
                for c in range(1, width + 1):
                    expected = unescape(comps.get(c, ""), APP_MAP)
                    got = seg.value(n, c, r)
                    if got != expected:
                        problems.append(f"{where}~{r}.{c}: ours {got!r} hl7apy {expected!r}")
                    parts = seg.parts(n, r)
                    if c <= len(parts) and parts[c - 1] != got:
                        problems.append(f"{where}~{r}.{c}: parts() {parts[c - 1]!r} "
                                        f"value() {got!r}")
    return problems


@pytest.mark.parametrize("raw", [m[1] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_fast_reader_agrees_with_hl7apy(raw):
    text = decode(raw)
    ours = parse(text)
    ref = _reference(text)
    unescape = python_hl7.parse(ref.to_er7()).unescape  # knows this message's delimiters
    assert _compare(ours, ref, unescape) == []


def test_the_comparison_does_reach_escaped_values():
    """Guard against a vacuous pass: the fixtures do carry escapes in compared fields."""
    escaped = {
        ident: (seg.name, n)
        for ident, raw in MESSAGES
        for seg in parse(decode(raw)).segments
        for name, n in FIELDS
        if seg.name == name and "\\" in seg.raw(n)
    }
    assert {"PID", "DRG"} <= {where[0] for where in escaped.values()}
    pid = parse(decode((HL7_FIXTURES / "events/v2.5.1/A01.hl7").read_bytes())).segment("PID")
    assert pid is not None
    assert pid.value(11, 1) == "100 TEST ST & ANNEX"


def test_a_disagreement_would_be_reported():
    """The comparison itself catches a reader that drops a repetition."""
    raw = (HL7_FIXTURES / "events/v2.5.1/A01.hl7").read_bytes()
    text = decode(raw)
    ref = _reference(text)
    broken = parse(text.replace("~999-00-1001^^^SSA^SS", ""))
    problems = _compare(broken, ref, python_hl7.parse(ref.to_er7()).unescape)
    assert any(p.startswith("PID[1]-3 repetitions") for p in problems)
