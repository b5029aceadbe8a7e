"""A fast, read-only view of an ER7-encoded HL7 v2 message.

hl7apy's full parse costs ~7 ms per ADT; the ingest budget is ~0.5 ms, so the hot path
splits on the message's own encoding characters and unescapes on access. Differential tests
check it against hl7apy on every fixture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")


class Hl7ParseError(ValueError):
    """The bytes are not a readable HL7 v2 message (answered with AR)."""


@dataclass(frozen=True, slots=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    def unescape(self, text: str) -> str:
        esc = self.escape
        if not esc or esc not in text:
            return text
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != esc:
                out.append(ch)
                i += 1
                continue
            end = text.find(esc, i + 1)
            if end == -1:
                out.append(text[i:])
                break
            out.append(self._escape_value(text[i + 1 : end]))
            i = end + 1
        return "".join(out)

    def _escape_value(self, code: str) -> str:
        simple = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            "P": self.subcomponent,
            ".br": "\n",
            "H": "",
            "N": "",
        }
        if code in simple:
            return simple[code]
        if code.startswith("X") and len(code) > 1:
            try:
                return bytes.fromhex(code[1:]).decode("latin-1")
            except ValueError:
                pass
        return f"{self.escape}{code}{self.escape}"


class Segment:
    """One segment; `field(n)` uses HL7's 1-based numbering, MSH included."""

    __slots__ = ("name", "_fields", "_enc")

    def __init__(self, name: str, fields: list[str], enc: Encoding) -> None:
        self.name = name
        self._fields = fields
        self._enc = enc

    def raw(self, n: int) -> str:
        """The undecoded text of field n ('' when absent)."""
        if self.name == "MSH":
            if n == 1:
                return self._enc.field
            idx = n - 1
        else:
            idx = n
        return self._fields[idx] if idx < len(self._fields) else ""

    def repetitions(self, n: int) -> list[str]:
        raw = self.raw(n)
        if self.name == "MSH" and n == 2:
            return [raw]
        return raw.split(self._enc.repetition) if raw else []

    def components(self, n: int, rep: int = 0) -> list[str]:
        reps = self.repetitions(n)
        if rep >= len(reps):
            return []
        return reps[rep].split(self._enc.component)

    def value(self, n: int, component: int = 1, rep: int = 0, sub: int = 1) -> str:
        """Decoded text of field n, component, subcomponent of repetition `rep` ('' if absent)."""
        if self.name == "MSH" and n <= 2:
            return self.raw(n)
        comps = self.components(n, rep)
        if component > len(comps):
            return ""
        text = comps[component - 1]
        if sub > 1 or self._enc.subcomponent in text:
            subs = text.split(self._enc.subcomponent)
            text = subs[sub - 1] if sub <= len(subs) else ""
        return self._enc.unescape(text)

    def __len__(self) -> int:
        return len(self._fields) - 1 if self.name != "MSH" else len(self._fields)


class Message:
    __slots__ = ("segments", "encoding", "_index")

    def __init__(self, segments: list[Segment], encoding: Encoding) -> None:
        self.segments = segments
        self.encoding = encoding
        self._index: dict[str, list[Segment]] = {}
        for seg in segments:
            self._index.setdefault(seg.name, []).append(seg)

    def segment(self, name: str) -> Segment | None:
        found = self._index.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        return self._index.get(name, [])

    @property
    def msh(self) -> Segment:
        return self.segments[0]


def decode(raw: bytes) -> str:
    """HL7 feeds are usually ASCII/UTF-8, sometimes Latin-1: never fail on decoding."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse(text: str) -> Message:
    """Split an ER7 message into segments and fields; raise Hl7ParseError if it is not HL7."""
    text = text.strip("\x0b\x1c\r\n \t\x00")
    if not text.startswith("MSH"):
        raise Hl7ParseError("message does not start with an MSH segment")
    if len(text) < 8:
        raise Hl7ParseError("MSH segment is truncated (no encoding characters)")
    field_sep = text[3]
    if field_sep.isalnum() or field_sep in "\r\n ":
        raise Hl7ParseError(f"invalid field separator {field_sep!r} in MSH-1")
    enc_end = text.find(field_sep, 4)
    enc_chars = text[4:enc_end] if enc_end != -1 else text[4:]
    if len(enc_chars) < 2 or len(enc_chars) > 5:
        raise Hl7ParseError(f"invalid encoding characters {enc_chars!r} in MSH-2")
    chars = list(enc_chars) + [""] * (4 - len(enc_chars))
    special = [field_sep, *[c for c in chars if c]]
    if len(set(special)) != len(special) or any(c.isalnum() for c in special):
        raise Hl7ParseError(f"invalid encoding characters {enc_chars!r} in MSH-2")
    enc = Encoding(field_sep, chars[0], chars[1], chars[2], chars[3])

    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    segments: list[Segment] = []
    for line in lines:
        if not line.strip():
            continue
        fields = line.split(field_sep)
        name = fields[0]
        if not SEGMENT_ID.match(name):
            raise Hl7ParseError(f"invalid segment name {name[:10]!r} (segment {len(segments) + 1})")
        segments.append(Segment(name, fields, enc))
    if segments[0].name != "MSH":
        raise Hl7ParseError("message does not start with an MSH segment")
    return Message(segments, enc)
