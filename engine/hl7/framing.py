"""MLLP framing (0x0B message 0x1C 0x0D) and splitting HL7 files into messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SB = b"\x0b"
EB = b"\x1c"
CR = b"\r"
END = EB + CR


class FrameTooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        super().__init__("frame exceeds the size limit")
        self.head = head


@dataclass
class FrameReader:
    """Incremental MLLP decoder: feed it reads, take whole frames out.

    Frames may be split across reads and several may arrive in one read. Bytes outside
    frames are kept in `stray` so the caller can quarantine them.
    """

    max_bytes: int
    _buf: bytearray = field(default_factory=bytearray)
    _skipping: bool = False
    _head: bytes = b""
    stray: bytearray = field(default_factory=bytearray)

    @property
    def partial(self) -> bool:
        return bool(self._buf) or self._skipping

    def feed(self, data: bytes) -> list[bytes | FrameTooLarge]:
        self._buf += data
        out: list[bytes | FrameTooLarge] = []
        while self._buf:
            if self._skipping:
                end = self._buf.find(END)
                if end == -1:
                    # keep the last byte: it may be the 0x1C of a split end marker
                    del self._buf[:-1]
                    break
                del self._buf[: end + 2]
                self._skipping = False
                out.append(FrameTooLarge(self._head))
                continue
            start = self._buf.find(SB)
            if start == -1:
                self.stray += self._buf
                self._buf.clear()
                break
            if start:
                self.stray += self._buf[:start]
                del self._buf[:start]
            end = self._buf.find(END, 1)
            if end == -1:
                if len(self._buf) - 1 > self.max_bytes:
                    self._head = bytes(self._buf[1:4096])
                    self._skipping = True
                    del self._buf[:-1]
                break
            frame = bytes(self._buf[1:end])
            del self._buf[: end + 2]
            if len(frame) > self.max_bytes:
                out.append(FrameTooLarge(frame[:4096]))
            else:
                out.append(frame)
        return out


def frame(message: bytes | str) -> bytes:
    if isinstance(message, str):
        message = message.encode("utf-8")
    return SB + message + END


_MSH_START = re.compile(rb"(?:^|[\r\n])(?=MSH)")


def split_file(data: bytes) -> list[bytes]:
    """Messages in an HL7 file: MLLP-framed or not, \\r or \\n separated, one or many."""
    if SB in data:
        reader = FrameReader(max_bytes=len(data) + 1)
        frames = [f for f in reader.feed(data) if isinstance(f, bytes)]
        return [f for f in frames if f.strip()]
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
            chunks.append(chunk.replace(b"\r\n", b"\r").replace(b"\n", b"\r"))
    return chunks
