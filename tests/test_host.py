"""The host against real worker processes: the contract a process boundary adds.

Each test runs on every host/worker pairing (``anyio_backend`` x
``worker_backend``), and those that exchange messages on both transports too,
through the ``worker`` fixture, whose teardown fails a test whose worker did
not close gracefully. Tests synchronise on beacons (files the worker writes a
line to), handshakes and worker-side counters, never on sleeps. The worker is
the plain one, ``tests/workers/echo.py``. The client's own logic (timeouts,
cancellation, frame limits, error replies) is tested in process, in
test_client.py.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import psutil
import pytest

from isolated_workers import (
    Exited,
    PipeTransport,
    RemoteError,
    Timeouts,
    UnixSocketTransport,
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerState,
    WorkerTimeoutError,
    get_startup_data,
    open_worker,
    start_worker,
)
from tests._util import GUARD, Beacon, WorkerBackend, assert_reaped, wait_until
from tests.workers.messages import (
    Compose,
    Composite,
    Echo,
    Echoed,
    Fail,
    Gather,
    GetStartup,
    GetStartupAs,
    Hang,
    Hold,
    Inner,
    Messages,
    Ping,
    Point,
    Recall,
    Remember,
    Stall,
    StartupBundle,
    StartupConfig,
    StartupReport,
    Store,
)

pytestmark = pytest.mark.anyio

WORKER = "tests.workers.echo"
E = TypeVar("E", bound=BaseException)
Transport = UnixSocketTransport | PipeTransport

# --- fixtures and helpers -------------------------------------------------------


@pytest.fixture(params=["socket", "pipe"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """The transport the worker's frames travel over."""
    return UnixSocketTransport() if request.param == "socket" else PipeTransport()


@pytest.fixture
async def worker(
    anyio_backend: object,
    worker_backend: str,
    transport: Transport,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[WorkerClient]:
    """A plain worker on this pairing and transport. Afterwards, the test
    fails unless the worker closed gracefully: no escalation, no traceback."""
    async with plain_worker(
        worker_backend, transport=transport, output="capture"
    ) as client:
        yield client
    assert_reaped(client.pid)
    trouble = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("isolated_workers") and r.levelno >= logging.WARNING
    ]
    assert not trouble, f"the worker did not close gracefully: {trouble}"
    assert "Traceback" not in client.captured_stderr, client.captured_stderr


def plain_worker(
    worker_backend: str, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    """``open_worker`` on the plain worker, running the given event loop."""
    return open_worker(
        WORKER,
        messages=Messages,
        backend=cast(WorkerBackend, worker_backend),
        **options,
    )


def start_plain_worker(
    worker_backend: str,
) -> functools.partial[Coroutine[Any, Any, None]]:
    """``start_worker`` on the plain worker, for ``TaskGroup.start``.

    TaskGroup.start takes no keyword arguments (on anyio as on Trio): the
    options reach start_worker through functools.partial.
    """
    return functools.partial(
        start_worker,
        WORKER,
        messages=Messages,
        backend=cast(WorkerBackend, worker_backend),
    )


@asynccontextmanager
async def hung_worker(worker_backend: str, hung: Beacon) -> AsyncIterator[WorkerClient]:
    """A plain worker (shutdown timeout 0.3 s) that `Hang` has blocked:
    it ignores SIGTERM and has written to the beacon ``hung``."""
    async with plain_worker(worker_backend, timeouts=Timeouts(shutdown=0.3)) as client:
        await client.send(Hang(str(hung)))
        await hung.wait_for_text()
        yield client


def status(client: WorkerClient) -> tuple[WorkerState, bool, bool]:
    """``(state, is_active, is_connected)`` of ``client``, read afresh (a call
    keeps type checkers from narrowing the properties between reads)."""
    return client.state, client.is_active, client.is_connected


async def send_hold(
    client: WorkerClient, marker: Path, error_type: type[E], errors: list[E]
) -> None:
    """Send ``Hold(marker)``; collect the ``error_type`` error it fails with."""
    try:
        await client.send(Hold(str(marker)))
    except error_type as exc:
        errors.append(exc)


async def start_holds(
    tg: anyio.abc.TaskGroup,
    client: WorkerClient,
    beacon: Callable[[str], Beacon],
    count: int,
    error_type: type[E],
) -> list[E]:
    """Start ``count`` `send_hold` in ``tg`` and wait until every handler has
    entered; the list returned fills with their ``error_type`` errors."""
    entered = [beacon(f"hold{i}") for i in range(count)]
    errors: list[E] = []
    for each in entered:
        tg.start_soon(send_hold, client, each.path, error_type, errors)
    for each in entered:
        await each.wait_for_text()
    return errors


async def assert_sends_fail(client: WorkerClient, error_type: type[Exception]) -> None:
    """A request and a notification both fail with ``error_type``."""
    with pytest.raises(error_type):
        await client.send(Echo(1))
    with pytest.raises(error_type):
        await client.send(Remember(1))


def assert_child(pid: int) -> None:
    """``pid`` is a live child process of this test process."""
    process = psutil.Process(pid)
    assert process.ppid() == os.getpid()
    assert process.status() != psutil.STATUS_ZOMBIE


async def assert_serving(client: WorkerClient, pid: int) -> None:
    """The worker ``pid`` is still the one answering, and answers correctly."""
    assert client.state is WorkerState.READY
    assert await client.send(Ping()) == pid
    assert await client.send(Echo(41, b"ok")) == Echoed(41, b"ok")


def assert_only_client_closed(clients: list[WorkerClient]) -> None:
    """``clients`` holds one client, closed and with its worker reaped."""
    (client,) = clients
    assert client.state is WorkerState.CLOSED
    assert_reaped(client.pid)


def expected_composite(seed: int) -> Composite:
    """What the worker's `Compose` handler builds from ``seed``."""
    points = [Point(seed + i, i / 4) for i in range(3)]
    return Composite(
        name=f"seed-{seed}",
        points=points,
        by_name={f"p{i}": p for i, p in enumerate(points)},
        pair=(seed, str(seed)),
        blob=bytes(range(seed, seed + 4)),
        maybe=None if seed % 2 else seed,
        flag=seed > 0,
        nothing=None,
    )


# --- 1. requests, notifications, concurrency ----------------------------------


async def test_request_round_trip(worker: WorkerClient) -> None:
    """A request returns its handler's result, structured to the declared type;
    1 MiB of every byte value comes back intact."""
    data = bytes(range(256)) * 4096
    with anyio.fail_after(GUARD):
        result = await worker.send(Echo(7, data))
        assert result == Echoed(7, data)
        assert type(result.data) is bytes


async def test_composite_result_is_the_same_on_every_pairing(
    worker: WorkerClient,
) -> None:
    """A nested attrs result comes back exactly as built on every pairing."""
    with anyio.fail_after(GUARD):
        for seed in (0, 5, 6):
            result = await worker.send(Compose(seed))
            assert result == expected_composite(seed)
            assert type(result.pair) is tuple
            assert type(result.points[0]) is Point
            assert type(result.points[1].x) is float


async def test_notifications_and_sync_handlers_in_arrival_order(
    worker: WorkerClient,
) -> None:
    """A notification returns None once written; sync handlers run in arrival
    order, so a later request sees its effect."""
    with anyio.fail_after(GUARD):
        assert await worker.send(Remember(1)) is None  # type: ignore[func-returns-value]
        assert await worker.send(Store(3, b"abc")) == 3
        assert await worker.send(Remember(2)) is None  # type: ignore[func-returns-value]
        assert await worker.send(Store(4)) == 0
        assert await worker.send(Ping()) == worker.pid
        assert await worker.send(Recall()) == [1, 3, 2, 4]


async def test_many_requests_in_flight(worker: WorkerClient) -> None:
    """200 concurrent sends each get their own result."""
    results: dict[int, Echoed] = {}

    async def call(i: int) -> None:
        results[i] = await worker.send(Echo(i, i.to_bytes(2, "big") * i))

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(call, i)
    assert results == {i: Echoed(i, i.to_bytes(2, "big") * i) for i in range(200)}


async def test_async_handlers_run_concurrently(worker: WorkerClient) -> None:
    """Two async handlers that each wait for the other to enter both complete."""
    results: list[int] = []

    async def call(x: int) -> None:
        results.append(await worker.send(Gather(x, parties=2, group="pair")))

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 1)
            tg.start_soon(call, 2)
    assert sorted(results) == [3, 5]


# --- 2. the client's state and aclose() ----------------------------------------


async def test_client_state_before_and_after_close(worker: WorkerClient) -> None:
    """state/is_active/is_connected/pid track aclose(), which is idempotent."""
    with anyio.fail_after(GUARD):
        pid = worker.pid
        assert status(worker) == (WorkerState.READY, True, True)
        assert_child(pid)
        assert await worker.send(Ping()) == pid

        await worker.aclose()
        assert status(worker) == (WorkerState.CLOSED, False, False)
        assert worker.pid == pid
        assert_reaped(pid)

        await worker.aclose()  # idempotent; the fixture's close is one more
        assert status(worker) == (WorkerState.CLOSED, False, False)
        await assert_sends_fail(worker, WorkerClosedError)


async def test_aclose_fails_pending_requests(
    worker: WorkerClient, beacon: Callable[[str], Beacon]
) -> None:
    """Requests in flight when aclose() runs fail with WorkerClosedError."""
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            errors = await start_holds(tg, worker, beacon, 3, WorkerClosedError)
            await worker.aclose()
        assert worker.state is WorkerState.CLOSED
        assert_reaped(worker.pid)
    assert len(errors) == 3
    assert len({id(e) for e in errors}) == 3


# --- 3 and 4. exception identity, start_worker ----------------------------------


async def test_user_exception_leaves_open_worker_as_itself(
    anyio_backend: object, worker_backend: str
) -> None:
    """A KeyError raised inside open_worker() comes out as itself, unwrapped."""
    error = KeyError("user code")
    clients: list[WorkerClient] = []

    async def use_and_fail() -> None:
        async with plain_worker(worker_backend) as client:
            clients.append(client)
            assert await client.send(Echo(1)) == Echoed(1)
            raise error

    with anyio.fail_after(GUARD), pytest.raises(KeyError) as excinfo:
        await use_and_fail()
    assert excinfo.value is error
    assert excinfo.type is KeyError
    assert_only_client_closed(clients)


async def test_start_worker_returns_a_ready_client(
    anyio_backend: object, worker_backend: str
) -> None:
    """start_worker gives a READY client; cancelling its task group reaps it."""
    start = start_plain_worker(worker_backend)
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            client: WorkerClient = await tg.start(start)
            assert client.state is WorkerState.READY
            assert client.is_active
            assert_child(client.pid)
            assert await client.send(Echo(5)) == Echoed(5)
            tg.cancel_scope.cancel()
    assert status(client) == (WorkerState.CLOSED, False, False)
    assert_reaped(client.pid)


async def test_user_exception_with_start_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """A KeyError beside start_worker comes out alone and the worker is reaped."""
    error = KeyError("user code")
    start = start_plain_worker(worker_backend)
    clients: list[WorkerClient] = []

    async def use_and_fail() -> None:
        async with anyio.create_task_group() as tg:
            clients.append(await tg.start(start))
            assert await clients[0].send(Echo(1)) == Echoed(1)
            raise error

    group = pytest.RaisesGroup(KeyError, allow_unwrapped=True)
    with anyio.fail_after(GUARD), group as excinfo:
        await use_and_fail()
    caught: BaseException = excinfo.value
    if isinstance(caught, BaseExceptionGroup):
        assert caught.exceptions == (error,)
    else:
        assert caught is error
    assert_only_client_closed(clients)


# --- 5. errors raised by handlers --------------------------------------------


async def test_error_types_are_the_same_on_every_pairing(
    worker: WorkerClient,
) -> None:
    """Failing handlers give the same error types and fields on every pairing."""
    expected = [
        ("zero", "RemoteZeroDivisionError", "builtins.ZeroDivisionError", None),
        ("oserror", "RemoteFileNotFoundError", "builtins.FileNotFoundError", 2),
        ("custom", "RemoteError", "tests.workers.messages.CustomError", "E42"),
    ]
    seen = []
    with anyio.fail_after(GUARD):
        for kind, *_ in expected:
            with pytest.raises(RemoteError) as excinfo:
                await worker.send(Fail(kind))
            error = excinfo.value
            seen.append((kind, type(error).__name__, error.remote_type, error.code))
    assert seen == expected


# --- 7. cancellation -----------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancelled_send_cancels_the_handler(
    how: str,
    anyio_backend: object,
    worker_backend: str,
    transport: Transport,
    beacon: Callable[[str], Beacon],
) -> None:
    """A send given up by its cancel scope, or by its timeout, cancels its
    handler in the worker process, which serves on."""
    entered, exited = beacon("hold"), beacon("hold.exited")
    hold = Hold(str(entered))
    timeouts = Timeouts(per_message={Hold: 0.3} if how == "timeout" else {})
    with anyio.fail_after(GUARD):
        async with plain_worker(
            worker_backend, transport=transport, timeouts=timeouts
        ) as client:
            if how == "timeout":
                with pytest.raises(WorkerTimeoutError):
                    await client.send(hold)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.send, hold)
                    await entered.wait_for_text()
                    tg.cancel_scope.cancel()
            await exited.wait_for_text()
            assert entered.text
            await assert_serving(client, client.pid)


async def test_late_reply_is_dropped(
    worker: WorkerClient, tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """A reply arriving after its send was cancelled is counted and dropped: the
    worker's loop, blocked in a sync handler, read the cancel too late."""
    stall = tmp_path / "stall"
    entered = beacon("stall.entered")
    with anyio.fail_after(GUARD):
        assert worker.late_replies == 0
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.send, Stall(str(stall)))
                await entered.wait_for_text()
                scope.cancel()
        Path(f"{stall}.release").write_bytes(b"")
        # The worker answers in order: the stalled reply precedes this one.
        assert await worker.send(Echo(9)) == Echoed(9)
        assert worker.late_replies == 1
        await assert_serving(worker, worker.pid)


async def test_a_timeout_takes_effect_while_the_worker_does_not_read(
    anyio_backend: object,
    worker_backend: str,
    transport: Transport,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """API.md 8: with the worker held in a sync handler (reading nothing), a
    6 MiB request under move_on_after(0.5) gives up on time, as does a small one
    queued behind it; the worker is released only then, and afterwards the same
    connection answers big and small requests correctly."""
    stall = tmp_path / "stall"
    entered = beacon("stall.entered")
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB
    with anyio.fail_after(GUARD):
        async with (
            plain_worker(worker_backend, transport=transport) as client,
            anyio.create_task_group() as tg,
        ):
            pid = client.pid
            stalled: list[str] = []

            async def stall_worker() -> None:
                stalled.append(await client.send(Stall(str(stall))))

            tg.start_soon(stall_worker)
            await entered.wait_for_text()
            with anyio.move_on_after(0.5) as big_call:
                await client.send(Echo(1, big))
            with anyio.move_on_after(0.5) as small_call:
                await client.send(Echo(2, b"small"))
            # Had either waited on the worker, the guard would have fired first:
            # it is released only now.
            assert big_call.cancelled_caught
            assert small_call.cancelled_caught
            Path(f"{stall}.release").write_bytes(b"")
            assert await client.send(Echo(3, big)) == Echoed(3, big)
            assert await client.send(Echo(4, b"small")) == Echoed(4, b"small")
            assert stalled == ["released"]
            await assert_serving(client, pid)


# --- 9. startup data -------------------------------------------------------------


STARTUP_CONFIG = StartupConfig("cfg", Inner(3, ["a", "b"]), b"\x00\x01\xfe\xff")
STARTUP_PLAIN: dict[str, Any] = {
    "int": 1,
    "float": 2.5,
    "text": "héllo",
    "none": None,
    "flag": True,
    "list": [1, "two", [3.0]],
    "nested": {"deeper": {"deepest": [None, False]}},
}


async def test_startup_data(anyio_backend: object, worker_backend: str) -> None:
    """Startup data of dicts, nested attrs and bytes reaches the worker intact."""
    bundle = StartupBundle(plain=STARTUP_PLAIN, config=STARTUP_CONFIG, blob=b"\xffraw")
    with anyio.fail_after(GUARD):
        async with plain_worker(worker_backend, startup_data=bundle) as client:
            raw = (await client.send(GetStartup()))["startup"]
            assert raw["plain"] == STARTUP_PLAIN
            assert raw["config"]["name"] == "cfg"
            assert raw["config"]["inner"] == {"level": 3, "tags": ["a", "b"]}
            report = await client.send(GetStartupAs())
    assert report == StartupReport(
        bundle=bundle,
        blob_type="bytes",
        config_blob_type="bytes",
        inner_type="Inner",
    )


async def test_get_startup_data_outside_a_worker(
    anyio_backend: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_startup_data() in a process that is not a worker raises RuntimeError."""
    monkeypatch.delenv("ISOLATED_WORKERS_BOOTSTRAP_FD", raising=False)
    with pytest.raises(RuntimeError, match="not in a worker"):
        get_startup_data()
    with pytest.raises(RuntimeError, match="not in a worker"):
        get_startup_data(as_type=StartupConfig)


# --- 10. crash basics --------------------------------------------------------------


async def test_sigkill_with_requests_in_flight(
    anyio_backend: object,
    worker_backend: str,
    transport: Transport,
    beacon: Callable[[str], Beacon],
) -> None:
    """SIGKILL fails 5 in-flight requests with WorkerCrashedError(SIGKILL)."""
    with anyio.fail_after(GUARD):
        async with plain_worker(worker_backend, transport=transport) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                errors = await start_holds(tg, client, beacon, 5, WorkerCrashedError)
                os.kill(pid, signal.SIGKILL)
            assert len(errors) == 5
            assert len({id(e) for e in errors}) == 5
            for error in errors:
                assert error.reason == Exited(code=None, signal=signal.SIGKILL)
                assert error.message_type == "Hold"
                assert "signal SIGKILL" in str(error)
            assert client.state is WorkerState.CRASHED
            assert not client.is_active
            with anyio.fail_after(1):
                await assert_sends_fail(client, WorkerCrashedError)
    assert_reaped(pid)


# --- 11. close escalation -----------------------------------------------------------


async def test_close_escalates_to_sigkill(
    anyio_backend: object,
    worker_backend: str,
    beacon: Callable[[str], Beacon],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aclose() escalates to SIGKILL on a worker ignoring shutdown and SIGTERM."""
    hung = beacon("hung")
    with anyio.fail_after(GUARD):
        async with hung_worker(worker_backend, hung) as client:
            pid = client.pid
            start = anyio.current_time()
            await client.aclose()
            elapsed = anyio.current_time() - start
            assert client.state is WorkerState.CLOSED
            assert_reaped(pid)
    assert 0.5 <= elapsed < 2.0
    assert "SIGKILL" in caplog.text


async def test_cancelled_aclose_still_reaps(
    anyio_backend: object, worker_backend: str, beacon: Callable[[str], Beacon]
) -> None:
    """Cancelling the task running aclose() still leaves the worker reaped."""
    hung = beacon("hung")
    with anyio.fail_after(GUARD):
        async with hung_worker(worker_backend, hung) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.aclose)
                await wait_until(
                    lambda: client.state is not WorkerState.READY, "aclose to start"
                )
                tg.cancel_scope.cancel()
            assert client.state is WorkerState.CLOSED
            assert_reaped(pid)
