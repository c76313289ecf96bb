"""Helpers for testing code that uses isolated-workers.

`open_in_process_worker` gives a real `~isolated_workers.WorkerClient` whose
worker runs as a task of the test's own event loop: the real serializer,
framing and middleware on both sides, and no process, so host-side logic is
tested in milliseconds (and on Trio's virtual clock, where a test wants it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .._host._client import WorkerClient
from .._policies import ShutdownPolicy, Strategy
from .._registry import MessageRegistry
from .._timeouts import Timeouts
from .._util import DEFAULT_MAX_FRAME_SIZE
from .._wire._middleware import Middleware
from .._wire._serializers import Serializer
from ._inprocess import open_in_process

__all__ = ["open_in_process_worker"]


@asynccontextmanager
async def open_in_process_worker(
    messages: MessageRegistry,
    handlers: Mapping[type, Callable[[Any], Any]],
    *,
    startup_data: Any = None,
    timeouts: Timeouts | float | None = None,
    unexpected_shutdown: ShutdownPolicy | Strategy | None = None,
    middleware: Sequence[Middleware] = (),
    worker_middleware: Sequence[Middleware] = (),
    serializer: Serializer | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    tx_id_factory: Callable[[], int] | None = None,
    on_event: Mapping[type, Callable[[Any], Any]] | None = None,
) -> AsyncGenerator[WorkerClient]:
    """Serve ``handlers`` in this event loop and yield a client of them.

    The client is the one `~isolated_workers.open_worker` gives, with the
    same options; the worker is the server `~isolated_workers.run_worker`
    runs, over a socket pair. What differs: no process is started, so a sync
    handler blocks the test's event loop while it runs;
    `~isolated_workers.get_startup_data` works in the handlers;
    `~isolated_workers.WorkerClient.pid` is the test's own; and killing the
    worker (`~isolated_workers.WorkerClient.run_sync` with
    ``kill_on_cancel``) cancels its task, which the client sees as a crash.

    Args:
        messages: The registry.
        handlers: A handler for every message class of the registry.
        startup_data: What `~isolated_workers.get_startup_data` returns in the handlers.
        timeouts: As for `~isolated_workers.open_worker`.
        unexpected_shutdown: As for `~isolated_workers.open_worker`.
        middleware: The host's middleware, as for `~isolated_workers.open_worker`.
        worker_middleware: The worker's, as for `~isolated_workers.run_worker`.
        serializer: Used on both sides (default: `~isolated_workers.JsonSerializer`).
        max_frame_size: As for `~isolated_workers.open_worker`.
        tx_id_factory: As for `~isolated_workers.open_worker`.
        on_event: As for `~isolated_workers.open_worker`.

    Raises:
        TypeError: The handlers do not fit the registry, as
            `~isolated_workers.run_worker` would say: one is missing, is for
            a class of another registry, or is not an async generator for a
            stream request.
    """
    async with open_in_process(
        messages,
        handlers,
        worker_middleware=worker_middleware,
        startup_data=startup_data,
        timeouts=timeouts,
        unexpected_shutdown=unexpected_shutdown,
        middleware=middleware,
        serializer=serializer,
        max_frame_size=max_frame_size,
        tx_id_factory=tx_id_factory,
        on_event=on_event,
    ) as client:
        yield client
