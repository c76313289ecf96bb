"""Middleware on host and worker, and the host's ``tx_id_factory``.

What crosses the process boundary (meta both ways, replaced payloads, the
transaction ids on the wire) is checked against real workers on all four
pairings; what the host alone decides (its middleware raising or misbehaving,
error replies, refused ids) runs on the in-process worker, with the same
worker middleware, from ``tests/workers/ext_worker.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import attrs
import pytest

from isolated_workers import (
    Direction,
    Envelope,
    Middleware,
    ProtocolError,
    RemoteError,
    WorkerClient,
    open_worker,
)
from isolated_workers.testing import open_in_process_worker
from tests._util import GUARD
from tests.workers import echo_handlers
from tests.workers.ext_worker import doubling_middleware, worker_middleware
from tests.workers.messages import (
    Echo,
    Echoed,
    Fail,
    Guarded,
    Hold,
    Messages,
    Recall,
    Release,
    Remember,
    SeenMeta,
)


@asynccontextmanager
async def ext_worker(
    worker_backend: str,
    *,
    worker_middleware: bool = True,
    middleware: Sequence[Middleware] = (),
    **options: Any,
) -> AsyncGenerator[WorkerClient]:
    async with open_worker(
        "tests.workers.ext_worker",
        messages=Messages,
        backend=worker_backend,
        startup_data={"middleware": worker_middleware},
        middleware=middleware,
        **options,
    ) as client:
        yield client


@asynccontextmanager
async def in_process(
    *, middleware: Sequence[Middleware] = (), **options: Any
) -> AsyncGenerator[WorkerClient]:
    """The plain handlers with ext_worker's middleware, in the test's process."""
    echo_handlers.reset()
    async with open_in_process_worker(
        Messages,
        echo_handlers.HANDLERS,
        middleware=middleware,
        worker_middleware=[worker_middleware, doubling_middleware],
        **options,
    ) as client:
        yield client


class Recorder:
    """A host middleware that records what it sees and may stamp meta."""

    def __init__(self, name: str, log: list[tuple[str, str, str]]) -> None:
        self.name = name
        self.log = log
        self.envelopes: list[tuple[Direction, Envelope]] = []

    def __call__(self, envelope: Envelope, direction: Direction) -> Envelope | None:
        self.log.append((self.name, direction, envelope.kind))
        self.envelopes.append((direction, envelope))
        if direction == "outgoing":
            return attrs.evolve(envelope, meta={**envelope.meta, self.name: "1"})
        return None


async def test_meta_crosses_both_ways_in_list_order(
    anyio_backend: object, worker_backend: str
) -> None:
    """Host middleware run in list order both ways; meta reaches the worker's
    middleware, and the worker's reply meta reaches the host's."""
    log: list[tuple[str, str, str]] = []
    first, second = Recorder("first", log), Recorder("second", log)
    with anyio.fail_after(GUARD):
        async with ext_worker(worker_backend, middleware=[first, second]) as client:
            seen = await client.send(SeenMeta())
    assert seen == {"first": "1", "second": "1"}
    assert log == [
        ("first", "outgoing", "request"),
        ("second", "outgoing", "request"),
        ("first", "incoming", "result"),
        ("second", "incoming", "result"),
    ]
    (_, out), (_, back) = first.envelopes
    assert out.type == back.type == "SeenMeta"
    assert out.tx == back.tx > 0
    assert out.payload == SeenMeta()
    assert back.payload == {"first": "1", "second": "1"}
    assert back.meta == {"signed": "worker", "kind": "result", "tx": str(out.tx)}


async def test_middleware_may_replace_payloads(
    anyio_backend: object, worker_backend: str
) -> None:
    """A returned envelope replaces the message on the way out and the result
    on the way in; the worker's async middleware replaces it there too."""

    def host(envelope: Envelope, direction: Direction) -> Envelope | None:
        if direction == "outgoing":
            return attrs.evolve(envelope, payload=Guarded(envelope.payload.value + 1))
        return attrs.evolve(envelope, payload=envelope.payload * 10)

    with anyio.fail_after(GUARD):
        async with ext_worker(worker_backend, middleware=[host]) as client:
            # (4 + 1) doubled by the worker's middleware, then times 10 here.
            assert await client.send(Guarded(4)) == 100


async def test_async_host_middleware(anyio_backend: object) -> None:
    """Coroutine functions are awaited, in both directions."""
    seen: list[str] = []

    async def host(envelope: Envelope, direction: Direction) -> Envelope | None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"{direction} {envelope.kind}")
        return None

    with anyio.fail_after(GUARD):
        async with in_process(middleware=[host]) as client:
            assert await client.send(Guarded(3)) == 6
            await client.send(Remember(1))
    assert seen == ["outgoing request", "incoming result", "outgoing notification"]


async def test_worker_middleware_raising_fails_that_request_only(
    anyio_backend: object,
) -> None:
    """The worker's middleware refuses one request: that caller gets the error,
    a request in flight alongside it and later ones are unaffected."""
    with anyio.fail_after(GUARD):
        async with in_process() as client:
            results: dict[str, object] = {}

            async def good() -> None:
                results["good"] = await client.send(Echo(1, b"\x00", [1, 2]))

            async def bad() -> None:
                with pytest.raises(PermissionError) as caught:
                    await client.send(Guarded(-1))
                results["bad"] = caught.value

            async with anyio.create_task_group() as tg:
                tg.start_soon(good)
                tg.start_soon(bad)
            assert results["good"] == Echoed(1, b"\x00", [1, 2])
            error = results["bad"]
            assert isinstance(error, RemoteError)
            assert "negative values are refused" in str(error)
            assert await client.send(Guarded(2)) == 4
            assert client.is_active


async def test_host_middleware_raising_outgoing_writes_nothing(
    anyio_backend: object,
) -> None:
    """An outgoing middleware that raises fails that send with its own error;
    nothing reaches the worker and the connection lives."""

    def refuse_notes(envelope: Envelope, direction: Direction) -> None:
        if direction == "outgoing" and envelope.payload == Remember(13):
            raise LookupError("unlucky note")

    with anyio.fail_after(GUARD):
        async with in_process(middleware=[refuse_notes]) as client:
            await client.send(Remember(1))
            with pytest.raises(LookupError, match="unlucky note"):
                await client.send(Remember(13))
            await client.send(Remember(2))
            assert await client.send(Recall()) == [1, 2]


async def test_host_middleware_raising_incoming_fails_that_call_only(
    anyio_backend: object,
) -> None:
    """An incoming middleware that raises fails the call whose reply it saw."""

    def picky(envelope: Envelope, direction: Direction) -> None:
        if direction == "incoming" and envelope.payload == 14:
            raise ArithmeticError("the host does not like 14")

    with anyio.fail_after(GUARD):
        async with in_process(middleware=[picky]) as client:
            with pytest.raises(ArithmeticError, match="does not like 14"):
                await client.send(Guarded(7))
            assert await client.send(Guarded(8)) == 16


async def test_error_replies_pass_through_middleware(anyio_backend: object) -> None:
    """An error reply reaches host middleware as an "error" envelope whose
    payload is the RemoteError; a middleware may replace the exception."""

    class Translated(Exception):
        pass

    def translate(envelope: Envelope, direction: Direction) -> Envelope | None:
        if direction == "incoming" and envelope.kind == "error":
            assert isinstance(envelope.payload, ValueError)
            assert envelope.meta["kind"] == "error"  # stamped by the worker
            return attrs.evolve(envelope, payload=Translated(str(envelope.payload)))
        return None

    with anyio.fail_after(GUARD):
        async with in_process(middleware=[translate]) as client:
            with pytest.raises(Translated, match="kaboom"):
                await client.send(Fail(text="kaboom"))


def _not_an_envelope(envelope: Envelope) -> object:
    return "not an envelope"


def _changed_tx(envelope: Envelope) -> object:
    return attrs.evolve(envelope, tx=envelope.tx + 1)


def _changed_type(envelope: Envelope) -> object:
    return attrs.evolve(envelope, type="Other")


def _bad_meta(envelope: Envelope) -> object:
    return attrs.evolve(envelope, meta=cast("Any", {"n": 1}))


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_not_an_envelope, TypeError),
        (_changed_tx, ValueError),
        (_changed_type, ValueError),
        (_bad_meta, TypeError),
    ],
    ids=["wrong-type", "changed-tx", "changed-type", "bad-meta"],
)
async def test_misbehaving_middleware_gets_a_clear_error(
    anyio_backend: object,
    answer: Callable[[Envelope], object],
    error: type[Exception],
) -> None:
    """Only payload and meta may change; anything else is refused before
    anything is written, and the client keeps working."""
    armed = [True]

    def broken(envelope: Envelope, direction: Direction) -> Any:
        if direction == "outgoing" and armed[0]:
            return answer(envelope)
        return None

    with anyio.fail_after(GUARD):
        async with in_process(middleware=[broken]) as client:
            with pytest.raises(error):
                await client.send(Guarded(1))
            armed[0] = False
            assert await client.send(Guarded(1)) == 2


async def test_tx_id_factory(anyio_backend: object, worker_backend: str) -> None:
    """Custom transaction ids are used on the wire: both sides' middleware see them."""
    ids = itertools.count(2**63, 7)
    seen: list[int] = []

    def record(envelope: Envelope, direction: Direction) -> None:
        seen.append(envelope.tx)
        if direction == "incoming":  # the worker's middleware signs the tx it saw
            seen.append(int(envelope.meta["tx"]))

    with anyio.fail_after(GUARD):
        async with ext_worker(
            worker_backend, middleware=[record], tx_id_factory=ids.__next__
        ) as client:
            for _ in range(3):
                assert await client.send(SeenMeta()) == {}
            await client.send(Echo(0))
    expected = [2**63 + 7 * n for n in range(4)]
    assert seen == [tx for tx in expected for _ in range(3)]


@pytest.mark.parametrize("bad", [0, -1, 2**64, "7", True, None])
async def test_tx_id_factory_bad_ids_are_refused(
    anyio_backend: object, bad: Any
) -> None:
    """An id that is not an int from 1 to 2**64 - 1 fails that send with
    ValueError; nothing is written and the client keeps working."""
    answers = iter([bad, 5])
    with anyio.fail_after(GUARD):
        async with in_process(tx_id_factory=lambda: next(answers)) as client:
            with pytest.raises(ValueError, match="tx_id_factory returned"):
                await client.send(Guarded(1))
            assert await client.send(Guarded(1)) == 2


async def test_tx_id_factory_duplicates_in_flight_are_refused(
    anyio_backend: object,
) -> None:
    """A factory that repeats an id still in flight fails the second send."""
    with anyio.fail_after(GUARD):
        async with (
            in_process(tx_id_factory=lambda: 42) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(client.send, Hold())
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ValueError, match="42"):
                await client.send(Guarded(2))
            tg.cancel_scope.cancel()


async def test_bad_input_from_one_caller_loses_nothing_of_another(
    anyio_backend: object,
) -> None:
    """While one caller's request is in flight, another caller's bad inputs
    each fail with a clear error, and the first request completes."""
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    bad: list[tuple[object, type[Exception], str]] = [
        (Echo(0, b"x" * 70_000), ProtocolError, "exceeds max_frame_size"),
        (Echo(0, items=[cast("int", object())]), ProtocolError, "serialize"),
        (Echo(0, items=deep), ProtocolError, "serialize"),
        (Guarded(cast("int", "nope")), ProtocolError, "value: expected int"),
        (Guarded(-1), PermissionError, "negative values are refused"),
        (Fail(text="boom"), ValueError, "boom"),
        (object(), TypeError, "is not in MessageRegistry"),
    ]
    with anyio.fail_after(GUARD):
        async with (
            in_process(max_frame_size=65_536) as client,
            anyio.create_task_group() as tg,
        ):
            held: list[int] = []

            async def first_caller() -> None:
                held.append(await client.send(Hold(value=41)))

            tg.start_soon(first_caller)
            await anyio.wait_all_tasks_blocked()
            for message, error, text in bad:
                with pytest.raises(error, match=text):
                    await client.send(message)  # type: ignore[call-overload]
            await client.send(Release())
        assert held == [41]
        assert client.late_replies == 0
