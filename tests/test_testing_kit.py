"""`isolated_workers.testing.open_in_process_worker`: the real client and server
in the test's own event loop, with no process."""

from __future__ import annotations

import os

import anyio
import attrs
import pytest

from isolated_workers import (
    Envelope,
    MsgpackSerializer,
    RemoteError,
    Timeouts,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerState,
    WorkerTimeoutError,
)
from isolated_workers.testing import open_in_process_worker
from tests.workers.calls import add as add_numbers
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import (
    Add,
    Count,
    Echo,
    Echoed,
    Fail,
    GetStartup,
    Messages,
    Progress,
    Sleep,
    Work,
)

pytestmark = pytest.mark.anyio


async def test_requests_get_their_results_through_the_real_codec() -> None:
    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, serializer=MsgpackSerializer()
        ) as worker:
            assert await worker.send(Echo(7, b"\x00\xff")) == Echoed(7, b"\x00\xff")
            assert await worker.send(Add(2, 3)) == 5
            assert worker.pid == os.getpid()
            assert worker.stats.completed == 2


async def test_errors_timeouts_and_close_behave_as_with_a_process() -> None:
    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, timeouts=Timeouts(message=0.05)
        ) as worker:
            with pytest.raises(RemoteError) as info:
                await worker.send(Fail("zero"))
            assert isinstance(info.value, ZeroDivisionError)
            with pytest.raises(WorkerTimeoutError):
                await worker.send(Sleep(10))
            assert await worker.send(Add(1, 1)) == 2
        assert worker.state is WorkerState.CLOSED
        with pytest.raises(WorkerClosedError):
            await worker.send(Add(1, 1))


async def test_handlers_read_the_startup_data() -> None:
    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, startup_data={"quality": 90}
        ) as worker:
            assert await worker.send(GetStartup()) == {"startup": {"quality": 90}}


async def test_middleware_runs_on_both_sides() -> None:
    seen: list[str] = []

    def host(envelope: Envelope, direction: str) -> Envelope:
        seen.append(f"host {direction} {envelope.kind}")
        return attrs.evolve(envelope, meta={**envelope.meta, "via": "host"})

    def worker_side(envelope: Envelope, direction: str) -> None:
        seen.append(f"worker {direction} {envelope.kind} {envelope.meta.get('via')}")

    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, middleware=[host], worker_middleware=[worker_side]
        ) as worker:
            assert await worker.send(Add(1, 2)) == 3
    assert seen == [
        "host outgoing request",
        "worker incoming request host",
        "worker outgoing result None",
        "host incoming result",
    ]


async def test_killing_the_worker_is_a_crash_and_another_starts() -> None:
    """What ``kill_on_cancel`` does cancels the stand-in's task: the request it
    held fails as a crash, and a new worker serves on."""
    with anyio.fail_after(5):
        async with open_in_process_worker(Messages, HANDLERS) as worker:
            async with anyio.create_task_group() as tg:

                async def held() -> None:
                    with pytest.raises(WorkerCrashedError):
                        await worker.send(Sleep(10))

                tg.start_soon(held)
                await anyio.wait_all_tasks_blocked()
                worker._kill_worker()  # pyright: ignore[reportPrivateUsage]
            assert await worker.send(Add(2, 2)) == 4
            assert worker.respawns == 1


async def test_run_sync_runs_in_this_process() -> None:
    with anyio.fail_after(5):
        async with open_in_process_worker(Messages, HANDLERS) as worker:
            assert await worker.run_sync(add_numbers, 2, 5) == 7


async def test_a_missing_handler_is_refused() -> None:
    with pytest.raises(TypeError, match="no handler for: Add"):
        async with open_in_process_worker(
            Messages, {k: v for k, v in HANDLERS.items() if k is not Add}
        ):
            pass


async def test_events_reach_the_callback() -> None:
    seen: list[Progress] = []
    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, on_event={Progress: seen.append}
        ) as worker:
            assert await worker.send(Work(2)) == 2
    assert seen == [Progress(1, 2), Progress(2, 2)]


async def test_run_sync_goes_through_the_middleware() -> None:
    seen: list[tuple[str, str]] = []

    def record(envelope: Envelope, direction: str) -> None:
        seen.append((direction, envelope.type))

    with anyio.fail_after(5):
        async with open_in_process_worker(
            Messages, HANDLERS, middleware=[record]
        ) as worker:
            assert await worker.run_sync(add_numbers, 1, 2) == 3
    name = "isolated_workers.run_sync"
    assert seen == [("outgoing", name), ("incoming", name)]


async def test_a_stream_handler_must_be_an_async_generator() -> None:
    def not_a_generator(msg: Count) -> list[int]:
        return list(range(msg.n))

    with pytest.raises(TypeError, match="must be async generators: Count"):
        async with open_in_process_worker(
            Messages, {**HANDLERS, Count: not_a_generator}
        ):
            pass
