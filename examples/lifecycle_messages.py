"""The contract of examples/lifecycle.py: a worker that keeps a running total,
answers health checks, and can be made to hang."""

from __future__ import annotations

import attrs

from isolated_workers import Notification, Request, define_messages


@attrs.frozen
class LifecycleConfig:
    """Startup data: the worker's name, and the file it writes when it exits."""

    name: str
    exit_file: str


@attrs.frozen
class Health:
    """The answer to a `Ping`."""

    pid: int
    requests: int  # requests this worker has answered, this one included


@attrs.frozen
class Ping(Request[Health]):
    """A health check: answered at once by a worker that is not stuck."""


@attrs.frozen
class Add(Request[int]):
    """Add ``amount`` to the worker's running total; answer the new total."""

    amount: int


@attrs.frozen
class Hang(Notification):
    """Block the worker for ``seconds``, as a stuck C extension would."""

    seconds: float


Messages = define_messages(Ping, Add, Hang)
