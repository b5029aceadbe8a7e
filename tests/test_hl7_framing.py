"""MLLP framing and HL7 files: however the bytes arrive, the same messages come out."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hl7.framing import END, SB, FrameReader, FrameTooLarge, frame, split_file
from engine.hl7.message import parse

STORIES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7" / "stories"
A = b"MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|20260302||ADT^A01|C1|P|2.5.1\rEVN|A01\r"
B = b"MSH|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|20260302||ADT^A08|C2|P|2.5.1\rEVN|A08\r"


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += reader.feed(data[last:cut])
        last = cut
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(frame(A) + frame(B))), max_size=40))
def test_frames_split_anywhere_come_out_whole_and_in_order(cuts):
    reader = FrameReader(max_bytes=1000)
    assert feed_in_pieces(reader, frame(A) + frame(B), cuts) == [A, B]
    assert not reader.partial and not reader.stray


def test_a_frame_fed_one_byte_at_a_time():
    reader = FrameReader(max_bytes=1000)
    out = [f for byte in frame(A) for f in reader.feed(bytes([byte]))]
    assert out == [A]


def test_bytes_between_frames_are_kept_as_stray_and_the_frames_still_read():
    reader = FrameReader(max_bytes=1000)
    assert reader.feed(b"hello" + frame(A) + b"\r\n" + frame(B)) == [A, B]
    assert bytes(reader.stray) == b"hello\r\n"


def test_a_frame_abandoned_for_a_new_one_is_stray_not_glued_to_the_next():
    reader = FrameReader(max_bytes=1000)
    assert reader.feed(SB + b"MSH|half a mess" + frame(B)) == [B]
    assert bytes(reader.stray) == SB + b"MSH|half a mess"


def test_an_oversize_frame_is_skipped_as_it_streams_with_bounded_memory():
    reader = FrameReader(max_bytes=100)
    big = frame(b"MSH|" + b"x" * 10_000)
    out = []
    for i in range(0, len(big), 512):
        out += reader.feed(big[i : i + 512])
        assert len(reader._buf) <= 100 + 512 + 1
    out += reader.feed(frame(A))
    assert len(out) == 2 and isinstance(out[0], FrameTooLarge) and out[1] == A
    assert out[0].head.startswith(b"MSH|xxx") and len(out[0].head) <= 4096


def test_an_oversize_frame_in_one_read_is_refused_too():
    reader = FrameReader(max_bytes=10)
    out = reader.feed(frame(A) + frame(b"MSH|ok"))
    assert isinstance(out[0], FrameTooLarge) and out[1] == b"MSH|ok"


def test_an_end_marker_split_between_reads_while_skipping_is_found():
    reader = FrameReader(max_bytes=10)
    out = reader.feed(SB + b"y" * 50 + b"\x1c") + reader.feed(b"\r" + frame(b"MSH|ok"))
    assert isinstance(out[0], FrameTooLarge) and out[1] == b"MSH|ok"


def test_abandon_returns_the_unfinished_frame():
    reader = FrameReader(max_bytes=1000)
    reader.feed(SB + b"MSH|^~\\&|SLOW")
    assert reader.partial
    assert reader.abandon() == b"MSH|^~\\&|SLOW"
    assert not reader.partial and reader.feed(frame(A)) == [A]


# -- files -------------------------------------------------------------------------------


def test_every_story_file_splits_into_messages_that_parse():
    for path in sorted(STORIES.glob("*.hl7")):
        messages = split_file(path.read_bytes())
        assert len(messages) >= 2, path.name
        ids = [parse(m.decode()).msh.value(10) for m in messages]
        assert len(set(ids)) == len(ids), path.name


def test_framed_cr_lf_and_crlf_files_give_the_same_messages():
    expected = [A.rstrip(b"\r"), B.rstrip(b"\r")]
    variants = {
        "framed": frame(A) + frame(B) + b"\n",
        "CR": A + B,
        "LF between": A + b"\n" + B,
        "CRLF": (A + B).replace(b"\r", b"\r\n"),
        "LF": (A + b"\n" + B).replace(b"\r", b"\n"),
        "BOM": b"\xef\xbb\xbf" + A + b"\r\n" + B,
    }
    for name, data in variants.items():
        got = [parse(m.decode()).msh.value(10) for m in split_file(data)]
        assert got == ["C1", "C2"], name
    assert split_file(A + B) == expected


def test_nothing_in_a_file_is_silently_dropped():
    assert split_file(b"junk before\r" + A) == [b"junk before", A.rstrip(b"\r")]
    # A framed file whose last frame lost its end marker, and bytes outside frames.
    data = frame(A) + b"stray" + SB + B
    assert split_file(data) == [A, B, b"stray"]
    assert split_file(b"") == [] and split_file(b"\r\n \n") == []
    assert END not in b"".join(split_file(data))
