"""A fast, read-only view of an ER7-encoded HL7 v2 message.

hl7apy's full parse costs ~7 ms per ADT; the ingest budget is ~0.5 ms, so the hot path
splits on the message's own encoding characters, splits a segment into fields only when it
is read, and unescapes on access. tests/test_hl7_differential.py checks it against hl7apy on
every fixture message.
"""

from __future__ import annotations

import re

from engine.core.errors import Malformed

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_good_names: set[str] = set()  # segment ids already validated (at most 26*36*36)
_FRAMING = "\ufeff\x0b\x1c\r\n \t\x00"  # byte order mark, MLLP bytes, whitespace


class Hl7ParseError(Malformed, ValueError):
    """The bytes are not a readable HL7 v2 message (answered with AR).

    `code` is the HL7 table 0357 error code for the ERR segment: 100 when there is no
    usable MSH or segment structure, 102 when MSH-1/MSH-2 declare unusable delimiters.
    """

    def __init__(self, text: str, code: int = 102) -> None:
        super().__init__(text)
        self.code = code


class Encoding:
    """The delimiters a message declares in MSH-1 and MSH-2, and its escape decoding."""

    __slots__ = (
        "field", "component", "repetition", "escape", "subcomponent", "truncation", "_codes"
    )

    def __init__(
        self,
        field: str = "|",
        component: str = "^",
        repetition: str = "~",
        escape: str = "\\",
        subcomponent: str = "&",
        truncation: str = "",
    ) -> None:
        self.field = field
        self.component = component
        self.repetition = repetition
        self.escape = escape
        self.subcomponent = subcomponent
        self.truncation = truncation  # v2.7+, optional; '' when MSH-2 has four characters
        # HL7 v2 chapter 2.7: delimiter escapes, highlighting (dropped: plain text has no
        # emphasis) and line breaks. Anything else (\Zxx\, \Cxxyy\, ...) is kept verbatim.
        self._codes = {
            "F": field,
            "S": component,
            "T": subcomponent,
            "R": repetition,
            "E": escape,
            "H": "",
            "N": "",
            ".br": "\n",
            ".sp": "\n",
        }
        if truncation:
            self._codes["P"] = truncation

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoding) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"Encoding({self.chars!r})"

    @property
    def chars(self) -> str:
        """MSH-1 followed by MSH-2, e.g. '|^~\\&'."""
        return (
            self.field + self.component + self.repetition + self.escape + self.subcomponent
            + self.truncation
        )

    def unescape(self, text: str) -> str:
        """Decode escape sequences; an unterminated or unknown one is kept as written."""
        esc = self.escape
        if esc not in text:
            return text
        parts = text.split(esc)
        # parts alternate text, code, text, code, ...; an even count means the last
        # escape character was never closed.
        out = [parts[0]]
        last = len(parts) - 1
        codes = self._codes
        i = 1
        while i < last:
            code = parts[i]
            decoded = codes.get(code)
            if decoded is None:
                decoded = _hex(code) if code[:1] == "X" else None
                if decoded is None:
                    decoded = esc + code + esc
            out.append(decoded)
            out.append(parts[i + 1])
            i += 2
        if i == last:
            out.append(esc + parts[last])
        return "".join(out)


def _hex(code: str) -> str | None:
    """\\Xhhhh\\: bytes in hex; UTF-8 when they form it, else Latin-1 (never fails)."""
    try:
        data = bytes.fromhex(code[1:])
    except ValueError:
        return None
    if not data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


DEFAULT_ENCODING = Encoding()
_encodings: dict[str, Encoding] = {DEFAULT_ENCODING.chars: DEFAULT_ENCODING}
# MSH-2 with the escape character doubled, as a Java or C# string literal leaves it when
# copied out unescaped (LinuxForHealth samples): read as the standard one. Only this exact
# shape; any other repeated delimiter stays refused.
DOUBLED_ESCAPE = "^~\\\\&"


class Segment:
    """One segment, split into fields when first read. Field numbers are HL7's, 1-based.

    For MSH, field 1 is the field separator itself and field 2 the encoding characters, so
    `msh.value(3)` is the sending application, as the standard numbers it.
    """

    __slots__ = ("name", "line", "_fields", "_enc", "_msh")

    def __init__(self, name: str, line: str, enc: Encoding) -> None:
        self.name = name
        self.line = line
        self._enc = enc
        self._msh = name == "MSH"
        self._fields: list[str] | None = None

    @property
    def fields(self) -> list[str]:
        """Undecoded field texts; index n is field n (index 0 is the segment id)."""
        fields = self._fields
        if fields is None:
            fields = self.line.split(self._enc.field)
            if self._msh:
                fields.insert(1, self._enc.field)
            self._fields = fields
        return fields

    def raw(self, n: int) -> str:
        """The undecoded text of field n ('' when absent)."""
        fields = self._fields or self.fields
        return fields[n] if n < len(fields) else ""

    def repetitions(self, n: int) -> list[str]:
        """Undecoded repetitions of field n ([] when the field is empty)."""
        raw = self.raw(n)
        if not raw:
            return []
        if self._msh and n <= 2:
            return [raw]
        return raw.split(self._enc.repetition)

    def components(self, n: int, rep: int = 0) -> list[str]:
        """Undecoded components of repetition `rep` of field n ([] when absent)."""
        reps = self.repetitions(n)
        if rep >= len(reps):
            return []
        if self._msh and n <= 2:
            return reps
        return reps[rep].split(self._enc.component)

    def value(self, n: int, component: int = 1, rep: int = 0, sub: int = 1) -> str:
        """Decoded text of field n, component, subcomponent of repetition `rep` ('' if absent).

        A component that holds subcomponents reads as its first subcomponent unless `sub`
        asks for another, as HL7 reads a composite sent where a primitive was expected.
        """
        fields = self._fields or self.fields
        if n >= len(fields):
            return ""
        text = fields[n]
        if not text:
            return ""
        if self._msh and n <= 2:
            return text if component == 1 and rep == 0 and sub == 1 else ""
        enc = self._enc
        sep = enc.repetition
        if rep:
            reps = text.split(sep)
            if rep >= len(reps):
                return ""
            text = reps[rep]
        else:
            i = text.find(sep)
            if i >= 0:
                text = text[:i]
        sep = enc.component
        if component > 1:
            comps = text.split(sep)
            if component > len(comps):
                return ""
            text = comps[component - 1]
        else:
            i = text.find(sep)
            if i >= 0:
                text = text[:i]
        sep = enc.subcomponent
        if sub > 1:
            subs = text.split(sep)
            if sub > len(subs):
                return ""
            text = subs[sub - 1]
        else:
            i = text.find(sep)
            if i >= 0:
                text = text[:i]
        if enc.escape in text:
            return enc.unescape(text)
        return text

    def parts(self, n: int, rep: int = 0) -> list[str]:
        """Decoded components of repetition `rep` of field n, each read as `value` reads it.

        `parts(n)[k - 1] == value(n, k)` for every component k present: one split instead
        of one call per component when a reader wants several components of a field.
        """
        fields = self._fields or self.fields
        if n >= len(fields):
            return []
        text = fields[n]
        if not text:
            return []
        if self._msh and n <= 2:
            return [text] if rep == 0 else []
        enc = self._enc
        if rep:
            reps = text.split(enc.repetition)
            if rep >= len(reps):
                return []
            text = reps[rep]
        else:
            i = text.find(enc.repetition)
            if i >= 0:
                text = text[:i]
        comps = text.split(enc.component)
        sub, esc = enc.subcomponent, enc.escape
        if sub in text:
            comps = [c[: c.find(sub)] if sub in c else c for c in comps]
        if esc in text:
            comps = [enc.unescape(c) for c in comps]
        return comps

    def __len__(self) -> int:
        """The number of the last field present (MSH counts MSH-1)."""
        return len(self._fields or self.fields) - 1

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {len(self)} fields)"


class Message:
    __slots__ = ("segments", "encoding", "_index")

    def __init__(self, segments: list[Segment], encoding: Encoding) -> None:
        self.segments = segments
        self.encoding = encoding
        index: dict[str, list[Segment]] = {}
        for seg in segments:
            found = index.get(seg.name)
            if found is None:
                index[seg.name] = [seg]
            else:
                found.append(seg)
        self._index = index

    def segment(self, name: str) -> Segment | None:
        found = self._index.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        return self._index.get(name, [])

    @property
    def msh(self) -> Segment:
        return self.segments[0]


# MSH-18 (HL7 table 0211) values that name a single-byte charset.
_CHARSETS = {"8859/1": "latin-1", "8859/15": "iso8859-15", "8859/2": "iso8859-2"}


def decode(raw: bytes) -> str:
    """Bytes to text, never failing.

    Valid UTF-8 is read as UTF-8 whatever MSH-18 says: feeds that declare 8859/1 and send
    UTF-8 are common, while Latin-1 text that happens to be valid UTF-8 is vanishingly
    rare. Otherwise the charset MSH-18 declares, else Windows-1252 (what most undeclared
    8-bit feeds really send), with U+FFFD for bytes it does not map. The stored raw bytes
    stay untouched, so a wrong guess can be replayed after a fix.
    """
    if raw.isascii():
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return raw.decode(_CHARSETS.get(_msh18(raw), "cp1252"), errors="replace")


def _msh18(raw: bytes) -> str:
    """MSH-18 (first repetition) read from the bytes, or '' when it cannot be found."""
    start = raw.find(b"MSH")
    if start == -1 or len(raw) < start + 4:
        return ""
    end = len(raw)
    for stop in (b"\r", b"\n"):
        i = raw.find(stop, start)
        if i != -1:
            end = min(end, i)
    fields = raw[start:end].split(raw[start + 3 : start + 4])
    if len(fields) <= 17:
        return ""
    return fields[17].split(b"~")[0].decode("ascii", errors="replace").strip().upper()


def _shown(chars: str) -> str:
    """Delimiters as sent (repr would double a backslash), control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in chars)


def _encoding(text: str) -> Encoding:
    """Read MSH-1 and MSH-2; refuse what would make the rest of the message ambiguous."""
    if len(text) < 8:
        raise Hl7ParseError("MSH segment is truncated (no encoding characters)", 100)
    field_sep = text[3]
    chars = text[4:10]
    for stop in (field_sep, "\r", "\n"):
        i = chars.find(stop)
        if i != -1:
            chars = chars[:i]
    cached = _encodings.get(field_sep + chars)
    if cached is not None:
        return cached
    if field_sep == "|" and text[4:10] == DOUBLED_ESCAPE + "|":
        return DEFAULT_ENCODING  # a Java string's "\\" written as is; adt.py warns of it
    if field_sep.isalnum() or field_sep.isspace():
        raise Hl7ParseError(f"invalid field separator {field_sep!r} in MSH-1")
    # Four encoding characters (component, repetition, escape, subcomponent), plus the
    # truncation character from v2.7 on. Fewer means every later field is misread.
    special = field_sep + chars
    if (
        len(chars) not in (4, 5)
        or len(set(special)) != len(special)
        or any(c.isalnum() or c.isspace() for c in special)
    ):
        raise Hl7ParseError(
            f"invalid encoding characters '{_shown(chars)}' in MSH-2 (need 4 distinct "
            "delimiters)"
        )
    enc = Encoding(field_sep, *chars)
    if len(_encodings) < 64:
        _encodings[field_sep + chars] = enc
    return enc


def _valid_name(name: str) -> bool:
    if _SEGMENT_ID.match(name):
        _good_names.add(name)
        return True
    return False


def parse(text: str) -> Message:
    """Split an ER7 message into segments; raise Hl7ParseError if it is not HL7.

    Segments may end in CR, LF, CRLF or LFCR; empty lines are dropped. MLLP framing bytes
    and whitespace around the message are ignored.
    """
    text = text.strip(_FRAMING)
    if not text.startswith("MSH"):
        raise Hl7ParseError("message does not start with an MSH segment", 100)
    enc = _encoding(text)
    if "\n" in text:
        text = text.replace("\n", "\r")
    field_sep = enc.field
    segments: list[Segment] = []
    for line in text.split("\r"):
        if not line:
            continue
        name = line[:3]
        if (len(line) > 3 and line[3] != field_sep) or (
            name not in _good_names and not _valid_name(name)
        ):
            if line.isspace():
                continue
            raise Hl7ParseError(
                f"invalid segment name {line[:10]!r} (segment {len(segments) + 1})", 100
            )
        segments.append(Segment(name, line, enc))
    return Message(segments, enc)
