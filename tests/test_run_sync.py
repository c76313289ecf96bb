"""`run_sync`: module-level functions called in workers, with no message class.

Real worker processes: the built-in worker of a pool opened without a target,
and a worker of the reliability contract (any worker serves `run_sync`).
"""

from __future__ import annotations

import os
import signal
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from isolated_workers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    RemoteError,
    Serializer,
    Timeouts,
    WorkerState,
    WorkerTimeoutError,
    open_worker_pool,
)
from tests._util import (
    GUARD,
    Beacon,
    fault_worker,
    wait_gone,
    wait_until,
)
from tests.workers import calls
from tests.workers.calls import Point, add, block, fail, pid, shift

pytestmark = pytest.mark.anyio


async def test_a_pool_without_a_target_runs_functions() -> None:
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=2) as pool:
            assert await pool.run_sync(add, 2, 3) == 5
            assert await pool.run_sync(pid) in {c.pid for c in pool.workers}
            assert sum(s.completed for s in pool.stats) == 2


async def test_arguments_and_result_follow_the_annotations() -> None:
    """An attrs argument and result cross as such, ``*args`` included."""
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            assert await pool.run_sync(shift, Point(1, 2), 3, 4) == Point(8, 2)


async def test_a_built_in_without_a_signature_runs() -> None:
    """``max`` has no signature to read annotations from: its arguments go as
    they are."""
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            assert await pool.run_sync(max, 3, 9, 4) == 9


async def test_the_functions_own_error_comes_back() -> None:
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            with pytest.raises(RemoteError) as info:
                await pool.run_sync(fail, "no")
            assert isinstance(info.value, ValueError)
            assert "no" in str(info.value)
            assert pool.stats[0].failed == 1


def local_function() -> None: ...


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        pytest.param(lambda: None, "lambda", id="lambda"),
        pytest.param(calls.not_sync, "async", id="async"),
        pytest.param(calls.replaced, "lambda", id="decorated-by-a-lambda"),
        pytest.param(Point(1, 2).__repr__, "does not name", id="bound-method"),
        pytest.param("not a function", "needs a function", id="a-string"),
    ],
)
async def test_what_a_worker_cannot_import_is_refused_on_the_host(
    function: Any, reason: str
) -> None:
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            with pytest.raises(TypeError, match=reason):
                await pool.run_sync(function)
            assert pool.stats[0].failed == 0  # nothing was sent


async def test_a_closure_and_a_function_of_main_are_refused() -> None:
    def closure() -> None: ...

    in_main = types.FunctionType(local_function.__code__, {})
    in_main.__module__ = "__main__"
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            with pytest.raises(TypeError, match="closure"):
                await pool.run_sync(closure)
            with pytest.raises(TypeError, match="__main__"):
                await pool.run_sync(in_main)


async def test_the_host_import_path_reaches_the_built_in_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module importable only through the host's ``sys.path`` imports in the
    worker too, wherever the worker runs."""
    (tmp_path / "only_here.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here  # type: ignore[import-not-found]

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    try:
        with anyio.fail_after(GUARD):
            async with open_worker_pool(size=1, cwd=elsewhere) as pool:
                assert await pool.run_sync(only_here.triple, 5) == 15
    finally:
        sys.modules.pop("only_here", None)


async def test_any_worker_serves_run_sync(worker_backend: str) -> None:
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as worker:
            assert await worker.run_sync(add, 1, 1) == 2
            assert worker.stats.completed == 1


async def test_kill_on_cancel_replaces_a_worker_stuck_in_a_call(
    tmp_path: Path, worker_backend: str, beacon: Callable[[str], Beacon]
) -> None:
    """A cancelled call that cannot be interrupted kills its worker; another
    starts, and serves the next call."""
    marker = beacon("entered")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as worker:
            with anyio.move_on_after(GUARD) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        lambda: worker.run_sync(block, str(marker), kill_on_cancel=True)
                    )
                    stuck = int(await marker.wait_for_text())
                    scope.cancel()
            await wait_gone(stuck)
            assert await worker.run_sync(pid) != stuck
            assert worker.respawns == 1
            assert worker.state is WorkerState.READY


async def test_kill_on_cancel_also_applies_to_a_timeout(
    tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    marker = beacon("entered")
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1, timeouts=Timeouts(message=0.5)) as pool:
            first = pool.workers[0].pid
            with pytest.raises(WorkerTimeoutError):
                await pool.run_sync(block, str(marker), kill_on_cancel=True)
            await wait_gone(first)
            # The next call's 0.5 s would also bound the wait for the new
            # worker, which a loaded machine may take longer to start.
            [worker] = pool.workers
            await wait_until(lambda: worker.state is WorkerState.READY, "a new worker")
            assert await pool.run_sync(pid) != first


async def test_without_kill_on_cancel_the_worker_finishes_the_call(
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """The caller is back at once; the worker is left to its call (a SIGKILL
    here ends it, and the pool replaces it)."""
    marker = beacon("entered")
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1) as pool:
            busy = pool.workers[0].pid
            with anyio.move_on_after(GUARD) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: pool.run_sync(block, str(marker)))
                    await marker.wait_for_text()
                    scope.cancel()
            assert pool.workers[0].pid == busy
            os.kill(busy, signal.SIGKILL)
            await wait_until(
                lambda: [c.pid for c in pool.workers if c.pid != busy] != [],
                "a replacement",
            )
            assert await pool.run_sync(add, 2, 2) == 4


@pytest.mark.parametrize("serializer", [MsgpackSerializer(), PickleSerializer()])
async def test_the_built_in_worker_takes_the_hosts_serializer(
    serializer: Serializer,
) -> None:
    with anyio.fail_after(GUARD):
        async with open_worker_pool(size=1, serializer=serializer) as pool:
            assert await pool.run_sync(shift, Point(1, 2), 3) == Point(4, 2)


@pytest.mark.parametrize("name", ["mine", "json"])
async def test_a_serializer_of_ones_own_needs_a_target(name: str) -> None:
    """Even one that takes a built-in's name: the built-in worker would use
    the built-in."""

    class Mine(JsonSerializer):
        pass

    Mine.name = name
    with pytest.raises(ValueError, match="library's serializers"):
        async with open_worker_pool(size=1, serializer=Mine()):
            pass
