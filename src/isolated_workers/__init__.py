"""Run code in isolated worker processes and talk to them with typed messages.

Works on Trio and asyncio, in host and worker alike.
"""

from __future__ import annotations

import contextlib

from ._client import WorkerClient, WorkerState
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
from ._host import WorkerOptions, open_worker, start_worker
from ._messages import Notification, Request
from ._middleware import Direction, Envelope, Middleware
from ._policies import Reject, Retry, ShutdownPolicy
from ._registry import MessageRegistry, define_messages
from ._serializers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
)
from ._timeouts import Timeouts
from ._transport import PipeTransport, UnixSocketTransport
from ._worker import get_startup_data, run_worker, serve_worker

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "Direction",
    "Envelope",
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
    "Timeouts",
    "UnixSocketTransport",
    "WorkerClient",
    "WorkerClosedError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerOptions",
    "WorkerStartupError",
    "WorkerState",
    "WorkerTimeoutError",
    "define_messages",
    "get_startup_data",
    "open_worker",
    "run_worker",
    "serve_worker",
    "start_worker",
]


def _fix_module_names() -> None:
    # Tracebacks and docs say isolated_workers.X, not isolated_workers._private.X.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith(f"{__name__}._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_fix_module_names()
del _fix_module_names
