"""Crash faults (reliability.md (a)): the worker dies or misbehaves.

Every test runs on the four host/worker backend pairings, under an absolute
``fail_after``, with real processes and real signals; faults are injected at
named points by tests/workers/fault_worker.py, and the tests wait on marker files
and worker-side counters, never on sleeps. The autouse leak check of conftest.py
adds: no fds, processes, zombies or socket directories left behind.

Scenarios with a policy other than `Reject` (A2, A3, A22, A23), crash reports
(``output=``, ``stderr_tail``) and A7/A8/A11-A13/A15 are covered elsewhere or
later.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from isolated_workers import (
    ConnectionClosed,
    Exited,
    Request,
    Timeouts,
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerError,
    WorkerState,
    WorkerTimeoutError,
)
from tests._util import (
    GUARD,
    Beacon,
    assert_reaped,
    expect_error,
    fault_worker,
    reap_orphan,
    socket_dirs,
    wait_gone,
    wait_running,
    wait_until,
)
from tests.workers.fault_messages import Die, DieSync, ReplyThenDie
from tests.workers.fault_worker import REPLY_THEN_DIE_CODE
from tests.workers.messages import Echo, Hold, Ping, Remember

pytestmark = pytest.mark.anyio

#: How soon after a crash every pending request must have failed (reliability.md).
CRASH_LATENCY = 1.0


def state(client: WorkerClient) -> WorkerState:
    """``client.state``, read afresh (a call keeps mypy from narrowing it)."""
    return client.state


def bg_mode(worker_backend: str) -> dict[str, str]:
    """Startup data making the fault worker serve inside a task group of its own."""
    return {"mode": "bg", "backend": worker_backend}


async def start_holds(
    tg: anyio.abc.TaskGroup, client: WorkerClient, count: int
) -> list[BaseException]:
    """Start ``count`` `Hold` requests and wait until all run in the worker; the
    list returned fills with the `WorkerCrashedError` each fails with."""
    errors: list[BaseException] = []
    for _ in range(count):
        tg.start_soon(
            expect_error, WorkerCrashedError, errors, lambda: client.send(Hold())
        )
    await wait_running(client, count)
    return errors


def assert_crashed(
    errors: list[BaseException], count: int, reason: object, message_type: str = "Hold"
) -> None:
    """``count`` distinct `WorkerCrashedError` objects, each with ``reason``."""
    assert len(errors) == count
    assert len({id(e) for e in errors}) == count
    for error in errors:
        assert isinstance(error, WorkerCrashedError)
        assert error.reason == reason
        assert error.message_type == message_type


async def assert_refuses_sends(client: WorkerClient) -> None:
    """A crashed client refuses requests and notifications at once."""
    with anyio.fail_after(0.5):
        with pytest.raises(WorkerCrashedError):
            await client.send(Ping())
        with pytest.raises(WorkerCrashedError):
            await client.send(Remember(1))


# --- A1: SIGKILL with 50 requests in flight -------------------------------------


async def test_a1_sigkill_fails_50_in_flight(
    anyio_backend: object, worker_backend: str
) -> None:
    """A1: SIGKILL fails 50 in-flight requests, each with its own error, within 1 s."""
    failed_at: list[float] = []

    async def hold(client: WorkerClient, errors: list[BaseException]) -> None:
        try:
            await client.send(Hold())
        except WorkerCrashedError as exc:
            failed_at.append(anyio.current_time())
            errors.append(exc)

    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(hold, client, errors)
                await wait_running(client, 50)
                killed = anyio.current_time()
                os.kill(pid, signal.SIGKILL)
            assert_crashed(errors, 50, Exited(code=None, signal=signal.SIGKILL))
            assert max(failed_at) - killed < CRASH_LATENCY
            assert all("signal SIGKILL" in str(e) for e in errors)
            assert client.state is WorkerState.CRASHED
            assert not client.is_active
            await wait_gone(pid, patience=CRASH_LATENCY)
            assert socket_dirs() == []
            await assert_refuses_sends(client)


# --- A4, A5, A6: exit codes and fatal signals ------------------------------------


@pytest.mark.parametrize(
    ("how", "reason", "stderr"),
    [
        pytest.param("exit42", Exited(code=42, signal=None), None, id="A4-exit42"),
        pytest.param(
            "segv",
            Exited(code=None, signal=signal.SIGSEGV),
            "Fatal Python error: Segmentation fault",
            id="A5-segfault",
        ),
        pytest.param(
            "abort",
            Exited(code=None, signal=signal.SIGABRT),
            "Fatal Python error: Aborted",
            id="A6-abort",
        ),
    ],
)
async def test_a4_a5_a6_exit_status_is_the_reason(
    anyio_backend: object,
    worker_backend: str,
    capfd: pytest.CaptureFixture[str],
    how: str,
    reason: Exited,
    stderr: str | None,
) -> None:
    """A4-A6: os._exit(42), a segfault and abort() crash with their exit status."""
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                pending = await start_holds(tg, client, 3)
                with pytest.raises(WorkerCrashedError) as info:
                    await client.send(Die(how))
            assert info.value.reason == reason
            assert info.value.message_type == "Die"
            assert_crashed(pending, 3, reason)
            assert client.state is WorkerState.CRASHED
            await wait_gone(pid, patience=CRASH_LATENCY)
            await assert_refuses_sends(client)
    if stderr is not None:
        # The worker inherits the host's stderr (output="inherit"), which capfd
        # captures: faulthandler left the Python stack of the fatal signal there.
        err = capfd.readouterr().err
        assert stderr in err
        assert "fault_worker.py" in err


# --- A9, A10: exits the worker's own code causes -------------------------------


@pytest.mark.parametrize(
    ("how", "background"),
    [
        pytest.param("system_exit0", False, id="SystemExit-in-handler"),
        pytest.param("bg_exit0", True, id="sys.exit-in-background-task"),
    ],
)
async def test_a9_unrequested_exit_zero_is_a_crash(
    anyio_backend: object, worker_backend: str, how: str, background: bool
) -> None:
    """A9: an exit with code 0 the host did not ask for is a crash, not a close."""
    options: dict[str, Any] = (
        {"startup_data": bg_mode(worker_backend)} if background else {}
    )
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend, **options) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                pending = await start_holds(tg, client, 3)
                died: list[BaseException] = []
                try:
                    await client.send(Die(how))
                except WorkerError as exc:
                    died.append(exc)
                # No error: the reply got out before the background task ran;
                # the Holds still fail below.
            assert_crashed(pending, 3, Exited(code=0, signal=None))
            assert all(type(e) is WorkerCrashedError for e in died), died
            assert client.state is WorkerState.CRASHED
            await wait_gone(pid, patience=CRASH_LATENCY)
            await assert_refuses_sends(client)


async def test_a10_exception_escaping_the_workers_task_group(
    anyio_backend: object, worker_backend: str
) -> None:
    """A10: an exception escaping the worker's own task group crashes it (code 1)."""
    with anyio.fail_after(GUARD):
        async with fault_worker(
            worker_backend, startup_data=bg_mode(worker_backend)
        ) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                pending = await start_holds(tg, client, 5)
                died: list[BaseException] = []
                # The handler itself returns; the task it started fails later.
                try:
                    await client.send(Die("bg_error"))
                except WorkerError as exc:
                    died.append(exc)
            assert_crashed(pending, 5, Exited(code=1, signal=None))
            assert all(type(e) is WorkerCrashedError for e in died), died
            assert client.state is WorkerState.CRASHED
            await wait_gone(pid, patience=CRASH_LATENCY)
            await assert_refuses_sends(client)


async def test_a9_a_sigterm_handler_of_the_workers_own_sets_the_exit_code(
    anyio_backend: object,
    worker_backend: str,
    capfd: pytest.CaptureFixture[str],
    beacon: Callable[[str], Beacon],
) -> None:
    """A9 (the worker's own code exits): a SIGTERM handler installed by the
    worker that raises SystemExit(7) inside a sync handler ends the worker
    with code 7 and no traceback, on both worker loops."""
    sleeping = beacon("sleeping")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:

                async def terminate_when_sleeping() -> None:
                    await sleeping.wait_for_text()
                    os.kill(pid, signal.SIGTERM)

                tg.start_soon(terminate_when_sleeping)
                with pytest.raises(WorkerCrashedError) as info:
                    await client.send(DieSync("term_exits_sleeping", str(sleeping)))
            assert info.value.reason == Exited(code=7, signal=None)
            await wait_gone(pid, patience=CRASH_LATENCY)
    assert "Traceback" not in capfd.readouterr().err


# --- A14: hung in C, ignoring SIGTERM ------------------------------------------


async def test_a14_close_kills_a_worker_hung_in_c(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    beacon: Callable[[str], Beacon],
) -> None:
    """A14: aclose() SIGKILLs and reaps a worker that ignores SIGTERM in pause()."""
    grace = 0.3
    caplog.set_level(logging.WARNING, logger="isolated_workers")
    hung = beacon("hung")
    with anyio.fail_after(GUARD):
        async with fault_worker(
            worker_backend, timeouts=Timeouts(shutdown=grace)
        ) as client:
            pid = client.pid
            closed: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    expect_error,
                    WorkerClosedError,
                    closed,
                    lambda: client.send(Die("ignore_term_pause", str(hung))),
                )
                await hung.wait_for_text()
                start = anyio.current_time()
                await client.aclose()
                elapsed = anyio.current_time() - start
            assert_reaped(pid)
            assert client.state is WorkerState.CLOSED
            assert len(closed) == 1
    assert elapsed < 2 * grace + 0.5
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("isolated_workers") and r.levelno >= logging.WARNING
    ]
    assert any("SIGKILL" in r.getMessage() for r in warnings), caplog.text


# --- A16: a grandchild keeps the socket open -------------------------------------


async def test_a16_crash_seen_from_exit_when_a_grandchild_holds_the_socket(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """A16: the crash is seen from the exit at once; the grandchild is killed too."""
    grandchild_marker = beacon("grandchild")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            start = anyio.current_time()
            with pytest.raises(WorkerCrashedError) as info:
                await client.send(Die("grandchild", str(grandchild_marker)))
            assert anyio.current_time() - start < CRASH_LATENCY
            assert info.value.reason == Exited(code=3, signal=None)
            assert client.state is WorkerState.CRASHED
        grandchild = int(await grandchild_marker.wait_for_text())
        assert_reaped(pid)
        # The grandchild was re-parented to this process (a child subreaper):
        # the library's group kill must have ended it; reap it here.
        await wait_until(
            lambda: reap_orphan(grandchild) is not None,
            f"the grandchild {grandchild} to be killed",
            patience=2.0,
        )


# --- A17: the reply, then the crash -------------------------------------------------


@pytest.mark.parametrize(
    "size", [pytest.param(16, id="small"), pytest.param(8 << 20, id="8MiB")]
)
async def test_a17_reply_written_before_the_crash_is_delivered(
    anyio_backend: object, worker_backend: str, size: int
) -> None:
    """A17: a reply fully written before the worker died is delivered; later
    requests fail."""
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                pending = await start_holds(tg, client, 3)
                assert await client.send(ReplyThenDie(size)) == b"x" * size
            assert_crashed(pending, 3, Exited(code=REPLY_THEN_DIE_CODE, signal=None))
            await wait_gone(pid, patience=CRASH_LATENCY)
            await assert_refuses_sends(client)


def block_until_exited(pid: int) -> None:
    """Block the host's event loop (on purpose) until the worker ``pid`` has
    exited, so that its reply and its exit are seen in the same loop turn."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.001)


async def reply_then_die(client: WorkerClient, outcomes: list[object]) -> None:
    """Send `ReplyThenDie`; note its result or error in ``outcomes``."""
    try:
        outcomes.append(await client.send(ReplyThenDie(16)))
    except WorkerError as exc:
        outcomes.append(exc)


async def test_a17_reply_wins_when_exit_and_reply_are_seen_together(
    anyio_backend: object, worker_backend: str
) -> None:
    """A17: a reply written before the exit is delivered even when the host sees
    both in the same turn of its event loop (5 rounds)."""
    with anyio.fail_after(GUARD):
        for _ in range(5):
            async with fault_worker(worker_backend) as client:
                outcomes: list[object] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(reply_then_die, client, outcomes)
                    await anyio.wait_all_tasks_blocked()  # the request is out
                    block_until_exited(client.pid)
                assert outcomes == [b"x" * 16]


# --- A18: the worker hangs up but stays alive ---------------------------------------


async def test_a18_hang_up_without_exit_is_a_crash_and_the_process_is_killed(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """A18: a worker closing its socket but living on is a ConnectionClosed crash,
    and the host kills and reaps it."""
    hung_up = beacon("hung_up")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            late: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                pending = await start_holds(tg, client, 3)
                tg.start_soon(
                    expect_error,
                    WorkerCrashedError,
                    pending,
                    lambda: client.send(Die("close_socket", str(hung_up))),
                )
                await hung_up.wait_for_text()
                await wait_until(
                    lambda: not client.is_connected, "the host to see the hang-up"
                )
                # Sent after the hang-up, before or after the crash is declared:
                # never a WorkerClosedError, the host did not close anything.
                tg.start_soon(
                    expect_error, WorkerCrashedError, late, lambda: client.send(Echo(1))
                )
                tg.start_soon(
                    expect_error,
                    WorkerCrashedError,
                    late,
                    lambda: client.send(Remember(1)),
                )
            assert len(pending) == 4
            assert all(isinstance(e, WorkerCrashedError) for e in pending)
            assert {e.reason for e in pending if isinstance(e, WorkerCrashedError)} == {
                ConnectionClosed()
            }
            assert len(late) == 2
            assert client.state is WorkerState.CRASHED
            # Killed and reaped by the host, not left running until aclose().
            await wait_gone(pid, patience=2.0)
            assert client.state is WorkerState.CRASHED


# --- A19: the worker's event loop is blocked ----------------------------------------


async def test_a19_blocked_event_loop_times_out_and_close_escalates(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """A19: with the worker's loop blocked, requests time out; aclose() escalates."""
    grace = 0.3
    busy = beacon("busy")
    timeouts = Timeouts(message=0.3, shutdown=grace)
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend, timeouts=timeouts) as client:
            pid = client.pid
            with pytest.raises(WorkerTimeoutError):
                await client.send(Die("busy", str(busy)))
            await busy.wait_for_text()
            for request in (Echo(1), Ping()):
                start = anyio.current_time()
                with pytest.raises(WorkerTimeoutError):
                    await client.send(request)
                assert anyio.current_time() - start < 0.3 + 0.5
            assert state(client) is WorkerState.READY  # a timeout is not a crash
            start = anyio.current_time()
            await client.aclose()
            elapsed = anyio.current_time() - start
            assert_reaped(pid)
            assert state(client) is WorkerState.CLOSED
    assert elapsed < 2 * grace + 0.5


# --- A20: duplicate shutdown signals ------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("exit5", id="exit+EOF"),
        pytest.param("sigkill-unread", id="exit+EOF+reset"),
    ],
)
async def test_a20_every_pending_request_settles_exactly_once(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    fault: str,
    beacon: Callable[[str], Beacon],
) -> None:
    """A20: exit, EOF and read error at once settle every pending request once."""
    outcomes: dict[int, list[object]] = {}

    async def call(key: int, request: Request[Any]) -> None:
        outcomes[key] = []
        try:
            outcomes[key].append(await client.send(request))
        except WorkerError as exc:
            outcomes[key].append(exc)

    async def race(first_key: int) -> None:
        """Keep sending until a send fails: requests meet the crash at every stage."""
        key = first_key
        while True:
            await call(key, Echo(key))
            if isinstance(outcomes[key][0], WorkerError):
                return
            key += 1

    stall = beacon("stall")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                for key in range(40):
                    tg.start_soon(call, key, Hold())
                await wait_running(client, 40)
                if fault == "exit5":
                    for racer in range(10):
                        tg.start_soon(race, 1000 * (racer + 1))
                    tg.start_soon(call, 99, Die("exit5"))
                else:
                    # The worker's loop is blocked: what the racers send now
                    # stays unread, so the kill resets the connection as well.
                    tg.start_soon(call, 98, Die("busy", str(stall)))
                    await stall.wait_for_text()
                    for racer in range(10):
                        tg.start_soon(race, 1000 * (racer + 1))
                    # 40 Holds, the Die and one Echo per racer: written, unread.
                    await wait_until(
                        lambda: len(outcomes) == 51, "unread requests to pile up"
                    )
                    await anyio.wait_all_tasks_blocked()
                    os.kill(pid, signal.SIGKILL)
    assert all(len(results) == 1 for results in outcomes.values()), outcomes
    errors = [r[0] for r in outcomes.values() if isinstance(r[0], BaseException)]
    assert len({id(e) for e in errors}) == len(errors)
    assert all(isinstance(e, WorkerCrashedError) for e in errors), errors
    expected = (
        Exited(code=5, signal=None)
        if fault == "exit5"
        else Exited(code=None, signal=signal.SIGKILL)
    )
    reasons = [e.reason for e in errors if isinstance(e, WorkerCrashedError)]
    assert set(reasons) == {expected}
    for key in range(40):
        assert isinstance(outcomes[key][0], WorkerCrashedError)


# --- A21: a requested close is not a crash -----------------------------------


async def test_a21_close_with_pending_requests_is_not_a_crash(
    anyio_backend: object, worker_backend: str
) -> None:
    """A21: aclose() fails 10 pending requests with WorkerClosedError only; a
    second aclose() is a no-op."""
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(
                        expect_error, WorkerError, errors, lambda: client.send(Hold())
                    )
                await wait_running(client, 10)
                await client.aclose()
            assert len(errors) == 10
            assert all(type(e) is WorkerClosedError for e in errors), errors
            assert client.state is WorkerState.CLOSED
            assert not client.is_active
            assert_reaped(pid)
            with anyio.fail_after(0.5):
                await client.aclose()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.aclose)
                    tg.start_soon(client.aclose)
                with pytest.raises(WorkerClosedError):
                    await client.send(Ping())
            assert client.state is WorkerState.CLOSED
