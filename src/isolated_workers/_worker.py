"""The worker side: `run_worker`, `serve_worker` and `get_startup_data`.

Kept import-light: a worker imports only what it uses, and the event loop of
the backend its host asked for.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib.util
import inspect
import logging
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from . import _bootstrap, _framing
from ._bootstrap import read_bootstrap
from ._codec import StructureError, structure
from ._connection import Connection
from ._errors import ProtocolError, SerializerMismatchError, WorkerStartupError
from ._framing import Frame, FrameParser, Kind, encode_frame, frame_parts
from ._handshake import recv_exactly, worker_authenticate
from ._middleware import Envelope, Middleware, apply, check_meta
from ._protocol import decode_body, describe_exception, encode_body
from ._registry import MessageRegistry, MessageSpec
from ._serializers import JsonSerializer, Serializer
from ._streams import BlockingPipe, Buffer, Channel, PipeChannel, SocketChannel
from ._util import (
    DEFAULT_MAX_FRAME_SIZE,
    json_dumps,
    json_loads,
    log,
    raise_single,
)
from ._watchdog import enable_crash_reports, exit_if_host_gone, watch_host

__all__ = ["get_startup_data", "run_worker", "serve_worker"]

logger = logging.getLogger("isolated_workers.worker")

T = TypeVar("T")
Handler = Callable[[Any], Any]


class _Session:
    """The authenticated connection to the host and what it sent at the handshake."""

    def __init__(self) -> None:
        info = read_bootstrap()
        if info is None:
            raise RuntimeError(
                "not in a worker process: this function works only in a process "
                "started by isolated_workers.open_worker()"
            )
        enable_crash_reports()
        self.pipe_fd: int = info["pipe_fd"]
        socket_path: str | None = info.get("socket")
        watch_host(self.pipe_fd, socket_path)
        exit_if_host_gone(self.pipe_fd, socket_path)
        self.channel: socket.socket | BlockingPipe
        if socket_path is None:
            if _bootstrap.stdio_channel is None:
                raise RuntimeError("a pipe worker must be started by its launcher")
            self.channel = BlockingPipe(
                *_bootstrap.stdio_channel, info["connect_timeout"]
            )
        else:
            self.channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.channel.settimeout(info["connect_timeout"])
        try:
            if isinstance(self.channel, socket.socket) and socket_path is not None:
                self.channel.connect(socket_path)
            worker_authenticate(self.channel, bytes.fromhex(info["secret"]))
            size, kind, _ = _framing.HEADER.unpack(
                recv_exactly(self.channel, _framing.HEADER.size)
            )
            if kind != Kind.HELLO or size != info["hello_size"]:
                raise ProtocolError("the host's greeting is malformed")
            self.hello: dict[str, Any] = json_loads(recv_exactly(self.channel, size))
        except BaseException as exc:
            self._close()
            if isinstance(exc, OSError):  # a host that died meanwhile, perhaps
                exit_if_host_gone(self.pipe_fd, socket_path)
            raise
        self.ready_sent = False

    def send_ready(self, **fields: Any) -> None:
        body = json_dumps(fields)
        frame = encode_frame(Kind.READY, 0, body, _framing.MAX_FRAME_LIMIT)
        self.channel.sendall(frame)
        self.ready_sent = True

    def open_connection(self, max_frame_size: int) -> Connection:
        """The connection for the event loop; it owns the channel from now on."""
        channel: Channel
        if isinstance(self.channel, socket.socket):
            channel = SocketChannel(self.channel)
        else:
            channel = PipeChannel(self.channel.read_fd, self.channel.write_fd)
        return Connection(channel, FrameParser(max_frame_size))

    def _close(self) -> None:
        if isinstance(self.channel, socket.socket):
            self.channel.close()
        else:
            os.close(self.channel.read_fd)
            os.close(self.channel.write_fd)


_session: _Session | None = None
_session_lock = threading.Lock()


def _connect() -> _Session:
    global _session
    with _session_lock:
        if _session is None:
            _session = _Session()
        return _session


@overload
def get_startup_data(as_type: None = None) -> Any: ...
@overload
def get_startup_data(as_type: type[T]) -> T: ...
def get_startup_data(as_type: Any = None) -> Any:
    """Return the startup data the host passed to `open_worker`.

    The first call performs the handshake with the host, so it works at module
    level, before `run_worker` is called.

    Args:
        as_type: Structure the data into this type (an attrs class, say);
            without it the plain decoded data is returned.

    Raises:
        RuntimeError: Not called in a worker process.
    """
    data = _connect().hello.get("startup_data")
    return data if as_type is None else structure(data, as_type)


def run_worker(
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    *,
    middleware: Sequence[Middleware] = (),
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Serve the host until it closes the worker; the worker's blocking entry point.

    Runs the event loop the host asked for: asyncio, Trio, or asyncio on
    uvloop.

    Args:
        messages: The registry shared with the host.
        handlers: A handler for every message class of the registry; sync or
            async callables taking the message and returning its result.
        middleware: Functions run on every incoming message before its
            handler and on every outgoing reply, in order (see `Middleware`).
        serializer: Must match the host's (default: `JsonSerializer`).
        max_frame_size: The largest message accepted or sent, in bytes.

    Raises:
        WorkerStartupError: A handler is missing or the contract differs from
            the host's; the host's `open_worker` raises it too.
        SerializerMismatchError: The host uses another serializer.
    """
    session = _connect()
    backend = session.hello.get("backend", "asyncio")
    server = _prepare(
        session,
        messages,
        handlers,
        middleware,
        serializer,
        max_frame_size,
        backend=backend,
    )
    options = {"use_uvloop": True} if backend == "uvloop" else {}
    try:
        anyio.run(
            server.serve,
            backend="trio" if backend == "trio" else "asyncio",
            backend_options=options,
        )
    except BaseExceptionGroup as group:
        raise_single(group)


async def serve_worker(
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    *,
    middleware: Sequence[Middleware] = (),
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Like `run_worker`, inside an event loop the worker already runs."""
    session = (
        _session if _session is not None else await anyio.to_thread.run_sync(_connect)
    )
    server = _prepare(
        session, messages, handlers, middleware, serializer, max_frame_size
    )
    await server.serve()


def _prepare(
    session: _Session,
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    middleware: Sequence[Middleware],
    serializer: Serializer | None,
    max_frame_size: int,
    *,
    backend: str | None = None,
) -> _Server:
    if session.ready_sent:
        raise RuntimeError("this worker is already serving its host")
    serializer = serializer if serializer is not None else JsonSerializer()
    hello = session.hello
    problem: WorkerStartupError | None = None
    if backend is not None and importlib.util.find_spec(backend) is None:
        problem = WorkerStartupError(
            f"the host asked for a {backend} worker, but {backend} is not "
            f"installed for {sys.executable}"
        )
    elif hello.get("serializer") != serializer.name:
        problem = SerializerMismatchError(
            f"the host uses serializer {hello.get('serializer')!r}, "
            f"the worker {serializer.name!r}"
        )
    elif differing := messages.differences(hello.get("messages", {})):
        problem = WorkerStartupError(
            f"host and worker define these messages differently: {', '.join(differing)}"
        )
    else:
        missing = [cls.__qualname__ for cls in messages if cls not in handlers]
        unknown = [
            getattr(c, "__qualname__", repr(c)) for c in handlers if c not in messages
        ]
        if missing:
            problem = WorkerStartupError(
                f"the worker has no handler for: {', '.join(missing)}"
            )
        elif unknown:
            problem = WorkerStartupError(
                f"the worker has handlers for messages not in the registry: "
                f"{', '.join(unknown)}"
            )
    if problem is not None:
        session.send_ready(ok=False, error=type(problem).__name__, message=str(problem))
        raise problem
    session.send_ready(ok=True)
    return _Server(session, messages, handlers, serializer, max_frame_size, middleware)


class _Stop(Exception):
    """The host asked the worker to stop."""


class _Server:
    """Dispatches the host's frames to the handlers and writes the replies.

    Frames arrive in a synchronous callback (see `Connection`). A sync handler
    runs right there, one at a time in arrival order, and its reply goes out
    with the others of the same read; an async handler runs as a task. With
    middleware, which may await, sync handlers run in order in one task.
    """

    def __init__(
        self,
        session: _Session,
        messages: MessageRegistry,
        handlers: Mapping[type, Handler],
        serializer: Serializer,
        max_frame_size: int,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self._session = session
        self._messages = messages
        self._handlers = {
            cls: (handler, inspect.iscoroutinefunction(handler))
            for cls, handler in handlers.items()
        }
        self._serializer = serializer
        self._max = max_frame_size
        self._middleware = tuple(middleware)
        self._running: dict[int, anyio.CancelScope] = {}
        self._connection: Connection
        self._tg: TaskGroup
        # Sync work waiting for its turn, when middleware makes it async.
        self._lane: collections.deque[Callable[[], Awaitable[None]]] = (
            collections.deque()
        )
        self._lane_wanted = anyio.Event()

    async def serve(self) -> None:
        self._connection = self._session.open_connection(self._max)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self._middleware:
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
            self._connection.close()

    def _on_frames(self, frames: list[Frame]) -> None:
        for kind, tx, body in frames:
            if kind == Kind.REQUEST:
                self._on_request(tx, body)
            elif kind == Kind.CANCEL:
                scope = self._running.get(tx)
                if scope is not None:
                    scope.cancel()
            elif kind == Kind.NOTIFICATION:
                self._on_notification(body)
            elif kind == Kind.SHUTDOWN:
                raise _Stop
            else:
                raise ProtocolError(
                    f"a frame of kind {kind}, which a worker never receives"
                )

    def _decode(
        self, body: bytes | bytearray, kind: str
    ) -> tuple[MessageSpec, Any, dict[str, str]]:
        name, payload, meta = decode_body(self._serializer, body)
        spec = self._messages.spec_named(name)
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

    def _on_request(self, tx: int, body: bytes | bytearray) -> None:
        if tx in self._running:
            self._refuse(tx, ProtocolError(f"duplicate tx {tx}"))
            return
        try:
            spec, message, meta = self._decode(body, "request")
        except ProtocolError as exc:
            self._refuse(tx, exc)
            return
        handler, is_async = self._handlers[spec.cls]
        if is_async:
            scope = self._running[tx] = anyio.CancelScope()
            self._tg.start_soon(
                self._run_request, tx, spec.name, handler, message, meta, scope
            )
        elif self._middleware:
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
        if self._middleware:
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
            if self._middleware:
                envelope = Envelope("request", name, tx, message, meta)
                message = (await apply(self._middleware, envelope, "incoming")).payload
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
        handler, is_async = self._handlers[spec.cls]
        if is_async:
            self._tg.start_soon(
                self._run_notification, spec.name, handler, message, meta
            )
        elif self._middleware:
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
            if self._middleware:
                envelope = Envelope("notification", name, 0, message, meta)
                message = (await apply(self._middleware, envelope, "incoming")).payload
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
        if self._middleware:
            try:
                envelope = Envelope("result", name, tx, result)
                envelope = await apply(self._middleware, envelope, "outgoing")
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
            body = encode_body(self._serializer, name, result, meta or {})
            return frame_parts(Kind.RESULT, tx, body, self._max)
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
        if self._middleware and outgoing_middleware:
            try:
                envelope = Envelope("error", name, tx, exc)
                envelope = await apply(self._middleware, envelope, "outgoing")
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
            body = encode_body(self._serializer, name, payload, meta or {})
            return frame_parts(Kind.ERROR, tx, body, self._max)
        except ProtocolError as problem:
            # The error itself cannot be carried: say so in a reply that fits.
            payload = describe_exception(
                ProtocolError(
                    f"the error raised by {name!r} cannot be sent: {problem}"
                ),
                protocol=True,
            )
            payload["traceback"] = ""
            body = encode_body(self._serializer, name, payload)
            return frame_parts(Kind.ERROR, tx, body, _framing.MAX_FRAME_LIMIT)

    def _write(self, parts: tuple[Buffer, ...]) -> None:
        # If the host went away, the connection sees it and serving stops.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._connection.write(parts)

    async def _send(self, parts: tuple[Buffer, ...]) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._connection.wait_for_room()
        self._write(parts)
