"""The worker side: `run_worker`, `serve_worker` and `get_startup_data`.

Kept import-light: a worker imports only what it uses, and the event loop of
the backend its host asked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import ByteStream, TaskGroup

from . import _framing
from ._bootstrap import read_bootstrap
from ._codec import StructureError, structure
from ._errors import ProtocolError, SerializerMismatchError, WorkerStartupError
from ._framing import FrameReader, FrameWriter, Kind, encode_frame
from ._handshake import recv_exactly, worker_authenticate
from ._protocol import decode_body, describe_exception, encode_body
from ._registry import MessageRegistry, MessageSpec
from ._serializers import JsonSerializer, Serializer
from ._streams import SocketStream
from ._util import DEFAULT_MAX_FRAME_SIZE, json_dumps, json_loads, raise_single
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
        watch_host(self.pipe_fd, info["socket"])
        exit_if_host_gone(self.pipe_fd, info["socket"])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(info["connect_timeout"])
        try:
            sock.connect(info["socket"])
            worker_authenticate(sock, bytes.fromhex(info["secret"]))
            size, kind, _ = _framing.HEADER.unpack(
                recv_exactly(sock, _framing.HEADER.size)
            )
            if kind != Kind.HELLO or size != info["hello_size"]:
                raise ProtocolError("the host's greeting is malformed")
            self.hello: dict[str, Any] = json_loads(recv_exactly(sock, size))
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):  # a host that died meanwhile, perhaps
                exit_if_host_gone(self.pipe_fd, info["socket"])
            raise
        self.sock = sock
        self.ready_sent = False

    def send_ready(self, **fields: Any) -> None:
        body = json_dumps(fields)
        self.sock.sendall(encode_frame(Kind.READY, 0, body, _framing.MAX_FRAME_LIMIT))
        self.ready_sent = True


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
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Serve the host until it closes the worker; the worker's blocking entry point.

    Runs the event loop of the backend the host asked for (asyncio or trio).

    Args:
        messages: The registry shared with the host.
        handlers: A handler for every message class of the registry; sync or
            async callables taking the message and returning its result.
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
        session, messages, handlers, serializer, max_frame_size, backend=backend
    )
    try:
        anyio.run(server.serve, backend=backend)
    except BaseExceptionGroup as group:
        raise_single(group)


async def serve_worker(
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    *,
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Like `run_worker`, inside an event loop the worker already runs."""
    session = (
        _session if _session is not None else await anyio.to_thread.run_sync(_connect)
    )
    server = _prepare(session, messages, handlers, serializer, max_frame_size)
    await server.serve()


def _prepare(
    session: _Session,
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
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
    return _Server(session, messages, handlers, serializer, max_frame_size)


class _Server:
    """Reads the host's frames and runs the handlers."""

    def __init__(
        self,
        session: _Session,
        messages: MessageRegistry,
        handlers: Mapping[type, Handler],
        serializer: Serializer,
        max_frame_size: int,
    ) -> None:
        self._session = session
        self._messages = messages
        self._handlers = {
            cls: (handler, inspect.iscoroutinefunction(handler))
            for cls, handler in handlers.items()
        }
        self._serializer = serializer
        self._max = max_frame_size
        self._running: dict[int, anyio.CancelScope] = {}
        self._writer: FrameWriter

    async def serve(self) -> None:
        stream = SocketStream(self._session.sock)
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
                logger.error("stopping: the host sent a bad frame (%s)", exc)
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
                    logger.warning("ignoring a frame of unknown kind %d", kind)

    def _decode(self, body: bytes, kind: str) -> tuple[MessageSpec, Any]:
        name, payload, _meta = decode_body(self._serializer, body)
        spec = self._messages.spec_named(name)
        if spec is None or spec.kind != kind:
            raise ProtocolError(f"unknown {kind} message type {name!r}")
        try:
            return spec, spec.structure(payload, "")
        except StructureError as exc:
            raise ProtocolError(f"invalid {name!r} message: {exc}") from None

    async def _on_request(self, tx: int, body: bytes, tg: TaskGroup) -> None:
        if tx in self._running:
            await self._reply_error(
                tx, "?", ProtocolError(f"duplicate tx {tx}"), protocol=True
            )
            return
        try:
            spec, message = self._decode(body, "request")
        except ProtocolError as exc:
            await self._reply_error(tx, "?", exc, protocol=True)
            return
        handler, is_async = self._handlers[spec.cls]
        if not is_async:
            # Sync handlers run right here, one at a time, in arrival order.
            try:
                result = handler(message)
                if inspect.isawaitable(result):  # an object with async __call__
                    result = await result
            except Exception as exc:
                await self._reply_error(tx, spec.name, exc)
            else:
                await self._reply(tx, spec.name, result)
            return
        scope = self._running[tx] = anyio.CancelScope()
        tg.start_soon(self._run_request, tx, spec.name, handler, message, scope)

    async def _run_request(
        self,
        tx: int,
        name: str,
        handler: Callable[[Any], Awaitable[Any]],
        message: Any,
        scope: anyio.CancelScope,
    ) -> None:
        try:
            with scope:
                try:
                    result = await handler(message)
                except Exception as exc:
                    if not scope.cancel_called:
                        await self._reply_error(tx, name, exc)
                else:
                    if not scope.cancel_called:  # else the host stopped waiting
                        await self._reply(tx, name, result)
        finally:
            del self._running[tx]

    async def _on_notification(self, body: bytes, tg: TaskGroup) -> None:
        try:
            spec, message = self._decode(body, "notification")
        except ProtocolError as exc:
            logger.error("dropping a notification: %s", exc)
            return
        handler, is_async = self._handlers[spec.cls]
        if is_async:
            tg.start_soon(self._run_notification, spec.name, handler, message)
        else:
            await self._run_notification(spec.name, handler, message)

    async def _run_notification(
        self, name: str, handler: Handler, message: Any
    ) -> None:
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("the handler of notification %r raised", name)

    async def _reply(self, tx: int, name: str, result: Any) -> None:
        try:
            frame = encode_frame(
                Kind.RESULT, tx, encode_body(self._serializer, name, result), self._max
            )
        except ProtocolError as exc:
            error = ProtocolError(f"result of {name!r}: {exc}")
            await self._reply_error(tx, name, error, protocol=True)
            return
        await self._send(frame)

    async def _reply_error(
        self, tx: int, name: str, exc: BaseException, *, protocol: bool = False
    ) -> None:
        payload = describe_exception(exc, protocol=protocol)
        try:
            body = encode_body(self._serializer, name, payload)
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
