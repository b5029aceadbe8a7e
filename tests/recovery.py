"""Recovery checks: a sender that behaves like an interface engine (resend until AA,
reconnect on loss), and the comparison of a battered store with a clean run."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from engine.api.runtime import Runtime
from engine.storage.models import InboundMessage
from tests.conftest import make_settings
from tests.stream import send, snapshot


@dataclass
class Exchange:
    """One attempt: which message, what came back (AA, AE, AR, or "" for none), and when."""

    index: int
    code: str
    sent_at: float
    answered_at: float


@dataclass
class Sender:
    """Sends messages in order; anything not answered AA is sent again after `pause` s.

    `port` is asked before each connection, so a restarted server on a new port is found.
    """

    port: Callable[[], int | None]
    pause: float = 0.05
    log: list[Exchange] = field(default_factory=list)
    reconnects: int = 0
    _sock: socket.socket | None = None

    def deliver(self, messages: list[bytes], deadline_s: float = 240,
                after_each: Callable[[int], None] | None = None) -> None:
        deadline = time.monotonic() + deadline_s
        for i, raw in enumerate(messages):
            while self._attempt(i, raw) != "AA":
                assert time.monotonic() < deadline, f"message {i} never acknowledged"
                time.sleep(self.pause)
            if after_each is not None:
                after_each(i)
        self.close()

    def _attempt(self, i: int, raw: bytes) -> str:
        sent = time.monotonic()
        try:
            if self._sock is None:
                port = self.port()
                if port is None:
                    return ""
                self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                self.reconnects += 1
            ack = send(self._sock, raw, timeout=40)
            code = ack.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in ack else "??"
        except OSError:
            self.close()
            code = ""
        self.log.append(Exchange(i, code, sent, time.monotonic()))
        return code

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def acknowledged(self) -> list[int]:
        return [e.index for e in self.log if e.code == "AA"]


def assert_like_a_clean_run(url: str, messages: list[bytes], folder: Path) -> None:
    """Every distinct message is stored once, accepted, and the state equals a clean run."""
    battered = Runtime.open(make_settings(url))
    reference = Runtime.open(make_settings(f"sqlite:///{folder / 'clean.db'}"))
    try:
        for raw in messages:
            reference.intake.hl7(raw)
        with reference.sessions() as s:
            expected_rows = s.scalar(select(func.count()).select_from(InboundMessage))
            expected = snapshot(s)
        with battered.sessions() as s:
            rows = s.scalar(select(func.count()).select_from(InboundMessage))
            accepted = s.scalar(select(func.count()).where(InboundMessage.outcome == "accepted"))
            state = snapshot(s)
    finally:
        battered.close()
        reference.close()
    assert rows == accepted == expected_rows
    assert state == expected
