"""The message contract the test workers share with the tests."""

from __future__ import annotations

import attrs

from isolated_workers import (
    Event,
    Notification,
    Request,
    StreamRequest,
    define_messages,
)


@attrs.frozen
class Echoed:
    value: int
    data: bytes = b""


@attrs.frozen
class Echo(Request[Echoed]):
    value: int
    data: bytes = b""


@attrs.frozen
class Add(Request[int]):
    a: int
    b: int


@attrs.frozen
class Fail(Request[None]):
    kind: str
    text: str = "boom"


@attrs.frozen
class Sleep(Request[str]):
    seconds: float
    marker: str = ""


@attrs.frozen
class GetStartup(Request[dict[str, object]]):
    pass


@attrs.frozen
class View:
    """What a worker process sees of itself."""

    pid: int
    #: Raw ``/proc/self/cmdline`` (NUL-separated arguments).
    cmdline: bytes
    #: Raw ``/proc/self/environ``: the environment the process was started with.
    proc_environ: bytes
    #: ``os.environ`` when the request is handled.
    environ: dict[str, str]
    #: The startup data the worker received, as its ``repr``.
    startup_data: str
    #: "pipe" or "socket": the worker's channel to its host.
    transport: str
    #: The channel's fds: (read, write) for pipes, (socket,) for a socket.
    channel_fds: list[int]
    #: The fd of the worker's bootstrap pipe (its read end).
    pipe_fd: int
    #: ``/proc/self/fd``: fd number -> link target.
    fds: dict[str, str]


@attrs.frozen
class Look(Request[View]):
    """Sync handler: the worker's `View` of itself."""


@attrs.frozen
class Remember(Notification):
    value: int


@attrs.frozen
class Recall(Request[list[int]]):
    pass


@attrs.frozen
class Progress(Event):
    done: int
    total: int


@attrs.frozen
class Unregistered(Event):
    """Not in the registry: emitting it fails."""


@attrs.frozen
class Work(Request[int]):
    """Emit ``steps`` `Progress` events (and an `Unregistered` one if ``stray``),
    then answer ``steps``."""

    steps: int
    stray: bool = False


@attrs.frozen
class Count(StreamRequest[int]):
    """Yield 0 .. ``n`` - 1; raise before item ``fail_at``, or exit the
    process before item ``crash_at``."""

    n: int
    fail_at: int = -1
    crash_at: int = -1


@attrs.frozen
class CountState(Request[list[int]]):
    """How many items the `Count` handlers yielded, and how many of them have
    been closed."""


Messages = define_messages(
    Echo,
    Add,
    Fail,
    Sleep,
    GetStartup,
    Look,
    Remember,
    Recall,
    Work,
    Progress,
    Count,
    CountState,
)
