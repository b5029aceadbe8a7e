"""The MLLP listener: many connections, one message at a time each, ACK after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from engine.hl7.ack import AckError
from engine.hl7.framing import FrameReader, FrameTooLarge, frame
from engine.intake import Intake

log = logging.getLogger("engine.mllp")


class MllpServer:
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
        self._server = await asyncio.start_server(self._serve, host, port, limit=2**16)
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
        try:
            while not self._stopping.is_set():
                timeout = self.frame_timeout if frames.partial else self.idle_timeout
                read = asyncio.ensure_future(reader.read(65536))
                stop = asyncio.ensure_future(self._stopping.wait())
                done, _ = await asyncio.wait(
                    {read, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if read not in done:
                    read.cancel()
                    stop.cancel()
                    if not done:
                        log.info("closing idle or stalled MLLP connection from %s", peer)
                    break
                stop.cancel()
                data = read.result()
                if not data:
                    break
                for item in frames.feed(data):
                    if isinstance(item, FrameTooLarge):
                        ack = await loop.run_in_executor(self.executor, self._oversize, item.head)
                    else:
                        receipt = await loop.run_in_executor(self.executor, self.intake.hl7, item)
                        ack = receipt.ack
                    writer.write(frame(ack))
                    await writer.drain()
                if frames.stray.strip(b"\r\n \t\x00"):
                    stray = bytes(frames.stray[: self.max_bytes])
                    frames.stray.clear()
                    await loop.run_in_executor(self.executor, self._stray, stray)
                else:
                    frames.stray.clear()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad connection must not take the listener down
            log.exception("MLLP connection from %s failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _oversize(self, head: bytes) -> str:
        error = AckError(207, f"message exceeds the {self.max_bytes}-byte limit; first 4 KB kept")
        return self.intake.refuse_raw(head, "mllp", error).ack

    def _stray(self, data: bytes) -> None:
        error = AckError(100, "bytes outside an MLLP frame (no 0x0B start block)")
        self.intake.refuse_raw(data, "mllp", error)
