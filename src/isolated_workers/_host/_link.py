"""`WorkerLink`: one worker process, its connection and its output."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs
from anyio.abc import Process, TaskGroup, TaskStatus

from .._errors import ConnectionClosed, ConnectionLost, Exited, ProtocolError
from .._errors import ShutdownReason as Reason
from .._wire._connection import Connection
from .._wire._framing import Frame, Kind, encode_frame
from .._wire._streams import Buffer
from ._output import OutputSink
from ._process import kill_and_reap, stop_and_reap

__all__ = ["STREAM_ERRORS", "OutputPumps", "WorkerLink"]

# After the connection ends, how long to wait for the process to exit, so that
# a crash is reported with its exit status rather than as a lost connection.
_EXIT_AFTER_EOF = 1.0
# How long to let a dead worker's last output drain before reporting.
_DRAIN = 0.5

STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)

#: Called with each frame; raising `ProtocolError` ends the link.
FrameHandler = Callable[["WorkerLink", int, int, "bytes | bytearray"], None]
LostHandler = Callable[["WorkerLink", Reason], None]


@attrs.define(eq=False)
class OutputPumps:
    """Forward a worker's piped stdout and stderr to the client's sink."""

    output: OutputSink
    process: Process
    tail: deque[str] = attrs.field(init=False)
    _scopes: list[anyio.CancelScope] = attrs.field(
        init=False, factory=list[anyio.CancelScope]
    )
    _stderr_done: anyio.Event = attrs.field(init=False, factory=anyio.Event)

    def __attrs_post_init__(self) -> None:
        self.tail = self.output.new_tail()

    def start(self, task_group: TaskGroup) -> None:
        if self.process.stdout is not None:
            task_group.start_soon(self._pump, self.process.stdout, "stdout")
        if self.process.stderr is not None:
            task_group.start_soon(self._pump, self.process.stderr, "stderr")
        else:
            self._stderr_done.set()

    async def _pump(self, stream: Any, name: Any) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._scopes.append(scope)
                await self.output.pump(stream, name, self.process.pid, self.tail)
        finally:
            if name == "stderr":
                self._stderr_done.set()

    async def drain(self) -> str:
        """Wait briefly for stderr to end (a grandchild may hold it open), then
        stop pumping; return the last lines of stderr."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_DRAIN):
            await self._stderr_done.wait()
        for scope in self._scopes:
            scope.cancel()
        return "\n".join(self.tail)


@attrs.define(eq=False, kw_only=True)
class WorkerLink:
    """One worker process and its authenticated connection.

    The link reports an end the host did not ask for to ``on_lost`` once, then
    kills and reaps the process and releases its resources. It never raises.
    """

    process: Process
    connection: Connection
    #: The host's end of the bootstrap pipe, held open while the worker lives.
    pipe_fd: int | None
    pumps: OutputPumps | None
    max_frame_size: int
    on_frame: FrameHandler
    on_lost: LostHandler
    pid: int = attrs.field(init=False)
    connected: bool = attrs.field(init=False, default=True)
    exited: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    stderr_tail: str = attrs.field(init=False, default="")
    _closing: bool = attrs.field(init=False, default=False)
    _reported: bool = attrs.field(init=False, default=False)
    _released: bool = attrs.field(init=False, default=False)
    _ended: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    #: Why the worker was lost, once it was, and the event saying so.
    lost_reason: Reason | None = attrs.field(init=False, default=None)
    lost: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    #: How the connection ended, once it did (before the loss is reported).
    hang_up: Reason | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.pid = self.process.pid

    @property
    def is_active(self) -> bool:
        return self.connected and not self.exited.is_set()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Read frames and watch the process until the link ends.

        The link ends when it is closed or the worker is lost, never because
        the host's task was cancelled: `close` must still be able to ask the
        worker to stop, and the reader must see what it says until then.
        """
        try:
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_process)
                    tg.start_soon(self._read_frames)
                    task_status.started()
                    await self._ended.wait()
                    if not self._closing:  # a crash: clean up now, not at close
                        await self._release(kill=True)
                    tg.cancel_scope.cancel()
        finally:
            self._ended.set()  # also if a KeyboardInterrupt cut it short

    async def close(self, grace: float) -> None:
        """Ask the worker to stop, escalate after ``grace``, release everything."""
        self._closing = True
        if self._released:  # reaped already: its pid may belong to another now
            return
        with anyio.CancelScope(shield=True):
            if self._ended.is_set():  # nothing writes frames any more
                self.connection.shutdown_write()  # which also asks it to stop
            elif not self.exited.is_set() and self.connected:
                self.post((encode_frame(Kind.SHUTDOWN, 0, b"", self.max_frame_size),))
            await stop_and_reap(self.process, grace)
            await self._release(kill=False)
            self._ended.set()

    def post(self, parts: Sequence[Buffer]) -> None:
        """Write a frame without waiting for room (cancellations, retries);
        if the connection failed, the reader reports it."""
        if not self._ended.is_set():  # else nothing would write it
            with contextlib.suppress(*STREAM_ERRORS):
                self.connection.write(parts)

    async def _watch_process(self) -> None:
        returncode = await self.process.wait()
        self.exited.set()
        # Replies the worker wrote before it died may still wait in the socket:
        # let the reader deliver them first. A dead process adds nothing more,
        # so this ends as soon as the reader has caught up.
        with anyio.move_on_after(_DRAIN):
            # Polls a kernel count that the reader task brings down.
            while self.connected and self._unread_bytes() > 0:
                await anyio.lowlevel.checkpoint()
        await self._report(Exited.from_returncode(returncode))

    def _unread_bytes(self) -> int:
        return self.connection.unread_bytes()

    def _deliver(self, frames: list[Frame]) -> None:
        for kind, tx, body in frames:
            self.on_frame(self, kind, tx, body)

    async def _read_frames(self) -> None:
        reason: Reason
        try:
            await self.connection.run(self._deliver)
            return  # closed by this side
        except anyio.EndOfStream:
            reason = ConnectionClosed()
        except ProtocolError as exc:
            # A bad frame: nothing more from this worker can be trusted.
            self.connected = False
            await self._report(ConnectionLost(exc))
            return
        except STREAM_ERRORS as exc:
            reason = ConnectionLost(exc)
        self.connected = False
        self.hang_up = reason
        with anyio.move_on_after(_EXIT_AFTER_EOF):
            await self.exited.wait()
        if not self.exited.is_set():  # alive without a connection: a crash too
            await self._report(reason)

    async def _report(self, reason: Reason) -> None:
        if self._reported or self._closing:
            return
        self._reported = True
        if self.pumps is not None:
            self.stderr_tail = await self.pumps.drain()
        if not self._closing:
            self.lost_reason = reason
            self.lost.set()
            self.on_lost(self, reason)
        self._ended.set()

    async def _release(self, *, kill: bool) -> None:
        with anyio.CancelScope(shield=True):
            if kill:
                await kill_and_reap(self.process)
            self._released = True
            self.exited.set()
            self.connected = False
            if self.pumps is not None:
                self.stderr_tail = await self.pumps.drain()
            self.connection.close()
            if self.pipe_fd is not None:
                os.close(self.pipe_fd)
                self.pipe_fd = None
