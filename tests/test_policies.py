"""Crash policies: Reject, Retry and ShutdownPolicy with real workers (API.md 5)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from isolated_workers import (
    Exited,
    Reject,
    Retry,
    ShutdownPolicy,
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerState,
    open_worker,
)
from tests._util import FAULT_WORKER, GUARD, Beacon
from tests.workers.fault_messages import Die, Faults, Gated
from tests.workers.messages import Hold, Ping

pytestmark = pytest.mark.anyio


async def collect(
    worker: WorkerClient, messages: Sequence[Gated | Hold], into: dict[int, object]
) -> None:
    """Send every message concurrently; store each result or exception by index."""

    async def one(index: int, message: Gated | Hold) -> None:
        try:
            into[index] = await worker.send(message)
        except Exception as exc:
            into[index] = exc

    async with anyio.create_task_group() as tg:
        for index, message in enumerate(messages):
            tg.start_soon(one, index, message)


async def test_retry_resends_in_flight_requests_to_a_respawned_worker(
    worker_backend: str, tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """SIGKILL with 50 in flight under Retry: all succeed on one new worker (A2)."""
    gate, marker = tmp_path / "gate", beacon("entered")
    work = [Gated(i, str(gate), str(marker)) for i in range(50)]
    results: dict[int, object] = {}
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER,
            messages=Faults,
            backend=worker_backend,
            unexpected_shutdown=Retry(attempts=3),
        ) as worker:
            first_pid = worker.pid
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, worker, work, results)
                await marker.wait_for_lines(50)
                gate.touch()  # the respawned worker answers at once
                os.kill(first_pid, signal.SIGKILL)
            assert results == {i: 2 * i for i in range(50)}
            assert worker.respawns == 1
            assert worker.pid != first_pid
            assert worker.state is WorkerState.READY
            assert await worker.send(Ping()) == worker.pid


async def test_shutdown_policy_retries_only_the_named_messages(
    tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """With Retry only for Gated, a crash fails Hold at once and retries Gated (A2)."""
    gate, marker = tmp_path / "gate", beacon("entered")
    messages: list[Gated | Hold] = [
        Gated(7, str(gate), str(marker)),
        Hold(str(marker)),
    ]
    results: dict[int, object] = {}
    policy = ShutdownPolicy(default=Reject(), per_message={Gated: Retry(attempts=3)})
    with anyio.fail_after(GUARD):
        async with (
            open_worker(
                FAULT_WORKER, messages=Faults, unexpected_shutdown=policy
            ) as worker,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(collect, worker, messages, results)
            await marker.wait_for_lines(2)
            gate.touch()
            os.kill(worker.pid, signal.SIGKILL)
    assert results[0] == 14
    error = results[1]
    assert isinstance(error, WorkerCrashedError)
    assert (error.attempt, error.max_attempts) == (1, 1)
    assert error.reason == Exited(code=None, signal=signal.SIGKILL)


@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_request_that_always_crashes_is_sent_attempts_plus_one_times(
    worker_backend: str, attempts: int
) -> None:
    """Retry(attempts=N) sends a crashing request N + 1 times, then fails (A3)."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER,
            messages=Faults,
            backend=worker_backend,
            unexpected_shutdown=Retry(attempts=attempts),
        ) as worker:
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Die("sigkill"))
            # The default is Retry, so the client is repaired once more.
            assert await worker.send(Ping()) == worker.pid
            assert worker.respawns == attempts + 1
    error = caught.value
    assert (error.attempt, error.max_attempts) == (attempts + 1, attempts + 1)
    retries = "1 retry" if attempts == 1 else f"{attempts} retries"
    assert str(error).startswith(
        f"Worker crashed after {attempts + 1} attempts ({retries}) "
        "while processing 'Die'"
    )


async def test_retry_default_replaces_a_worker_that_crashed_while_idle() -> None:
    """A Retry default repairs a crash while idle: the client stays usable."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, unexpected_shutdown=Retry()
        ) as worker:
            first_pid = worker.pid
            os.kill(first_pid, signal.SIGKILL)
            # A send during the respawn waits for the new worker.
            assert await worker.send(Ping()) != first_pid
            assert worker.respawns == 1


async def test_reject_leaves_a_crashed_worker_crashed() -> None:
    """Under Reject, a crash leaves the client CRASHED and later sends fail at once."""
    with anyio.fail_after(GUARD):
        async with open_worker(FAULT_WORKER, messages=Faults) as worker:
            with pytest.raises(WorkerCrashedError):
                await worker.send(Die("exit42"))
            assert worker.state is WorkerState.CRASHED
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Ping())
            assert caught.value.reason == Exited(code=42)
            assert caught.value.attempt == 0  # never sent
            assert worker.respawns == 0


async def test_a_requested_close_never_retries(
    tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """aclose() with 10 pending under Retry: 10 WorkerClosedError, no respawn (A21)."""
    marker = beacon("entered")
    results: dict[int, object] = {}
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, unexpected_shutdown=Retry(attempts=3)
        ) as worker:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    collect, worker, [Hold(str(marker)) for _ in range(10)], results
                )
                await marker.wait_for_lines(10)
                await worker.aclose()
            await worker.aclose()  # a second close is a no-op
    assert all(isinstance(r, WorkerClosedError) for r in results.values())
    assert len(results) == 10
    assert worker.respawns == 0
    assert worker.state is WorkerState.CLOSED


async def test_a_failed_respawn_rejects_the_retried_requests(tmp_path: Path) -> None:
    """A respawn that cannot start fails the retried request and leaves CRASHED."""
    refuse = tmp_path / "refuse"
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER,
            messages=Faults,
            env={"FAULT_REFUSE_START_IF": str(refuse)},
            unexpected_shutdown=Retry(attempts=2),
        ) as worker:
            refuse.touch()
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Die("sigkill"))
            assert worker.state is WorkerState.CRASHED
            assert caught.value.attempt == 1
            assert worker.respawns == 0


def test_retry_needs_at_least_one_attempt() -> None:
    """Retry(attempts=0) is refused."""
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)
    assert Retry().max_attempts == 2
    assert Reject().max_attempts == 1
    policy = ShutdownPolicy.coerce(Retry(2))
    assert policy.max_attempts(Ping) == 3
    assert ShutdownPolicy.coerce(None).for_message(Ping) == Reject()


async def test_a_worker_that_keeps_dying_while_idle_is_given_up_on() -> None:
    """Under Retry(attempts=2), idle crashes stop being repaired after 2 in a row."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, unexpected_shutdown=Retry(attempts=2)
        ) as worker:
            for _ in range(3):
                while worker.state is WorkerState.STARTING:
                    await anyio.sleep(0.01)
                if worker.state is WorkerState.CRASHED:
                    break
                os.kill(worker.pid, signal.SIGKILL)
                while worker.state is WorkerState.READY:
                    await anyio.sleep(0.01)
            while worker.state is WorkerState.STARTING:
                await anyio.sleep(0.01)
            assert worker.state is WorkerState.CRASHED
            assert worker.respawns == 2
