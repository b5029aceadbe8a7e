"""MLLP framing (0x0B message 0x1C 0x0D) and splitting HL7 files into messages."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from engine.core.errors import InputTooLarge

SB = b"\x0b"
EB = b"\x1c"
CR = b"\r"
END = EB + CR
HEAD_BYTES = 4096  # how much of an oversize frame is kept for the quarantine


class FrameTooLarge(InputTooLarge):
    def __init__(self, head: bytes) -> None:
        super().__init__("frame exceeds the size limit")
        self.head = head


@dataclass
class FrameReader:
    """Incremental MLLP decoder: feed it reads, take whole frames out.

    Frames may be split across reads and several may arrive in one read. A frame larger
    than `max_bytes` is skipped as it streams in (memory stays bounded) and reported as
    FrameTooLarge with its first 4 KB. Bytes outside frames, and a frame the sender
    abandoned by starting another, are kept in `stray` so the caller can quarantine them.
    """

    max_bytes: int
    _buf: bytearray = field(default_factory=bytearray)
    _scan: int = 0  # an open frame has no end marker before this offset
    _skipping: bool = False
    _head: bytes = b""
    stray: bytearray = field(default_factory=bytearray)

    @property
    def partial(self) -> bool:
        """True while a frame has begun and not ended."""
        return bool(self._buf) or self._skipping

    def abandon(self) -> bytes:
        """The frame in progress (without its start byte, at most the 4 KB head of an
        oversize one), forgotten: the sender stopped before its end."""
        data = self._head if self._skipping else bytes(self._buf[1:])
        self._buf.clear()
        self._skipping = False
        self._scan = 0
        return data

    def feed(self, data: bytes) -> list[bytes | FrameTooLarge]:
        buf = self._buf
        buf += data
        out: list[bytes | FrameTooLarge] = []
        while buf:
            if self._skipping:
                end = buf.find(END)
                if end == -1:
                    del buf[:-1]  # the last byte may be the 0x1C of a split end marker
                    break
                del buf[: end + 2]
                self._skipping = False
                out.append(FrameTooLarge(self._head))
                continue
            if buf[0] != SB[0]:
                start = buf.find(SB)
                if start == -1:
                    self.stray += buf
                    buf.clear()
                    break
                self.stray += buf[:start]
                del buf[:start]
                self._scan = 0
            end = buf.find(END, max(1, self._scan))
            if end == -1:
                if len(buf) - 1 > self.max_bytes:
                    self._head = bytes(buf[1 : HEAD_BYTES + 1])
                    self._skipping = True
                    self._scan = 0
                    del buf[:-1]
                else:
                    self._scan = max(1, len(buf) - 1)
                break
            restart = buf.rfind(SB, 1, end)
            if restart != -1:
                self.stray += buf[:restart]
                del buf[:restart]
                end -= restart
            self._scan = 0
            if end - 1 > self.max_bytes:
                out.append(FrameTooLarge(bytes(buf[1 : HEAD_BYTES + 1])))
            else:
                out.append(bytes(buf[1:end]))
            del buf[: end + 2]
        return out


def frame(message: bytes | str) -> bytes:
    if isinstance(message, str):
        message = message.encode("utf-8")
    return SB + message + END


_MSH_START = re.compile(rb"(?:^|[\r\n])(?=MSH)")
_BOM = b"\xef\xbb\xbf"


def split_file(data: bytes) -> list[bytes]:
    """Messages in an HL7 file: MLLP-framed or not, CR or LF separated, one or many, bare
    or inside FHS/BHS ... BTS/FTS batch envelopes (each message then stands on its own).

    Each message keeps its bytes as in the file, less the line breaks around it (the reader
    accepts any line ending). What is neither a message nor whitespace is returned too, so
    the intake can refuse and keep it rather than lose it silently.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if SB in data:
        reader = FrameReader(max_bytes=len(data) + 1)
        chunks = [f for f in reader.feed(data) if isinstance(f, bytes) and f.strip()]
        last = reader.abandon()  # a last frame without its end marker
        if last.strip():
            chunks.append(last)
        if reader.stray.strip(b"\r\n \t\x00"):
            chunks.append(bytes(reader.stray))
        return [m for c in chunks for m in (unbatch(c).messages if is_batch(c) else [c])]
    return _split_plain(_ENVELOPE.sub(b"", data))


def _split_plain(data: bytes) -> list[bytes]:
    starts = [m.start() for m in _MSH_START.finditer(data)]
    if not starts:
        return [data] if data.strip() else []
    chunks = []
    if data[: starts[0]].strip():
        chunks.append(data[: starts[0]])
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[s:end].strip(b"\r\n \t")
        if chunk:
            chunks.append(chunk)
    return chunks


# HL7 v2 batch protocol (chapter 2.10.3): FHS/FTS wrap a file, BHS/BTS a batch, each optional
# around the messages. A batch header or trailer line, wherever it stands.
_ENVELOPE = re.compile(rb"(?:\A|(?<=[\r\n]))(?:FHS|BHS|BTS|FTS)(?![A-Z0-9\r\n])[^\r\n]*[\r\n]*")
_LEADING = b"\xef\xbb\xbf\x0b\r\n \t\x00"


@dataclass(frozen=True)
class Batch:
    """An HL7 batch taken apart: its header segments (FHS, BHS; None when absent) and the
    messages inside, each to be answered and stored on its own."""

    file_header: bytes | None
    batch_header: bytes | None
    messages: list[bytes]


def is_batch(data: bytes) -> bool:
    """Whether `data` (one MLLP frame, or one file) is an HL7 batch, not a single message."""
    return data.lstrip(_LEADING).startswith((b"FHS", b"BHS"))


def unbatch(data: bytes) -> Batch:
    """The envelope's headers and the messages inside; what stands outside any message
    (neither MSH nor envelope) is returned as a message too, for the intake to refuse."""
    headers: dict[bytes, bytes] = {}
    for m in _ENVELOPE.finditer(data):
        headers.setdefault(m.group()[:3], m.group().rstrip(b"\r\n"))
    body = _ENVELOPE.sub(b"", data.lstrip(_LEADING))
    return Batch(headers.get(b"FHS"), headers.get(b"BHS"), _split_plain(body))


def exchange(sock: socket.socket, message: bytes, timeout: float = 30.0) -> bytes:
    """Send one framed message on a connected socket and return its ACK (unframed).

    A sender waits for each ACK before the next message, as MLLP peers do.
    """
    sock.settimeout(timeout)
    sock.sendall(frame(message))
    buf = b""
    while END not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the listener closed the connection before the ACK")
        buf += chunk
    return buf[buf.index(SB) + 1 if SB in buf else 0 : buf.index(END)]
