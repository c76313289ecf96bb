"""The worker side: `run_worker`, `serve_worker` and `get_startup_data`.

Kept import-light: a worker imports only what it uses, and the event loop of
the backend its host asked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import ByteStream, TaskGroup

from . import _bootstrap, _framing
from ._bootstrap import read_bootstrap
from ._codec import StructureError, structure
from ._errors import ProtocolError, SerializerMismatchError, WorkerStartupError
from ._framing import FrameReader, FrameWriter, Kind, encode_frame
from ._handshake import recv_exactly, worker_authenticate
from ._middleware import Envelope, Middleware, apply, check_meta
from ._protocol import decode_body, describe_exception, encode_body
from ._registry import MessageRegistry, MessageSpec
from ._serializers import JsonSerializer, Serializer
from ._streams import BlockingPipe, NowaitStream, PipeStream, SocketStream
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

    def open_stream(self) -> NowaitStream:
        """The connection as a stream for the event loop; it owns it from now on."""
        if isinstance(self.channel, socket.socket):
            return SocketStream(self.channel)
        return PipeStream(self.channel.read_fd, self.channel.write_fd)

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

    Runs the event loop of the backend the host asked for (asyncio or trio).

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
    try:
        anyio.run(server.serve, backend=backend)
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


class _Server:
    """Reads the host's frames and runs the handlers."""

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
        self._writer: FrameWriter

    async def serve(self) -> None:
        stream = self._session.open_stream()
        async with stream, anyio.create_task_group() as tg:
            self._writer = FrameWriter(
                stream, lambda: tg.start_soon(self._writer.flush_posted)
            )
            await self._read_loop(stream, tg)
            tg.cancel_scope.cancel()

    async def _read_loop(self, stream: ByteStream, tg: TaskGroup) -> None:
        reader = FrameReader(stream, self._max)
        while True:
            try:
                frames = await reader.receive()
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ):
                return  # the host went away: stop serving
            except ProtocolError as exc:
                log(
                    logger,
                    logging.ERROR,
                    "stopping: the host sent a bad frame (%s)",
                    exc,
                )
                return
            for kind, tx, body in frames:
                if kind == Kind.REQUEST:
                    await self._on_request(tx, body, tg)
                elif kind == Kind.CANCEL:
                    scope = self._running.get(tx)
                    if scope is not None:
                        scope.cancel()
                elif kind == Kind.NOTIFICATION:
                    await self._on_notification(body, tg)
                elif kind == Kind.SHUTDOWN:
                    return
                else:
                    log(
                        logger,
                        logging.WARNING,
                        "ignoring a frame of unknown kind %d",
                        kind,
                    )

    def _decode(
        self, body: bytes, kind: str
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

    async def _on_request(self, tx: int, body: bytes, tg: TaskGroup) -> None:
        if tx in self._running:
            await self._reply_error(
                tx, "?", ProtocolError(f"duplicate tx {tx}"), protocol=True
            )
            return
        try:
            spec, message, meta = self._decode(body, "request")
        except ProtocolError as exc:
            await self._reply_error(tx, "?", exc, protocol=True)
            return
        handler, is_async = self._handlers[spec.cls]
        if not is_async:
            # Sync handlers run right here, one at a time, in arrival order.
            await self._handle(tx, spec.name, handler, message, meta, None)
            return
        scope = self._running[tx] = anyio.CancelScope()
        tg.start_soon(self._run_request, tx, spec.name, handler, message, meta, scope)

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
        scope: anyio.CancelScope | None,
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

    async def _on_notification(self, body: bytes, tg: TaskGroup) -> None:
        try:
            spec, message, meta = self._decode(body, "notification")
        except ProtocolError as exc:
            log(logger, logging.ERROR, "dropping a notification: %s", exc)
            return
        handler, is_async = self._handlers[spec.cls]
        if is_async:
            tg.start_soon(self._run_notification, spec.name, handler, message, meta)
        else:
            await self._run_notification(spec.name, handler, message, meta)

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
            log(
                logger,
                logging.ERROR,
                "the handler of notification %r raised",
                name,
                exc_info=True,
            )

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
        try:
            frame = encode_frame(
                Kind.RESULT,
                tx,
                encode_body(self._serializer, name, result, meta),
                self._max,
            )
        except ProtocolError as exc:
            error = ProtocolError(f"result of {name!r}: {exc}")
            await self._reply_error(tx, name, error, protocol=True)
            return
        await self._send(frame)

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
        payload = describe_exception(exc, protocol=protocol)
        try:
            body = encode_body(self._serializer, name, payload, meta)
            frame = encode_frame(Kind.ERROR, tx, body, self._max)
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
            frame = encode_frame(Kind.ERROR, tx, body, _framing.MAX_FRAME_LIMIT)
        await self._send(frame)

    async def _send(self, frame: bytes) -> None:
        # If the host went away, the read loop sees it and stops serving.
        with contextlib.suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
        ):
            await self._writer.send(frame)
