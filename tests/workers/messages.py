"""The plain contract: the messages of the plain worker and its launch variants.

The plain worker is ``tests/workers/echo.py``, with the handlers of
``echo_handlers.py``; the fault contract (``fault_messages.py``) holds all of
these too. Each docstring says whether its handler is sync (it runs
on the worker's event loop, blocking it, in arrival order) or async. A marker is
a path a handler appends a line ``f"{pid}\\n"`` to, usually a test's `Beacon`;
a release file is a plain file a handler polls for.
"""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import (
    Event,
    Notification,
    Request,
    StreamRequest,
    define_messages,
)

# --- values ---------------------------------------------------------------------


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
    """Sync handler: ``a + b``."""

    a: int
    b: int


@attrs.frozen
class Point:
    x: float
    y: float


@attrs.frozen
class Composite:
    name: str
    points: list[Point]
    by_name: dict[str, Point]
    pair: tuple[int, str]
    blob: bytes
    maybe: int | None
    flag: bool
    nothing: None


@attrs.frozen
class Compose(Request[Composite]):
    """Async handler: builds a `Composite` from ``seed``."""

    seed: int


@attrs.frozen
class Big(Request[bytes]):
    """Async handler: answers ``size`` bytes."""

    size: int


@attrs.frozen
class Ping(Request[int]):
    """Sync handler: the worker's pid."""


# --- records (sync handlers: a later request sees an earlier one's effect) -----


@attrs.frozen
class Remember(Notification):
    """Sync handler: appends ``value`` to the worker's record."""

    value: int


@attrs.frozen
class Store(Request[int]):
    """Sync handler: appends ``value`` to the record, answers ``len(data)``."""

    value: int
    data: bytes = b""


@attrs.frozen
class Recall(Request[list[int]]):
    """Sync handler: the values recorded so far."""


# --- errors -----------------------------------------------------------------------


class CustomError(Exception):
    """An exception type that is not built in; it carries a ``code``."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.code = code


@attrs.frozen
class Fail(Request[None]):
    """Sync handler: raises what ``kind`` names: ``"zero"`` a ZeroDivisionError,
    ``"oserror"`` a FileNotFoundError(ENOENT, ``text``), ``"custom"`` a
    `CustomError` with code ``"E42"``, ``"long"`` a ValueError of 3000 times
    ``text`` (too large for a small frame limit), else ValueError(``text``)."""

    kind: str = "value"
    text: str = "boom"


# --- waiting, blocking ------------------------------------------------------------


@attrs.frozen
class Sleep(Request[str]):
    """Async handler: sleeps ``seconds``, answers ``"slept"``; marks ``marker``
    when it ends, cancelled or not."""

    seconds: float
    marker: str = ""


@attrs.frozen
class Hold(Request[int]):
    """Async handler: answers ``value`` once a `Release` of its ``key`` has come,
    and is counted by `Running` until then. Marks ``marker`` on entry and
    ``<marker>.exited`` when it ends (cancelled, most often)."""

    marker: str = ""
    value: int = 0
    key: str = ""


@attrs.frozen
class Release(Notification):
    """Sync handler: lets every `Hold` of ``key``, running or to come, answer."""

    key: str = ""


@attrs.frozen
class Running(Request[int]):
    """Sync handler: how many `Hold` handlers are running."""


@attrs.frozen
class Gather(Request[int]):
    """Async handler: waits until ``parties`` `Gather` handlers of ``group`` have
    entered, then answers ``2 * x + 1``."""

    x: int
    parties: int
    group: str = "g"


@attrs.frozen
class Stall(Request[str]):
    """Sync handler (it blocks the event loop): marks ``<marker>.entered``, waits
    until the release file ``<marker>.release`` exists (20 s at most), answers
    ``"released"``."""

    marker: str


@attrs.frozen
class Hang(Notification):
    """Sync handler: ignores SIGTERM, marks ``marker``, blocks the worker forever."""

    marker: str


# --- startup data -----------------------------------------------------------------


@attrs.frozen
class GetStartup(Request[dict[str, Any]]):
    """Sync handler: ``{"startup": get_startup_data()}``."""


@attrs.frozen
class Inner:
    level: int
    tags: list[str]


@attrs.frozen
class StartupConfig:
    name: str
    inner: Inner
    blob: bytes


@attrs.frozen
class StartupBundle:
    plain: dict[str, Any]
    config: StartupConfig
    blob: bytes


@attrs.frozen
class StartupReport:
    bundle: StartupBundle
    blob_type: str
    config_blob_type: str
    inner_type: str


@attrs.frozen
class GetStartupAs(Request[StartupReport]):
    """Sync handler: ``get_startup_data(as_type=StartupBundle)`` and the types of
    what it built."""


# --- for the middleware of the ext_worker launch variant --------------------------


@attrs.frozen
class SeenMeta(Request[dict[str, str]]):
    """Async handler: the meta of this request, as the ``ext_worker`` launch
    variant's middleware recorded it (empty without that middleware)."""


@attrs.frozen
class Guarded(Request[int]):
    """Sync handler: answers ``value``. The ``ext_worker`` launch variant's
    middleware refuses negative values before the handler runs."""

    value: int


# --- the process ------------------------------------------------------------------

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


# --- events and streams -------------------------------------------------------------


@attrs.frozen
class Progress(Event):
    done: int
    total: int


@attrs.frozen
class Unregistered(Event):
    """Not in the registry: emitting it fails."""


@attrs.frozen
class Work(Request[int]):
    """Async handler: emits ``steps`` `Progress` events (and an `Unregistered`
    one if ``stray``), then answers ``steps``."""

    steps: int
    stray: bool = False


@attrs.frozen
class Count(StreamRequest[int]):
    """Async generator: yields 0 .. ``n`` - 1; raises before item ``fail_at``, or
    exits the process before item ``crash_at``."""

    n: int
    fail_at: int = -1
    crash_at: int = -1


@attrs.frozen
class CountState(Request[list[int]]):
    """Sync handler: how many items the `Count` handlers yielded, and how many of
    them have been closed."""


Messages = define_messages(
    Echo,
    Add,
    Compose,
    Big,
    Ping,
    Remember,
    Store,
    Recall,
    Fail,
    Sleep,
    Hold,
    Release,
    Running,
    Gather,
    Stall,
    Hang,
    GetStartup,
    GetStartupAs,
    SeenMeta,
    Guarded,
    Print,
    Look,
    Work,
    Progress,
    Count,
    CountState,
)
