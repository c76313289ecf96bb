"""`Timeouts`: how long each stage of a worker's life may take."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["Timeouts"]


def _seconds(value: float | None) -> float:
    if value is None:
        return math.inf
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"timeouts must be positive numbers of seconds, got {value!r}")
    return seconds


def _per_message(
    value: Mapping[Any, float | None] | None,
) -> Mapping[type, float]:
    return MappingProxyType({cls: _seconds(s) for cls, s in (value or {}).items()})


@attrs.frozen
class Timeouts:
    """Time limits, in seconds; `None` means no limit.

    Args:
        startup: From spawn until the worker is ready; past it `open_worker`
            raises `WorkerStartupError` and the process is killed.
        connect: How long a worker waits for its host during the handshake
            before it gives up and exits.
        message: The default limit of one request; past it `WorkerClient.send` raises
            `WorkerTimeoutError` and the handler is cancelled in the worker.
        shutdown: How long `WorkerClient.aclose` waits for the worker to exit
            after asking it to stop, before SIGTERM, and again before SIGKILL.
        per_message: Overrides of ``message`` by request class.
    """

    startup: float = attrs.field(default=10.0, converter=_seconds)
    connect: float = attrs.field(default=30.0, converter=_seconds)
    message: float = attrs.field(default=300.0, converter=_seconds)
    shutdown: float = attrs.field(default=5.0, converter=_seconds)
    per_message: Mapping[type, float] = attrs.field(
        factory=lambda: MappingProxyType({}),
        converter=_per_message,
        hash=False,
    )

    @classmethod
    def coerce(cls, value: Timeouts | float | None) -> Timeouts:
        """``None`` -> the defaults; a number -> that many seconds for startup,
        connect and message."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        return cls(startup=value, connect=value, message=value)

    def for_message(self, cls: type) -> float:
        """The limit for one request of class ``cls``."""
        return self.per_message.get(cls, self.message)
