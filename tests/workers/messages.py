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
    items: list[int] = attrs.field(factory=list)
    label: str | None = None


@attrs.frozen
class Echo(Request[Echoed]):
    """Async handler: answers its fields unchanged."""

    value: int
    data: bytes = b""
    items: list[int] = attrs.field(factory=list)
    label: str | None = None


@attrs.frozen
class Add(Request[int]):
    a: int
    b: int


@attrs.frozen
class Fail(Request[None]):
    """Sync handler: raises what ``kind`` names: ``"zero"`` a ZeroDivisionError,
    ``"oserror"`` a FileNotFoundError(ENOENT, ``text``), else ValueError(``text``)."""

    kind: str = "value"
    text: str = "boom"


@attrs.frozen
class Sleep(Request[str]):
    seconds: float
    marker: str = ""


@attrs.frozen
class GetStartup(Request[dict[str, object]]):
    pass


@attrs.frozen
class Hold(Request[int]):
    """Async handler: answers ``value`` once a `Release` has come."""

    value: int = 0


@attrs.frozen
class Release(Notification):
    """Sync handler: lets every `Hold`, running or to come, answer."""


@attrs.frozen
class SeenMeta(Request[dict[str, str]]):
    """Async handler: the meta of this request, as the ``ext_worker`` launch
    variant's middleware recorded it (empty without that middleware)."""


@attrs.frozen
class Guarded(Request[int]):
    """Sync handler: answers ``value``. The ``ext_worker`` launch variant's
    middleware refuses negative values before the handler runs."""

    value: int


#: What the ``tr_worker`` launch variant prints at import time, before its handshake.
IMPORT_PRINT = "tr_worker: print() at import time"


@attrs.frozen
class Print(Request[int]):
    """Sync handler: writes ``flood`` bytes of ``o`` lines to stdout and as many
    of ``e`` lines to stderr, then ``stdout`` and ``stderr`` to their streams and
    ``raw`` with ``os.write(1)``, each flushed; answers the bytes written."""

    stdout: str = ""
    stderr: str = ""
    raw: str = ""
    flood: int = 0


@attrs.frozen
class View:
    """What a worker process sees of itself."""

    pid: int
    #: ``__name__`` and ``__file__`` of the main module, ``sys.argv``, ``sys.path[0]``.
    name: str
    file: str
    argv: list[str]
    path0: str
    #: ``tr_sibling.VALUE`` if that module imports by its bare name, else None.
    sibling: str | None
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
    channel_inheritable: list[bool]
    #: The fd of the worker's bootstrap pipe (its read end).
    pipe_fd: int
    #: ``/proc/self/fd``: fd number -> link target.
    fds: dict[str, str]
    #: ``sys.stdin.read()`` and ``os.read(0, 16)``.
    stdin: str
    stdin_raw: bytes
    #: The event loop: "asyncio", "trio" or "uvloop".
    loop: str


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
    Hold,
    Release,
    SeenMeta,
    Guarded,
    Print,
    Look,
    Remember,
    Recall,
    Work,
    Progress,
    Count,
    CountState,
)
