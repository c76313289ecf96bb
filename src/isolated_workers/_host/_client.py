"""`WorkerClient`: the host's handle on a worker, across respawns."""

from __future__ import annotations

import contextlib
import enum
import inspect
import itertools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, cast, final, overload

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from .._calls import BUILTIN, CallFunction, function_reference, result_structurer
from .._errors import (
    ConnectionLost,
    ProtocolError,
    ShutdownReason,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerTimeoutError,
)
from .._messages import Notification, Request, StreamRequest
from .._policies import Retry
from .._registry import MessageSpec
from .._util import log
from .._wire._codec import StructureError
from .._wire._connection import HIGH_WATER, Outgoing
from .._wire._framing import Kind, encode_frame, frame_parts
from .._wire._middleware import Envelope, EnvelopeKind, apply, check_meta
from .._wire._protocol import decode_body, encode_body, error_from_payload
from .._wire._streams import Buffer
from ._config import WorkerConfig
from ._link import STREAM_ERRORS, FrameHandler, LostHandler, WorkerLink
from ._output import OutputSink
from ._stream import ItemStream
from ._waiting import Deadlines, Waiter, waiter_factory

__all__ = ["Spawner", "WorkerClient", "WorkerState", "WorkerStats", "open_client"]

logger = logging.getLogger("isolated_workers")

R = TypeVar("R")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Starts one worker process: ``await spawn(task_group, on_frame, on_lost)``.
Spawner = Callable[[TaskGroup, FrameHandler, LostHandler], Awaitable[WorkerLink]]

_MAX_TX = 2**64 - 1


class WorkerState(enum.Enum):
    """Where a worker is in its life.

    ``STARTING`` is also the state while a crashed worker is being respawned.
    """

    STARTING = "starting"
    READY = "ready"
    CLOSING = "closing"
    CLOSED = "closed"
    CRASHED = "crashed"


@attrs.frozen
class WorkerStats:
    """A snapshot of one worker's counters (`WorkerClient.stats`,
    `WorkerPool.stats`).

    A request counts as completed when it returned a result, and as failed
    when it raised (a timeout, a crash, the handler's own error); one its
    caller cancelled counts as neither. Counts cover the client's life, across
    respawns and, in a pool, replacements.
    """

    #: The current worker process, or `None` while a pool replaces it.
    pid: int | None
    #: Requests sent and not yet answered.
    in_flight: int
    #: Requests that returned a result.
    completed: int
    #: Requests that raised.
    failed: int
    #: Workers the client started in place of a lost one (`WorkerClient.respawns`).
    respawns: int
    #: Workers a pool started in this one's place (after a crash, or to
    #: recycle it under ``max_requests_per_worker``).
    replacements: int = 0


@attrs.define(eq=False)
class _Call:
    """One request waiting for its reply, across retries."""

    spec: MessageSpec
    tx: int
    frame: tuple[Buffer, ...] | None  # kept only where a retry may re-send it
    waiter: Waiter
    link: WorkerLink  # where it was first sent
    timeout: float
    written: Outgoing | None = None  # its frame on that link
    attempt: int = 1
    done: bool = False
    payload: Any = None
    error: BaseException | None = None
    replied: bool = False  # settled by the worker's reply, not locally
    meta: dict[str, str] = attrs.field(factory=dict[str, str])

    def settle(self, payload: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.payload = payload
            self.error = error
            self.waiter.set()

    def answer(
        self, payload: Any, error: Exception | None, meta: dict[str, str]
    ) -> None:
        self.replied = True
        self.meta = meta
        self.settle(payload, error)


@final
class WorkerClient:
    """The host's handle on a worker; made by `open_worker` or `start_worker`.

    The handle outlives the worker process when a `Retry` policy respawns it:
    `pid` then names the new process.
    """

    def __init__(
        self,
        config: WorkerConfig,
        spawn: Spawner,
        output: OutputSink,
        task_group: TaskGroup,
    ) -> None:
        self._spawn = spawn
        self._messages = config.messages
        self._serializer = config.serializer
        self._timeouts = config.timeouts
        self._max = config.max_frame_size
        self._policy = config.policy
        self._output = output
        self._task_group = task_group
        self._link: WorkerLink | None = None
        self._pending: dict[int, _Call] = {}
        self._streams: dict[int, ItemStream[Any]] = {}
        self._middleware = config.middleware
        self._tx_id_factory = config.tx_id_factory or itertools.count(1).__next__
        self._on_event_callbacks = config.on_event
        self._new_waiter, self._clock = waiter_factory()
        self._deadlines = Deadlines[_Call](self._expire, lambda call: not call.done)
        self._watching = False  # whether the deadline watcher runs
        self._state = WorkerState.STARTING
        self._ready = anyio.Event()  # set when the state leaves STARTING
        self._failure: ShutdownReason | None = None
        self._supervisor = anyio.CancelScope()
        self._supervised = anyio.Event()  # the supervisor has ended
        self._closed = anyio.Event()
        self._closing = False
        #: Replies that arrived for requests nobody waits for any more.
        self.late_replies: int = 0
        #: Workers started in place of a lost one: after a crash under a
        #: `Retry` policy, or a kill by ``run_sync(kill_on_cancel=True)``.
        self.respawns: int = 0
        self._completed = 0
        self._failed = 0
        # The worker was killed on purpose (``kill_on_cancel``): start another
        # whatever the policy says.
        self._replace_killed = False
        # Crashes with nothing pending since the last reply: bounds the repair
        # of a worker that keeps dying on its own under a Retry default.
        self._idle_crashes = 0

    async def _start(self) -> None:
        """Start the first worker (`WorkerStartupError` if that fails)."""
        await self._task_group.start(self._supervise)

    async def _supervise(self, *, task_status: TaskStatus[None]) -> None:
        """Own the worker's life: start it, wait for its loss, apply the policy,
        then start the next one or give up. `aclose` cancels it."""
        try:
            with self._supervisor:
                link = await self._spawn(
                    self._task_group, self._on_frame, self._on_lost
                )
                self._serve(link)
                task_status.started()
                while True:
                    await link.lost.wait()
                    assert link.lost_reason is not None
                    reason, tail = link.lost_reason, link.stderr_tail
                    if not self._retries_after(reason, tail):
                        return
                    try:
                        link = await self._spawn(
                            self._task_group, self._on_frame, self._on_lost
                        )
                    except Exception as exc:  # WorkerStartupError, or an OSError
                        self._give_up(reason, tail, exc)
                        return
                    self.respawns += 1
                    for call in self._pending.values():
                        call.attempt += 1
                        if call.frame is not None:
                            link.post(call.frame)
                    self._serve(link)
        finally:
            self._supervised.set()

    # --- public API -----------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """The worker's `WorkerState`."""
        return self._state

    @property
    def pid(self) -> int:
        """The process id of the worker (of the newest one, after a respawn)."""
        assert self._link is not None
        return self._link.pid

    @property
    def is_connected(self) -> bool:
        """Whether the connection to the worker is up."""
        return self._link is not None and self._link.connected

    @property
    def is_active(self) -> bool:
        """Whether the worker process is alive and connected."""
        return self._link is not None and self._link.is_active

    @property
    def stats(self) -> WorkerStats:
        """A snapshot of this worker's counters."""
        return WorkerStats(
            pid=self._link.pid if self._link is not None else None,
            in_flight=len(self._pending),
            completed=self._completed,
            failed=self._failed,
            respawns=self.respawns,
        )

    @property
    def captured_stdout(self) -> str:
        """What the workers wrote to stdout, with ``output="capture"`` (the last
        MiB); empty otherwise."""
        return self._output.captured["stdout"].decode(errors="replace")

    @property
    def captured_stderr(self) -> str:
        """What the workers wrote to stderr, with ``output="capture"`` (the last
        MiB); empty otherwise."""
        return self._output.captured["stderr"].decode(errors="replace")

    @overload
    async def send(self, message: Request[R]) -> R: ...
    @overload
    async def send(self, message: Notification) -> None: ...
    async def send(self, message: Request[Any] | Notification) -> Any:
        """Send a message to the worker.

        A request returns the handler's result, structured to the declared
        result type; a notification returns `None` once it is written. Wrap
        the call in `anyio.fail_after` for a tighter bound: a cancelled
        request is cancelled in the worker too. While a crashed worker is
        being respawned, sends wait for the new one.

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
        if spec.kind == "stream":
            raise TypeError(f"{spec.name} is a stream request: use stream()")
        await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled: write nothing
        if spec.kind == "notification":
            meta: dict[str, str] = {}
            if self._middleware:
                message, meta = await self._outgoing("notification", spec, 0, message)
            body = encode_body(self._serializer, spec.name, message, meta)
            frame = frame_parts(Kind.NOTIFICATION, 0, body, self._max)
            link = await self._ready_link(spec.name)
            if link.hang_up is not None:  # its loss is not reported yet
                raise WorkerCrashedError(link.hang_up, spec.name)
            try:
                await link.connection.wait_for_room()
                link.connection.write(frame)
            except STREAM_ERRORS as exc:
                raise WorkerCrashedError(ConnectionLost(exc), spec.name) from None
            # A write the kernel took at once did not yield: let others run.
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return None
        return await self._counted_request(spec, message)

    @asynccontextmanager
    async def stream(
        self, message: StreamRequest[T]
    ) -> AsyncGenerator[AsyncIterator[T]]:
        """Send a stream request; yield the async iterator of its items.

        Items come as the worker's handler yields them, at most a window of
        them ahead of the consumer: a slow consumer pauses the handler.
        Leaving the block before the end, or being cancelled, cancels the
        handler in the worker. Each wait for the next item is bounded by the
        message timeout. A stream is never retried.

        Raises:
            TypeError: ``message`` is not a stream request of the registry.
            WorkerCrashedError: The worker stopped mid-stream (raised by the
                iterator, after the items that came before).
            RemoteError: The handler raised (likewise).
            WorkerTimeoutError: No item came within the message timeout.
            WorkerClosedError: The worker was closed.
        """
        try:
            spec = self._messages.spec_for(type(message))
        except KeyError as exc:
            raise TypeError(exc.args[0]) from None
        if spec.kind != "stream":
            raise TypeError(f"{spec.name} is not a stream request: use send()")
        await anyio.lowlevel.checkpoint_if_cancelled()
        timeout = self._timeouts.for_message(spec.cls)
        tx = self._new_tx()
        body = encode_body(self._serializer, spec.name, message, {})
        frame = frame_parts(Kind.STREAM, tx, body, self._max)
        link: WorkerLink | None = None
        with anyio.move_on_after(timeout):
            link = await self._ready_link(spec.name)
        if link is None:
            raise _timed_out(spec.name, timeout)
        items = ItemStream[T](spec, tx, link, self._serializer, timeout)
        self._streams[tx] = items
        try:
            with contextlib.suppress(*STREAM_ERRORS):  # the link reports it
                link.connection.write(frame)
            yield items
        finally:
            self._streams.pop(tx, None)
            if not items.ended and link is self._link:
                link.post((encode_frame(Kind.CANCEL, tx, b"", self._max),))

    async def run_sync(
        self,
        function: Callable[[*Ts], R],
        *args: *Ts,
        kill_on_cancel: bool = False,
    ) -> R:
        """Call ``function(*args)`` in the worker and return its result.

        ``function`` must be defined at module level in a module the worker
        can import; it is named by module and qualified name, not pickled.
        Arguments and result cross through the serializer, structured by the
        function's annotations where they name types the serializer carries
        (attrs classes, for one). The call is bounded by the message timeout
        and goes through the middleware, like a request.

        A sync function cannot be interrupted: a call that times out or is
        cancelled returns at once, but the function runs on in the worker
        until it returns. With ``kill_on_cancel=True`` the worker is killed
        instead, and another one started; other requests in flight on it
        fail as its crash policy says.

        Raises:
            TypeError: The worker could not import ``function``: a lambda, a
                closure, a function of ``__main__``, or an async function.
            RemoteError: The function raised.
            WorkerTimeoutError: The call took longer than its timeout.
            WorkerCrashedError: The worker stopped without being asked to.
            WorkerClosedError: The worker was closed.
        """
        module, qualname = function_reference(function)
        message = CallFunction(module, qualname, list(args))
        spec = BUILTIN.spec_for(CallFunction)
        try:
            result = await self._counted_request(spec, message)
        except (anyio.get_cancelled_exc_class(), WorkerTimeoutError):
            if kill_on_cancel:
                self._kill_worker()
            raise
        structure = result_structurer(function)
        if structure is None:
            return cast("R", result)
        try:
            return cast("R", structure(result, ""))
        except StructureError as exc:
            raise ProtocolError(
                f"the result of {qualname} does not match its annotation: {exc}"
            ) from None

    async def _counted_request(self, spec: MessageSpec, message: Any) -> Any:
        """`_request` within the message's timeout, counted in `stats`."""
        timeout = self._timeouts.for_message(spec.cls)
        result: Any = None
        try:
            if not self._middleware:
                result = await self._request(spec, message, seconds=timeout)
            else:
                # Middleware may take its time too: bound the whole call.
                with anyio.move_on_after(timeout) as scope:
                    result = await self._request(spec, message, seconds=math.inf)
                if scope.cancelled_caught:
                    raise _timed_out(spec.name, timeout)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException:
            self._failed += 1
            raise
        self._completed += 1
        return result

    async def _request(self, spec: MessageSpec, message: Any, seconds: float) -> Any:
        """Send one request and return its result. ``seconds`` is watched by
        the client's deadline watcher rather than a cancel scope."""
        deadline = self._clock() + seconds
        tx = self._new_tx()
        meta: dict[str, str] = {}
        if self._middleware:
            message, meta = await self._outgoing("request", spec, tx, message)
        frame = frame_parts(
            Kind.REQUEST,
            tx,
            encode_body(self._serializer, spec.name, message, meta),
            self._max,
        )
        link = self._link
        if (
            self._state is not WorkerState.READY
            or link is None
            or link.connection.queued >= HIGH_WATER
        ):
            with anyio.move_on_after(deadline - self._clock()) as waiting:
                link = await self._ready_link(spec.name)
                # If the connection fails, the link reports why and settles
                # the call.
                with contextlib.suppress(*STREAM_ERRORS):
                    await link.connection.wait_for_room()
            if waiting.cancelled_caught:
                raise _timed_out(spec.name, seconds)
            assert link is not None
        if tx in self._pending:  # taken while waiting for the link
            raise ValueError(f"tx_id_factory returned {tx}, an id still in use")
        # Kept for a re-send only where the policy may retry it.
        retried = self._policy.max_attempts(spec.cls) > 1
        call = _Call(
            spec, tx, frame if retried else None, self._new_waiter(), link, seconds
        )
        self._pending[tx] = call
        if deadline < math.inf:
            self._deadlines.add(deadline, call, len(self._pending))
            if not self._watching:
                self._watching = True
                self._task_group.start_soon(self._deadlines.run, self._clock)
        try:
            with contextlib.suppress(*STREAM_ERRORS):
                # Others waiting too: more requests are likely in this pass.
                call.written = link.connection.write(
                    frame, batch=len(self._pending) > 1
                )
            del frame  # the connection holds it until it is written
            await call.waiter.wait()
        finally:
            if not call.done:  # cancelled
                self._abandon(call)
        # The deadline watcher may hold the call a while: not its result.
        error, payload = call.error, call.payload
        call.error = call.payload = None
        if error is not None:
            if call.replied and self._middleware:
                error = await self._incoming("error", spec, tx, error, call.meta)
                if not isinstance(error, BaseException):
                    raise TypeError(
                        f"middleware replaced an error of {spec.name!r} with "
                        f"{type(error).__name__}, not an exception"
                    )
            raise error
        try:
            result = spec.structure_result(payload, "")  # type: ignore[misc]
        except StructureError as exc:
            raise ProtocolError(
                f"the result of {spec.name!r} does not match its declared type: {exc}"
            ) from None
        except RecursionError:
            raise ProtocolError(
                f"the result of {spec.name!r} is nested too deeply"
            ) from None
        except Exception as exc:  # whatever the data, the caller gets a clear error
            raise ProtocolError(
                f"the result of {spec.name!r} cannot be read "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if self._middleware:
            result = await self._incoming("result", spec, tx, result, call.meta)
        return result

    def _expire(self, call: _Call) -> None:
        """The deadline watcher's verdict on a call that is still waiting."""
        self._abandon(call)
        call.settle(error=_timed_out(call.spec.name, call.timeout))

    def _abandon(self, call: _Call) -> None:
        """Take back a request nobody waits for: unsent, it is dropped; sent
        (or re-sent to a respawned worker), the worker is told to cancel it."""
        self._pending.pop(call.tx, None)
        if self._state is not WorkerState.READY or self._link is None:
            return
        if (
            call.link is self._link
            and call.written is not None
            and call.link.connection.withdraw(call.written)
        ):
            return
        self._link.post((encode_frame(Kind.CANCEL, call.tx, b"", self._max),))

    def _new_tx(self) -> int:
        tx: object = self._tx_id_factory()
        if type(tx) is not int or not 0 < tx <= _MAX_TX or tx in self._pending:
            raise ValueError(
                f"tx_id_factory returned {tx!r}; transaction ids must be ints "
                f"from 1 to 2**64 - 1, never reused"
            )
        return tx

    async def _outgoing(
        self, kind: EnvelopeKind, spec: MessageSpec, tx: int, message: Any
    ) -> tuple[Any, dict[str, str]]:
        """An outgoing message and its meta, after the middleware."""
        envelope = Envelope(kind, spec.name, tx, message)
        envelope = await apply(self._middleware, envelope, "outgoing")
        return envelope.payload, envelope.meta

    async def _incoming(
        self,
        kind: EnvelopeKind,
        spec: MessageSpec,
        tx: int,
        payload: Any,
        meta: dict[str, str],
    ) -> Any:
        envelope = Envelope(kind, spec.name, tx, payload, meta)
        return (await apply(self._middleware, envelope, "incoming")).payload

    async def _ready_link(self, name: str) -> WorkerLink:
        while self._state is WorkerState.STARTING:
            await self._ready.wait()
        if self._state is not WorkerState.READY or self._link is None:
            raise self._unavailable(name)
        return self._link

    async def _wait_supervised(self) -> None:
        """Wait until no worker will be started any more: the client crashed
        for good, or is closing."""
        await self._supervised.wait()

    async def aclose(self) -> None:
        """Close the worker gracefully; idempotent.

        Pending requests fail with `WorkerClosedError` and new sends are
        refused; a close never triggers retries. The worker is asked to stop,
        then sent SIGTERM, then SIGKILL, each after `Timeouts.shutdown`; the
        process is always reaped, even when the closing task is cancelled.
        """
        if self._closing:
            with anyio.CancelScope(shield=True):
                await self._closed.wait()
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            try:
                self._state = WorkerState.CLOSING
                self._supervisor.cancel()
                await self._supervised.wait()  # a worker it was starting is gone
                self._ready.set()
                self._settle_all(
                    lambda call: WorkerClosedError(
                        f"the worker was closed; {call.spec.name!r} did not complete"
                    )
                )
                self._end_streams(
                    lambda name: WorkerClosedError(
                        f"the worker was closed; {name!r} did not complete"
                    )
                )
                if self._link is not None:
                    await self._link.close(self._timeouts.shutdown)
            finally:
                self._state = WorkerState.CLOSED
                self._closed.set()

    def __repr__(self) -> str:
        pid = self._link.pid if self._link is not None else None
        return f"<WorkerClient pid={pid} state={self._state.name}>"

    # --- called by the current link: never raise --------------------------

    def _on_frame(
        self, link: WorkerLink, kind: int, tx: int, body: bytes | bytearray
    ) -> None:
        if kind == Kind.EVENT:
            self._on_event(body)
            return
        items = self._streams.get(tx) if link is self._link else None
        if items is not None and kind in (Kind.ITEM, Kind.RESULT, Kind.ERROR):
            if kind == Kind.ITEM and items.push(body):
                return
            del self._streams[tx]
            if kind == Kind.ITEM:
                # Its memory is the host's: the stream fails and the worker is
                # told to stop; the rest of its items count as late.
                link.post((encode_frame(Kind.CANCEL, tx, b"", self._max),))
                items.end(
                    ProtocolError(
                        f"the worker sent items of {items.name!r} faster than "
                        "they were taken, past its window"
                    )
                )
                return
            self._idle_crashes = 0
            error: BaseException | None = None
            if kind == Kind.ERROR:
                try:
                    _, payload, _ = decode_body(self._serializer, body)
                    error = error_from_payload(payload, items.name)
                except ProtocolError as exc:
                    error = exc
            items.end(error)
            return
        if kind == Kind.ITEM:
            self.late_replies += 1  # a stream its consumer left
            return
        if kind not in (Kind.RESULT, Kind.ERROR):
            # The stream can no longer be trusted: the link ends.
            raise ProtocolError(
                f"the worker sent a frame of kind {kind}, which a host never receives"
            )
        call = self._pending.pop(tx, None) if link is self._link else None
        if call is None:
            self.late_replies += 1
            return
        self._idle_crashes = 0
        try:
            name, payload, meta = decode_body(self._serializer, body)
            meta = check_meta(meta)
        except ProtocolError as exc:
            call.settle(error=exc)
            return
        if kind == Kind.ERROR:
            call.answer(None, error_from_payload(payload, call.spec.name), meta)
        elif name != call.spec.name:
            call.settle(
                error=ProtocolError(
                    f"the worker answered {call.spec.name!r} with a {name!r} result"
                )
            )
        else:
            call.answer(payload, None, meta)

    def _on_event(self, body: bytes | bytearray) -> None:
        """Hand an event to its callback: a sync one at once, an async one in a
        task. Neither can harm the client: what they raise is logged."""
        try:
            name, payload, _ = decode_body(self._serializer, body)
            spec = self._messages.spec_named(name)
            if spec is None or spec.kind != "event":
                raise ProtocolError(f"{name!r} is not an event of the registry")
            event = spec.structure(payload, "")
        except Exception as exc:  # whatever the worker sent, the host goes on
            log(logger, logging.ERROR, "dropping an event from the worker: %s", exc)
            return
        callback = self._on_event_callbacks.get(spec.cls)
        if callback is None:
            log(logger, logging.DEBUG, "no on_event callback for %r: dropped", name)
            return
        try:
            result = callback(event)
        except Exception:
            _callback_failed(name)
            return
        if inspect.isawaitable(result):
            self._task_group.start_soon(_await_callback, result, name)

    def _on_lost(self, link: WorkerLink, reason: ShutdownReason) -> None:
        """The worker stopped without being asked to: hold new sends until
        the supervisor has applied the policy."""
        if link is self._link and self._state is WorkerState.READY:
            self._state = WorkerState.STARTING
            self._ready = anyio.Event()

    def _retries_after(self, reason: ShutdownReason, tail: str) -> bool:
        """Apply the policy to a loss: settle the calls it does not retry, and
        say whether to start another worker (else the client has crashed)."""
        if isinstance(reason, ConnectionLost) and isinstance(
            reason.error, ProtocolError
        ):
            # The worker broke the protocol: retrying would not help.
            message = str(reason.error)
            self._settle_all(lambda call: ProtocolError(message))
            self._end_streams(lambda name: ProtocolError(message))
            self._become_crashed(reason)
            return False
        self._end_streams(lambda name: WorkerCrashedError(reason, name))
        killed, self._replace_killed = self._replace_killed, False
        if not self._pending and not killed:
            self._idle_crashes += 1
        retry = False
        for tx, call in list(self._pending.items()):
            limit = self._policy.max_attempts(call.spec.cls)
            if call.attempt < limit:
                retry = True
                continue
            del self._pending[tx]
            call.settle(error=self._crashed(reason, call, limit, tail))
        default = self._policy.default
        if (
            killed
            or retry
            or (isinstance(default, Retry) and self._idle_crashes <= default.attempts)
        ):
            return True
        self._become_crashed(reason)
        return False

    def _kill_worker(self) -> None:
        """Kill the worker, busy in a call nobody waits for; the supervisor
        starts another."""
        link = self._link
        if self._state is WorkerState.READY and link is not None and link.is_active:
            self._replace_killed = True
            with contextlib.suppress(ProcessLookupError):
                link.process.kill()
            # New requests wait for the next worker rather than go to this one.
            self._state = WorkerState.STARTING
            self._ready = anyio.Event()

    def _give_up(
        self, reason: ShutdownReason, tail: str, startup_error: Exception
    ) -> None:
        """No new worker could be started: every pending call fails."""
        log(logger, logging.ERROR, "could not respawn the worker: %s", startup_error)

        def unrestartable(call: _Call) -> WorkerCrashedError:
            error = self._crashed(reason, call, None, tail)
            error.add_note(f"The worker could not be restarted: {startup_error}")
            error.__cause__ = startup_error
            return error

        self._settle_all(unrestartable)
        self._become_crashed(reason)

    def _serve(self, link: WorkerLink) -> None:
        """Make ``link`` the current one; its loss may already be known."""
        self._link = link
        self._state = WorkerState.READY
        self._ready.set()
        if link.lost_reason is not None:
            self._on_lost(link, link.lost_reason)

    def _crashed(
        self, reason: ShutdownReason, call: _Call, limit: int | None, tail: str
    ) -> WorkerCrashedError:
        if limit is None:
            limit = self._policy.max_attempts(call.spec.cls)
        return WorkerCrashedError(
            reason,
            call.spec.name,
            attempt=call.attempt,
            max_attempts=limit,
            stderr_tail=tail or None,
        )

    def _become_crashed(self, reason: ShutdownReason) -> None:
        self._state = WorkerState.CRASHED
        self._failure = reason
        self._ready.set()

    def _settle_all(self, make_error: Callable[[_Call], BaseException]) -> None:
        pending, self._pending = self._pending, {}
        for call in pending.values():
            call.settle(error=make_error(call))

    def _end_streams(self, make_error: Callable[[str], BaseException]) -> None:
        """Fail every open stream: they are never retried."""
        streams, self._streams = self._streams, {}
        for items in streams.values():
            items.end(make_error(items.name))

    def _unavailable(self, name: str) -> Exception:
        if self._state is WorkerState.CRASHED and self._failure is not None:
            return WorkerCrashedError(self._failure, name, attempt=0)
        return WorkerClosedError(
            f"the worker is {self._state.value}; cannot send {name!r}"
        )


async def _await_callback(result: Awaitable[Any], name: str) -> None:
    try:
        await result
    except Exception:
        _callback_failed(name)


def _callback_failed(name: str) -> None:
    log(
        logger, logging.ERROR, "the on_event callback of %r raised", name, exc_info=True
    )


def _timed_out(name: str, timeout: float) -> WorkerTimeoutError:
    return WorkerTimeoutError(f"{name!r} did not complete within {timeout:g} s")


async def open_client(
    config: WorkerConfig, spawn: Spawner, output: OutputSink, task_group: TaskGroup
) -> WorkerClient:
    """Make a `WorkerClient` and start its first worker."""
    client = WorkerClient(config, spawn, output, task_group)
    await client._start()  # pyright: ignore[reportPrivateUsage]
    return client
