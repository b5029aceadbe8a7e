"""The MLLP listener: many connections, one message at a time each, ACK after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from engine.core.vocabulary import Channel
from engine.hl7.ack import AckIssue
from engine.hl7.framing import FrameReader, FrameTooLarge, frame
from engine.intake.path import Intake

log = logging.getLogger("engine.mllp")
_READ_BYTES = 65536
_BLANK = b"\r\n \t\x00"


class MllpServer:
    """Stateless MLLP listener in front of the intake.

    Each frame is stored and answered before the next is read from that connection, so
    ACKs come back in order. A frame must arrive whole within `frame_timeout` seconds of
    its first byte (a sender trickling bytes cannot hold a connection forever); a
    connection with no frame in progress is closed after `idle_timeout` seconds.
    """

    def __init__(
        self,
        intake: Intake,
        *,
        max_bytes: int,
        idle_timeout: float,
        frame_timeout: float,
        workers: int,
    ) -> None:
        self.intake = intake
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp-db")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, limit=_READ_BYTES)
        sock = self._server.sockets[0]
        return sock.getsockname()[1]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight messages finish and be acknowledged, then close."""
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        if self._connections:
            _done, pending = await asyncio.wait(self._connections, timeout=grace)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self.executor.shutdown(wait=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        frames = FrameReader(self.max_bytes)
        loop = asyncio.get_running_loop()
        stopping = asyncio.ensure_future(self._stopping.wait())
        frame_deadline: float | None = None
        cut_off = ""  # why a frame in progress was never finished, when it matters
        try:
            while not self._stopping.is_set():
                if frames.partial:
                    if frame_deadline is None:
                        frame_deadline = loop.time() + self.frame_timeout
                    timeout = frame_deadline - loop.time()
                else:
                    frame_deadline = None
                    timeout = self.idle_timeout
                read = asyncio.ensure_future(reader.read(_READ_BYTES))
                done, _ = await asyncio.wait(
                    {read, stopping}, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if read not in done:
                    read.cancel()
                    if not done:
                        what = "stalled mid-frame" if frames.partial else "idle"
                        log.info("closing %s MLLP connection from %s", what, peer)
                        cut_off = f"no end block within {self.frame_timeout:g} s"
                    break
                data = read.result()
                if not data:
                    cut_off = "the sender closed the connection before the end block"
                    break
                items = frames.feed(data)
                # Stray bytes came before the frame that follows them: keep them first.
                if await self._keep_stray(frames, loop, final=bool(items) or frames.partial):
                    log.info("closing MLLP connection from %s: it does not speak MLLP", peer)
                    break
                for item in items:
                    if isinstance(item, FrameTooLarge):
                        ack = await loop.run_in_executor(self.executor, self._oversize, item.head)
                    else:
                        receipt = await loop.run_in_executor(self.executor, self.intake.hl7, item)
                        ack = receipt.ack
                    if ack:
                        writer.write(frame(ack))
                        await writer.drain()
                if items or not frames.partial:
                    frame_deadline = None  # the frame in progress, if any, began in this read
        except (ConnectionError, asyncio.IncompleteReadError):
            cut_off = "the connection broke before the end block"
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad connection must not take the listener down
            log.exception("MLLP connection from %s failed", peer)
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                await self._keep_stray(frames, loop, final=True)
                if cut_off and frames.partial:
                    # Unacknowledged, so the sender should resend; kept as evidence of a
                    # sender that breaks frames. Not on shutdown: that cut is ours.
                    partial = frames.abandon()
                    await loop.run_in_executor(self.executor, self._incomplete, partial, cut_off)
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _keep_stray(
        self, frames: FrameReader, loop: asyncio.AbstractEventLoop, *, final: bool
    ) -> bool:
        """Quarantine bytes sent outside frames as one input once they are whole (`final`:
        a frame began after them, or the connection ends) or reach the size limit.

        Returns True when they reached the limit: such a peer does not speak MLLP.
        """
        stray = frames.stray
        if not stray:
            return False
        if not stray.strip(_BLANK):
            stray.clear()
            return False
        over = len(stray) >= self.max_bytes
        if final or over:
            data = bytes(stray[: self.max_bytes])
            stray.clear()
            await loop.run_in_executor(self.executor, self._stray, data)
        return over

    def _oversize(self, head: bytes) -> str:
        error = AckIssue(207, f"message exceeds the {self.max_bytes}-byte limit; first 4 KB kept")
        return self.intake.refuse_raw(head, Channel.MLLP, error, partial=True).ack

    def _incomplete(self, data: bytes, why: str) -> None:
        self.intake.refuse_raw(data, Channel.MLLP, AckIssue(100, f"incomplete MLLP frame: {why}"),
                               partial=True)

    def _stray(self, data: bytes) -> None:
        error = AckIssue(100, "bytes outside an MLLP frame (no 0x0B start block)")
        self.intake.refuse_raw(data, Channel.MLLP, error, partial=True)
