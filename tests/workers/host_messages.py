"""The message contract of ``tests/workers/host_worker.py``, used by test_host.py."""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import Notification, Request, define_messages

# --- plain values ----------------------------------------------------------


@attrs.frozen
class Echoed:
    value: int
    data: bytes = b""


@attrs.frozen
class Echo(Request[Echoed]):
    """Async handler: returns ``value`` and ``data`` unchanged."""

    value: int
    data: bytes = b""


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
class GetPid(Request[int]):
    """Sync handler: the worker's ``os.getpid()``."""


# --- recording (sync handlers run in arrival order) ------------------------


@attrs.frozen
class Record(Notification):
    """Sync handler: appends ``value`` to the worker's record."""

    value: int


@attrs.frozen
class Store(Request[int]):
    """Sync handler: appends ``value`` to the record, returns ``len(data)``."""

    value: int
    data: bytes = b""


@attrs.frozen
class Records(Request[list[int]]):
    """Sync handler: the values recorded so far."""


# --- concurrency and cancellation ------------------------------------------


@attrs.frozen
class Rendezvous(Request[int]):
    """Async handler: waits until ``parties`` handlers of ``group`` have entered."""

    group: str
    parties: int


@attrs.frozen
class Block(Request[str]):
    """Async handler: writes ``<marker>.entered``, waits forever; its ``finally``
    writes ``<marker>.exited``."""

    marker: str


@attrs.frozen
class Hold(Request[None]):
    """Async handler: counted in `Active` while it waits forever."""


@attrs.frozen
class Active(Request[int]):
    """Sync handler: how many `Hold` handlers are running."""


@attrs.frozen
class Nap(Request[str]):
    """Async handler: sleeps ``seconds`` and returns ``"rested"``."""

    seconds: float


@attrs.frozen
class Stall(Request[str]):
    """Sync handler (uncancellable): writes ``<marker>.entered``, then blocks the
    worker until the file ``<marker>.release`` exists."""

    marker: str


@attrs.frozen
class Hang(Notification):
    """Sync handler: ignores SIGTERM, writes ``marker``, blocks the worker forever."""

    marker: str


# --- errors ----------------------------------------------------------------


class HostCustomError(Exception):
    """An exception type that is not built in; it carries a ``code``."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.code = code


@attrs.frozen
class Explode(Request[None]):
    """Sync handler ``explode``: raises the exception named by ``kind``:
    ``"zero"``, ``"oserror"``, ``"custom"`` or ``"long"`` (a ValueError of
    3000 times ``text``)."""

    kind: str
    text: str = "boom"


@attrs.frozen
class Big(Request[bytes]):
    """Async handler: returns ``size`` bytes."""

    size: int


# --- startup data ----------------------------------------------------------


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
class GetStartupRaw(Request[dict[str, Any]]):
    """Sync handler: ``get_startup_data()`` as the worker sees it."""


@attrs.frozen
class GetStartupAs(Request[StartupReport]):
    """Sync handler: ``get_startup_data(as_type=StartupBundle)`` and the types of
    what it built."""


HostMessages = define_messages(
    Echo,
    Compose,
    GetPid,
    Record,
    Store,
    Records,
    Rendezvous,
    Block,
    Hold,
    Active,
    Nap,
    Stall,
    Hang,
    Explode,
    Big,
    GetStartupRaw,
    GetStartupAs,
)
