"""The worker's public side: `run_worker`, `serve_worker` and `get_startup_data`.

Kept import-light: a worker imports only what it uses, and the event loop of
the backend its host asked for.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast, overload

import anyio

from .._errors import SerializerMismatchError, WorkerStartupError
from .._messages import Event
from .._registry import MessageRegistry
from .._util import (
    DEFAULT_MAX_FRAME_SIZE,
    raise_single,
)
from .._wire._codec import structure
from .._wire._middleware import Middleware
from .._wire._serializers import JsonSerializer, Serializer
from ._server import Handler, Server, serving
from ._session import Session, connect, current

__all__ = ["emit", "get_startup_data", "run_worker", "serve_worker"]

T = TypeVar("T")


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
        ValueError: The data does not fit ``as_type``.
    """
    data = connect().hello.get("startup_data")
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
    session = connect()
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
        # Only what ends a process gets here (a handler's SystemExit, say),
        # nested as deep as the task groups it crossed: unwrap it whole, so
        # that it exits the worker as it would a plain script.
        nested: BaseExceptionGroup[BaseException] = group
        while len(nested.exceptions) == 1 and isinstance(
            inner := nested.exceptions[0], BaseExceptionGroup
        ):
            nested = cast("BaseExceptionGroup[BaseException]", inner)
        raise_single(nested)


async def serve_worker(
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    *,
    middleware: Sequence[Middleware] = (),
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Like `run_worker`, inside an event loop the worker already runs."""
    session = current()
    if session is None:  # the handshake blocks: not in the event loop's thread
        session = await anyio.to_thread.run_sync(connect)
    server = _prepare(
        session, messages, handlers, middleware, serializer, max_frame_size
    )
    await server.serve()


def _prepare(
    session: Session,
    messages: MessageRegistry,
    handlers: Mapping[type, Handler],
    middleware: Sequence[Middleware],
    serializer: Serializer | None,
    max_frame_size: int,
    *,
    backend: str | None = None,
) -> Server:
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
    elif (mismatch := check_handlers(messages, handlers)) is not None:
        problem = WorkerStartupError(mismatch)
    if problem is not None:
        session.send_ready(ok=False, error=type(problem).__name__, message=str(problem))
        raise problem
    session.send_ready(ok=True)
    return Server(
        session, messages, handlers, serializer, max_frame_size, tuple(middleware)
    )


def check_handlers(
    messages: MessageRegistry, handlers: Mapping[type, Handler]
) -> str | None:
    """What is wrong with ``handlers`` for ``messages``, or `None`."""
    # Events go the other way: the host handles them, not the worker.
    handled = [cls for cls in messages if messages.spec_for(cls).kind != "event"]
    missing = [cls.__qualname__ for cls in handled if cls not in handlers]
    unknown = [
        getattr(c, "__qualname__", repr(c)) for c in handlers if c not in handled
    ]
    not_generators = [
        cls.__qualname__
        for cls in handled
        if messages.spec_for(cls).kind == "stream"
        and cls in handlers
        and not inspect.isasyncgenfunction(handlers[cls])
    ]
    if missing:
        return f"the worker has no handler for: {', '.join(missing)}"
    if not_generators:
        return (
            "the handlers of stream requests must be async generators: "
            f"{', '.join(not_generators)}"
        )
    if unknown:
        return (
            "the worker has handlers for messages not in the registry "
            f"(or for events, which the host handles): {', '.join(unknown)}"
        )
    return None


async def emit(event: Event) -> None:
    """Send ``event`` to the host, which hands it to its ``on_event`` callback.

    Call it from a handler (or a task a handler started) while it works: to
    report progress, say. It waits only while the connection's buffer is
    full, so a host that does not keep up slows the worker down rather than
    its memory up.

    Raises:
        RuntimeError: Not called in a worker's handler.
        TypeError: ``event`` is not an `Event` of the worker's registry.
    """
    server = serving.get()
    if server is None:
        raise RuntimeError("emit() works only in the handlers of a worker")
    await server.emit(event)
