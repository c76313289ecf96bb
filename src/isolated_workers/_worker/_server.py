"""The worker's server: dispatches the host's frames and writes the replies."""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup

from .._calls import BUILTIN, CallFunction, call_function
from .._errors import ProtocolError
from .._messages import Event
from .._registry import MessageRegistry, MessageSpec
from .._util import log
from .._wire import _framing
from .._wire._codec import StructureError
from .._wire._connection import Connection
from .._wire._framing import Frame, Kind, frame_parts
from .._wire._middleware import Envelope, Middleware, apply, check_meta
from .._wire._protocol import (
    CREDIT,
    STREAM_WINDOW,
    decode_body,
    describe_exception,
    encode_body,
)
from .._wire._serializers import Serializer
from .._wire._streams import Buffer
from ._session import Session
from ._tasks import Spawn, handler_tasks

logger = logging.getLogger("isolated_workers.worker")

Handler = Callable[[Any], Any]

#: The server whose handlers run in this context, for `emit`.
serving: ContextVar[Server | None] = ContextVar("isolated_workers_server", default=None)


@attrs.define(eq=False)
class _Flow:
    """How many more items of one stream the host will take."""

    available: int = STREAM_WINDOW
    _wake: anyio.Event = attrs.field(factory=anyio.Event)

    def grant(self, count: int) -> None:
        self.available += count
        self._wake.set()

    async def take(self) -> None:
        """Wait until the host takes one more item, and count it."""
        while not self.available:
            await self._wake.wait()
            self._wake = anyio.Event()
        self.available -= 1


class _Stop(Exception):
    """The host asked the worker to stop."""


@attrs.define(eq=False)
class Server:
    """Dispatches the host's frames to the handlers and writes the replies.

    Frames arrive in a synchronous callback (see `Connection`). A sync handler
    runs right there, one at a time in arrival order, and its reply goes out
    with the others of the same read; an async handler runs as a task of the
    backend's own kind (see `handler_tasks`). With
    middleware, which may await, sync handlers run in order in one task.
    """

    session: Session
    messages: MessageRegistry
    handlers: Mapping[type, Handler]
    serializer: Serializer
    max_frame_size: int
    middleware: Sequence[Middleware] = ()
    #: Each message class's handler, and whether it is async.
    _dispatch: dict[type, tuple[Handler, bool]] = attrs.field(init=False)
    _running: dict[int, anyio.CancelScope] = attrs.field(
        init=False, factory=dict[int, anyio.CancelScope]
    )
    _connection: Connection = attrs.field(init=False)
    _tg: TaskGroup = attrs.field(init=False)
    _spawn: Spawn = attrs.field(init=False)  # for async handlers
    # Sync work waiting for its turn, when middleware makes it async.
    _lane: collections.deque[Callable[[], Awaitable[None]]] = attrs.field(
        init=False, factory=collections.deque[Callable[[], Awaitable[None]]]
    )
    _lane_wanted: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    #: The flow control of each running stream.
    _flows: dict[int, _Flow] = attrs.field(init=False, factory=dict[int, "_Flow"])

    def __attrs_post_init__(self) -> None:
        self._dispatch = {
            cls: (handler, inspect.iscoroutinefunction(handler))
            for cls, handler in self.handlers.items()
        }
        self._dispatch[CallFunction] = (call_function, False)

    async def serve(self) -> None:
        self._connection = self.session.open_connection(self.max_frame_size)
        token = serving.set(self)  # seen by handlers: their tasks start here
        try:
            async with (
                anyio.create_task_group() as tg,
                handler_tasks(self._connection.close) as spawn,
            ):
                self._tg = tg
                self._spawn = spawn
                if self.middleware:
                    tg.start_soon(self._run_lane)
                try:
                    await self._connection.run(self._on_frames)
                except (
                    _Stop,
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                ):
                    pass  # asked to stop, or the host went away
                except ProtocolError as exc:
                    log(
                        logger,
                        logging.ERROR,
                        "stopping: the host sent a bad frame (%s)",
                        exc,
                    )
                tg.cancel_scope.cancel()
        finally:
            serving.reset(token)
            self._connection.close()

    async def emit(self, event: Event) -> None:
        """Write ``event`` to the host, once there is room for it."""
        cls: type[Any] = type(event)
        try:
            spec = self.messages.spec_for(cls)
        except KeyError:
            spec = None
        if spec is None or spec.kind != "event":
            raise TypeError(f"{cls.__qualname__} is not an Event of the registry")
        body = encode_body(self.serializer, spec.name, event, {})
        await self._send(frame_parts(Kind.EVENT, 0, body, self.max_frame_size))
        await anyio.lowlevel.cancel_shielded_checkpoint()  # a checkpoint always

    def _on_frames(self, frames: list[Frame]) -> None:
        # Taken off the list one by one, so that a request's body is freed once
        # decoded, before its handler runs: a large echo then holds two copies
        # (message and reply), not three.
        frames.reverse()
        while frames:
            kind, tx, body = frames.pop()
            if kind == Kind.REQUEST:
                decoded = self._decode_request(tx, body)
                del body
                if decoded is not None:
                    self._on_request(tx, *decoded)
            elif kind == Kind.CANCEL:
                scope = self._running.get(tx)
                if scope is not None:
                    scope.cancel()
            elif kind == Kind.NOTIFICATION:
                self._on_notification(body)
            elif kind == Kind.STREAM:
                decoded = self._decode_request(tx, body, "stream")
                del body
                if decoded is not None:
                    spec, message, _ = decoded
                    handler, _ = self._dispatch[spec.cls]
                    scope = self._running[tx] = anyio.CancelScope()
                    self._spawn(
                        self._run_stream, tx, spec.name, handler, message, scope
                    )
            elif kind == Kind.CREDIT:
                flow = self._flows.get(tx)
                if len(body) != CREDIT.size:
                    raise ProtocolError("a CREDIT frame of the wrong size")
                if flow is not None:  # else the stream has ended meanwhile
                    flow.grant(CREDIT.unpack(body)[0])
            elif kind == Kind.SHUTDOWN:
                raise _Stop
            else:
                raise ProtocolError(
                    f"a frame of kind {kind}, which a worker never receives"
                )

    def _decode(
        self, body: bytes | bytearray, kind: str
    ) -> tuple[MessageSpec, Any, dict[str, str]]:
        name, payload, meta = decode_body(self.serializer, body)
        spec = self.messages.spec_named(name) or BUILTIN.spec_named(name)
        if spec is None or spec.kind != kind:
            raise ProtocolError(f"unknown {kind} message type {name!r}")
        try:
            return spec, spec.structure(payload, ""), check_meta(meta)
        except StructureError as exc:
            raise ProtocolError(f"invalid {name!r} message: {exc}") from None
        except RecursionError:
            raise ProtocolError(f"{name!r} message nested too deeply") from None
        except Exception as exc:  # whatever the data, the worker serves on
            raise ProtocolError(
                f"invalid {name!r} message ({type(exc).__name__}: {exc})"
            ) from None

    def _decode_request(
        self, tx: int, body: bytes | bytearray, kind: str = "request"
    ) -> tuple[MessageSpec, Any, dict[str, str]] | None:
        """The request's spec, message and meta; `None` if it was refused."""
        if tx in self._running:
            self._refuse(tx, ProtocolError(f"duplicate tx {tx}"))
            return None
        try:
            return self._decode(body, kind)
        except ProtocolError as exc:
            self._refuse(tx, exc)
            return None

    def _on_request(
        self, tx: int, spec: MessageSpec, message: Any, meta: dict[str, str]
    ) -> None:
        handler, is_async = self._dispatch[spec.cls]
        if is_async:
            scope = self._running[tx] = anyio.CancelScope()
            self._spawn(self._run_request, tx, spec.name, handler, message, meta, scope)
        elif self.middleware:
            self._queue_in_lane(
                functools.partial(self._handle, tx, spec.name, handler, message, meta)
            )
        else:
            try:
                result = handler(message)
            except Exception as exc:
                self._write(self._error_frame(tx, spec.name, exc))
            else:
                self._write(self._result_frame(tx, spec.name, result))

    def _refuse(self, tx: int, exc: ProtocolError) -> None:
        """Answer a request that cannot be read with a protocol error."""
        if self.middleware:
            self._tg.start_soon(
                functools.partial(self._reply_error, tx, "?", exc, protocol=True)
            )
        else:
            self._write(self._error_frame(tx, "?", exc, protocol=True))

    async def _run_request(
        self,
        tx: int,
        name: str,
        handler: Handler,
        message: Any,
        meta: dict[str, str],
        scope: anyio.CancelScope,
    ) -> None:
        try:
            with scope:
                await self._handle(tx, name, handler, message, meta, scope)
        finally:
            del self._running[tx]

    async def _run_stream(
        self,
        tx: int,
        name: str,
        handler: Handler,
        message: Any,
        scope: anyio.CancelScope,
    ) -> None:
        """Send the items of a stream handler as the host takes them, then
        the end (a result) or the error; the host's cancel closes the
        generator."""
        flow = self._flows[tx] = _Flow()
        try:
            with scope:
                try:
                    async with contextlib.aclosing(handler(message)) as items:
                        async for item in items:
                            await flow.take()
                            body = encode_body(self.serializer, name, item, {})
                            frame = frame_parts(
                                Kind.ITEM, tx, body, self.max_frame_size
                            )
                            await self._send(frame)
                except Exception as exc:
                    if not scope.cancel_called:
                        await self._reply_error(tx, name, exc)
                else:
                    if not scope.cancel_called:
                        await self._send(self._result_frame(tx, name, None))
        finally:
            del self._running[tx], self._flows[tx]

    async def _handle(
        self,
        tx: int,
        name: str,
        handler: Handler,
        message: Any,
        meta: dict[str, str],
        scope: anyio.CancelScope | None = None,
    ) -> None:
        """Run one request's middleware and handler, and send the reply unless
        the host cancelled the request meanwhile."""
        try:
            if self.middleware:
                envelope = Envelope("request", name, tx, message, meta)
                message = (await apply(self.middleware, envelope, "incoming")).payload
            result = handler(message)
            if inspect.isawaitable(result):  # async, or an object with async __call__
                result = await result
        except Exception as exc:
            if scope is None or not scope.cancel_called:
                await self._reply_error(tx, name, exc)
        else:
            if scope is None or not scope.cancel_called:  # else nobody waits
                await self._reply(tx, name, result)

    def _on_notification(self, body: bytes | bytearray) -> None:
        try:
            spec, message, meta = self._decode(body, "notification")
        except ProtocolError as exc:
            log(logger, logging.ERROR, "dropping a notification: %s", exc)
            return
        handler, is_async = self._dispatch[spec.cls]
        if is_async:
            self._spawn(self._run_notification, spec.name, handler, message, meta)
        elif self.middleware:
            self._queue_in_lane(
                functools.partial(
                    self._run_notification, spec.name, handler, message, meta
                )
            )
        else:
            try:
                handler(message)
            except Exception:
                self._log_notification_error(spec.name)

    async def _run_notification(
        self, name: str, handler: Handler, message: Any, meta: dict[str, str]
    ) -> None:
        try:
            if self.middleware:
                envelope = Envelope("notification", name, 0, message, meta)
                message = (await apply(self.middleware, envelope, "incoming")).payload
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log_notification_error(name)

    def _log_notification_error(self, name: str) -> None:
        log(
            logger,
            logging.ERROR,
            "the handler of notification %r raised",
            name,
            exc_info=True,
        )

    def _queue_in_lane(self, job: Callable[[], Awaitable[None]]) -> None:
        self._lane.append(job)
        self._lane_wanted.set()

    async def _run_lane(self) -> None:
        while True:
            await self._lane_wanted.wait()
            self._lane_wanted = anyio.Event()
            while self._lane:
                await self._lane.popleft()()

    async def _reply(self, tx: int, name: str, result: Any) -> None:
        meta: dict[str, str] = {}
        if self.middleware:
            try:
                envelope = Envelope("result", name, tx, result)
                envelope = await apply(self.middleware, envelope, "outgoing")
            except Exception as exc:
                await self._reply_error(tx, name, exc, outgoing_middleware=False)
                return
            result, meta = envelope.payload, envelope.meta
        await self._send(self._result_frame(tx, name, result, meta))

    def _result_frame(
        self, tx: int, name: str, result: Any, meta: dict[str, str] | None = None
    ) -> tuple[Buffer, ...]:
        """The reply carrying ``result``, or the error saying it cannot be sent."""
        try:
            body = encode_body(self.serializer, name, result, meta or {})
            return frame_parts(Kind.RESULT, tx, body, self.max_frame_size)
        except ProtocolError as exc:
            error = ProtocolError(f"result of {name!r}: {exc}")
            return self._error_frame(tx, name, error, protocol=True)

    async def _reply_error(
        self,
        tx: int,
        name: str,
        exc: BaseException,
        *,
        protocol: bool = False,
        outgoing_middleware: bool = True,
    ) -> None:
        meta: dict[str, str] = {}
        if self.middleware and outgoing_middleware:
            try:
                envelope = Envelope("error", name, tx, exc)
                envelope = await apply(self.middleware, envelope, "outgoing")
                if not isinstance(envelope.payload, BaseException):
                    raise TypeError(
                        "middleware replaced an error with "
                        f"{type(envelope.payload).__name__}, not an exception"
                    )
                exc, meta = envelope.payload, envelope.meta
            except Exception as problem:
                exc, protocol = problem, False
        await self._send(self._error_frame(tx, name, exc, meta, protocol=protocol))

    def _error_frame(
        self,
        tx: int,
        name: str,
        exc: BaseException,
        meta: dict[str, str] | None = None,
        *,
        protocol: bool = False,
    ) -> tuple[Buffer, ...]:
        """The reply carrying ``exc``; ``protocol`` marks the worker's own
        refusals, which the host raises as `ProtocolError`."""
        payload = describe_exception(exc, protocol=protocol)
        try:
            body = encode_body(self.serializer, name, payload, meta or {})
            return frame_parts(Kind.ERROR, tx, body, self.max_frame_size)
        except ProtocolError as problem:
            # The error itself cannot be carried: say so in a reply that fits.
            payload = describe_exception(
                ProtocolError(
                    f"the error raised by {name!r} cannot be sent: {problem}"
                ),
                protocol=True,
            )
            payload["traceback"] = ""
            body = encode_body(self.serializer, name, payload)
            return frame_parts(Kind.ERROR, tx, body, _framing.MAX_FRAME_LIMIT)

    def _write(self, parts: tuple[Buffer, ...]) -> None:
        # If the host went away, the connection sees it and serving stops.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            # Other handlers still running: their replies may go out with it.
            self._connection.write(parts, batch=len(self._running) > 1)

    async def _send(self, parts: tuple[Buffer, ...]) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._connection.wait_for_room()
        self._write(parts)
