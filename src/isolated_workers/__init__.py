"""Run code in isolated worker processes and talk to them with typed messages.

Works on Trio and asyncio, in host and worker alike.

The host's side (`open_worker` and what it uses) is imported on first use, so
that a worker process, which needs only `run_worker`, starts faster.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    ConnectionClosed,
    ConnectionLost,
    Exited,
    ProtocolError,
    RemoteError,
    SerializerMismatchError,
    ShutdownReason,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerError,
    WorkerStartupError,
    WorkerTimeoutError,
)
from ._messages import Event, Notification, Request, StreamRequest
from ._policies import Reject, Retry, ShutdownPolicy
from ._registry import MessageRegistry, define_messages
from ._timeouts import Timeouts
from ._wire._middleware import Direction, Envelope, Middleware
from ._wire._serializers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
)
from ._worker._api import emit, get_startup_data, run_worker, serve_worker

if TYPE_CHECKING:
    from ._host._client import WorkerClient, WorkerState, WorkerStats
    from ._host._open import WorkerOptions, open_worker, start_worker
    from ._host._pool import WorkerPool, open_worker_pool
    from ._host._transport import PipeTransport, UnixSocketTransport

#: The host's names, and the module each comes from.
_HOST_SIDE = {
    "WorkerClient": "._host._client",
    "WorkerState": "._host._client",
    "WorkerStats": "._host._client",
    "WorkerPool": "._host._pool",
    "open_worker_pool": "._host._pool",
    "WorkerOptions": "._host._open",
    "open_worker": "._host._open",
    "start_worker": "._host._open",
    "PipeTransport": "._host._transport",
    "UnixSocketTransport": "._host._transport",
}

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "Direction",
    "Envelope",
    "Event",
    "Exited",
    "JsonSerializer",
    "MessageRegistry",
    "Middleware",
    "MsgpackSerializer",
    "Notification",
    "PickleSerializer",
    "PipeTransport",
    "ProtocolError",
    "Reject",
    "RemoteError",
    "Request",
    "Retry",
    "Serializer",
    "SerializerMismatchError",
    "ShutdownPolicy",
    "ShutdownReason",
    "StreamRequest",
    "Timeouts",
    "UnixSocketTransport",
    "WorkerClient",
    "WorkerClosedError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerOptions",
    "WorkerPool",
    "WorkerStartupError",
    "WorkerState",
    "WorkerStats",
    "WorkerTimeoutError",
    "define_messages",
    "emit",
    "get_startup_data",
    "open_worker",
    "open_worker_pool",
    "run_worker",
    "serve_worker",
    "start_worker",
]


def _public(obj: Any) -> Any:
    # Tracebacks and docs say isolated_workers.X, not isolated_workers._private.X.
    if getattr(obj, "__module__", "").startswith(f"{__name__}._"):
        with contextlib.suppress(AttributeError, TypeError):
            obj.__module__ = __name__
    return obj


def __getattr__(name: str) -> Any:
    if name not in _HOST_SIDE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for other, where in _HOST_SIDE.items():  # the whole host side at once
        globals()[other] = _public(
            getattr(importlib.import_module(where, __name__), other)
        )
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _publish_eager_names() -> None:
    for name in __all__:
        if name not in _HOST_SIDE:
            _public(globals()[name])


_publish_eager_names()
del _publish_eager_names
