"""What happens to pending requests when a worker stops unexpectedly."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["Reject", "Retry", "ShutdownPolicy", "Strategy"]


@attrs.frozen
class Reject:
    """Fail the request with `WorkerCrashedError` (the default)."""

    @property
    def max_attempts(self) -> int:
        """How many times a request may be sent in all: once."""
        return 1


@attrs.frozen
class Retry:
    """Respawn the worker and send the request again, at most ``attempts`` times.

    A request that crashes its worker every time is therefore sent
    ``attempts + 1`` times in all, then fails with `WorkerCrashedError`.
    Retry only requests whose handlers are safe to run twice.
    """

    attempts: int = attrs.field(
        default=1,
        validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)],
    )

    @property
    def max_attempts(self) -> int:
        """How many times a request may be sent in all: ``attempts + 1``."""
        return self.attempts + 1


Strategy = Reject | Retry


def _strategies(value: Mapping[Any, Strategy] | None) -> Mapping[type, Strategy]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class ShutdownPolicy:
    """A strategy for all requests, with overrides by request class::

        ShutdownPolicy(default=Reject(), per_message={Resize: Retry(attempts=3)})

    When the default is `Retry`, a worker that crashes while idle is respawned
    too, so the client stays usable; otherwise it is respawned only to retry a
    pending request.
    """

    default: Strategy = attrs.field(factory=Reject)
    per_message: Mapping[type, Strategy] = attrs.field(
        factory=lambda: MappingProxyType({}), converter=_strategies, hash=False
    )

    @classmethod
    def coerce(cls, value: ShutdownPolicy | Strategy | None) -> ShutdownPolicy:
        """`None` -> reject everything; a strategy -> that strategy for all."""
        if value is None:
            return cls()
        if isinstance(value, ShutdownPolicy):
            return value
        return cls(default=value)

    def for_message(self, cls: type) -> Strategy:
        """The strategy for requests of class ``cls``."""
        return self.per_message.get(cls, self.default)

    def max_attempts(self, cls: type) -> int:
        """How many times a request of class ``cls`` may be sent in all."""
        return self.for_message(cls).max_attempts
