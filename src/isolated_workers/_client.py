"""`WorkerClient`: the host's handle on one running worker."""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, final, overload

import anyio
from anyio.abc import ByteStream, Process, TaskGroup

from ._codec import StructureError
from ._errors import (
    ConnectionClosed,
    ConnectionLost,
    Exited,
    ProtocolError,
    ShutdownReason,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerTimeoutError,
)
from ._framing import FrameReader, FrameWriter, Kind, encode_frame
from ._messages import Notification, Request
from ._process import signal_group, stop_and_reap
from ._protocol import decode_body, encode_body, error_from_payload
from ._registry import MessageRegistry, MessageSpec
from ._serializers import Serializer
from ._timeouts import Timeouts

__all__ = ["WorkerClient", "WorkerState"]

logger = logging.getLogger("isolated_workers")

R = TypeVar("R")

# How long to wait for the process to exit after its connection ends, so
# that the crash is reported with its exit status rather than as a lost
# connection.
_EXIT_AFTER_EOF = 1.0

_STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class WorkerState(enum.Enum):
    """Where a worker is in its life."""

    STARTING = "starting"
    READY = "ready"
    CLOSING = "closing"
    CLOSED = "closed"
    CRASHED = "crashed"


class _Call:
    """One request waiting for its reply."""

    __slots__ = ("done", "error", "event", "payload", "spec")

    def __init__(self, spec: MessageSpec) -> None:
        self.spec = spec
        self.event = anyio.Event()
        self.done = False
        self.payload: Any = None
        self.error: BaseException | None = None

    def settle(self, payload: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.payload = payload
            self.error = error
            self.event.set()


@final
class WorkerClient:
    """The host's handle on a worker; made by `open_worker` or `start_worker`."""

    def __init__(
        self,
        *,
        process: Process,
        stream: ByteStream,
        reader: FrameReader,
        messages: MessageRegistry,
        serializer: Serializer,
        timeouts: Timeouts,
        max_frame_size: int,
        pipe_fd: int,
        task_group: TaskGroup,
    ) -> None:
        self._process = process
        self._stream = stream
        self._reader = reader
        self._writer = FrameWriter(
            stream, lambda: task_group.start_soon(self._writer.flush_posted)
        )
        self._messages = messages
        self._serializer = serializer
        self._timeouts = timeouts
        self._max = max_frame_size
        self._pipe_fd = pipe_fd
        self._pending: dict[int, _Call] = {}
        self._tx = itertools.count(1)
        self._state = WorkerState.READY
        self._connected = True
        self._failure: ShutdownReason | None = None
        self._exited = anyio.Event()
        self._closed = anyio.Event()
        self._closing = False
        #: Replies that arrived for requests nobody waits for any more.
        self.late_replies: int = 0
        task_group.start_soon(self._watch_process)
        task_group.start_soon(self._read_replies)

    # --- public API -----------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """The worker's `WorkerState`."""
        return self._state

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._process.pid

    @property
    def is_connected(self) -> bool:
        """Whether the connection to the worker is up."""
        return self._connected

    @property
    def is_active(self) -> bool:
        """Whether the worker process is alive and connected."""
        return self._connected and not self._exited.is_set()

    @overload
    async def send(self, message: Request[R]) -> R: ...
    @overload
    async def send(self, message: Notification) -> None: ...
    async def send(self, message: Request[Any] | Notification) -> Any:
        """Send a message to the worker.

        A request returns the handler's result, structured to the declared
        result type; a notification returns `None` once it is written. Wrap
        the call in `anyio.fail_after` for a tighter bound: a cancelled
        request is cancelled in the worker too.

        Raises:
            WorkerTimeoutError: The request took longer than its timeout.
            RemoteError: The handler raised; also an instance of the remote
                built-in exception type where there is one.
            WorkerCrashedError: The worker stopped without being asked to.
            WorkerClosedError: The worker was closed.
            ProtocolError: The message or its result cannot be carried (too
                large, unserializable, or not matching its declared type).
            TypeError: The message's class is not in the registry.
        """
        try:
            spec = self._messages.spec_for(type(message))
        except KeyError as exc:
            raise TypeError(exc.args[0]) from None
        await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled: write nothing
        if self._state is not WorkerState.READY:
            raise self._unavailable(spec.name)
        body = encode_body(self._serializer, spec.name, message)
        if spec.kind == "notification":
            frame = encode_frame(Kind.NOTIFICATION, 0, body, self._max)
            try:
                await self._writer.send(frame)
            except _STREAM_ERRORS:
                raise self._unavailable(spec.name) from None
            return None
        tx = next(self._tx)
        frame = encode_frame(Kind.REQUEST, tx, body, self._max)
        call = self._pending[tx] = _Call(spec)
        try:
            with anyio.move_on_after(self._timeouts.for_message(spec.cls)):
                # On failure the reader task settles the call with the reason.
                with contextlib.suppress(*_STREAM_ERRORS):
                    await self._writer.send(frame)
                await call.event.wait()
        finally:
            if not call.done:  # cancelled or timed out: cancel it in the worker
                del self._pending[tx]
                if self._state is WorkerState.READY:
                    self._writer.post(encode_frame(Kind.CANCEL, tx, b"", self._max))
        if not call.done:
            raise WorkerTimeoutError(
                f"{spec.name!r} did not complete within "
                f"{self._timeouts.for_message(spec.cls):g} s"
            )
        if call.error is not None:
            raise call.error
        try:
            return spec.structure_result(call.payload, "")  # type: ignore[misc]
        except StructureError as exc:
            raise ProtocolError(
                f"the result of {spec.name!r} does not match its declared type: {exc}"
            ) from None

    async def aclose(self) -> None:
        """Close the worker gracefully; idempotent.

        Pending requests fail with `WorkerClosedError` and new sends are
        refused. The worker is asked to stop, then sent SIGTERM, then SIGKILL,
        each after `Timeouts.shutdown`; the process is always reaped, even
        when the closing task is cancelled.
        """
        if self._closing:
            with anyio.CancelScope(shield=True):
                await self._closed.wait()
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            try:
                if self._state is WorkerState.READY:
                    self._state = WorkerState.CLOSING
                self._settle_all(
                    lambda name: WorkerClosedError(
                        f"the worker was closed; {name!r} did not complete"
                    )
                )
                if not self._exited.is_set():
                    self._writer.post(encode_frame(Kind.SHUTDOWN, 0, b"", self._max))
                await stop_and_reap(self._process, self._timeouts.shutdown)
                self._exited.set()
                await self._stream.aclose()
            finally:
                os.close(self._pipe_fd)
                self._connected = False
                self._state = WorkerState.CLOSED
                self._closed.set()

    def __repr__(self) -> str:
        return f"<WorkerClient pid={self.pid} state={self._state.name}>"

    # --- background tasks: they never raise ------------------------------

    async def _watch_process(self) -> None:
        returncode = await self._process.wait()
        self._exited.set()
        self._crash(Exited.from_returncode(returncode))

    async def _read_replies(self) -> None:
        reason: ShutdownReason
        try:
            while True:
                for kind, tx, body in await self._reader.receive():
                    self._on_frame(kind, tx, body)
        except anyio.EndOfStream:
            reason = ConnectionClosed()
        except ProtocolError as exc:
            # The framing is lost: nothing more can be read from this worker,
            # so it is stopped; its callers learn what went wrong.
            self._connected = False
            message = str(exc)
            self._settle_all(lambda name: ProtocolError(message))
            self._crash(ConnectionLost(exc))
            signal_group(self._process.pid)
            return
        except _STREAM_ERRORS as exc:
            reason = ConnectionLost(exc)
        self._connected = False
        if self._state is not WorkerState.READY:
            return
        with anyio.move_on_after(_EXIT_AFTER_EOF):
            await self._exited.wait()
        if not self._exited.is_set():
            self._crash(reason)
            signal_group(self._process.pid)  # reaped by _watch_process

    def _on_frame(self, kind: int, tx: int, body: bytes) -> None:
        if kind not in (Kind.RESULT, Kind.ERROR):
            logger.warning(
                "dropping a frame of unexpected kind %d from worker %d", kind, self.pid
            )
            return
        call = self._pending.pop(tx, None)
        if call is None:
            self.late_replies += 1
            return
        try:
            name, payload, _meta = decode_body(self._serializer, body)
        except ProtocolError as exc:
            call.settle(error=exc)
            return
        if kind == Kind.ERROR:
            call.settle(error=error_from_payload(payload, call.spec.name))
        elif name != call.spec.name:
            call.settle(
                error=ProtocolError(
                    f"the worker answered {call.spec.name!r} with a {name!r} result"
                )
            )
        else:
            call.settle(payload)

    # --- failure handling -------------------------------------------------

    def _crash(self, reason: ShutdownReason) -> None:
        """Record an exit the host did not ask for; the first report wins."""
        if self._state is not WorkerState.READY:
            return
        self._state = WorkerState.CRASHED
        self._failure = reason
        self._settle_all(lambda name: WorkerCrashedError(reason, name))

    def _settle_all(self, make_error: Callable[[str], BaseException]) -> None:
        pending, self._pending = self._pending, {}
        for call in pending.values():
            call.settle(error=make_error(call.spec.name))

    def _unavailable(self, name: str) -> Exception:
        if self._state is WorkerState.CRASHED and self._failure is not None:
            return WorkerCrashedError(self._failure, name, attempt=0)
        return WorkerClosedError(
            f"the worker is {self._state.value}; cannot send {name!r}"
        )
