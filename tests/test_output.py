"""Worker output: inherited, logged or captured; crash reports (API.md 12)."""

from __future__ import annotations

import logging
import signal

import anyio
import pytest

from isolated_workers import (
    Exited,
    WorkerCrashedError,
    WorkerStartupError,
    open_worker,
)
from tests._util import FAULT_WORKER, GUARD
from tests.workers.fault_messages import Die, Faults
from tests.workers.messages import Messages, Ping, Print

pytestmark = pytest.mark.anyio


async def test_capture_keeps_stdout_and_stderr_apart(worker_backend: str) -> None:
    """output="capture" keeps each stream for the client to read."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, backend=worker_backend, output="capture"
        ) as worker:
            await worker.send(Print(stdout="to stdout\n", stderr="to stderr\n"))
            while "to stderr" not in worker.captured_stderr:
                await anyio.sleep(0.01)
            while "to stdout" not in worker.captured_stdout:
                await anyio.sleep(0.01)
    assert "to stderr" not in worker.captured_stdout
    assert "to stdout" not in worker.captured_stderr


async def test_log_forwards_each_line_with_the_pid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """output="log" sends each line to the isolated_workers.worker logger."""
    caplog.set_level(logging.INFO, logger="isolated_workers.worker")
    with anyio.fail_after(GUARD):
        async with open_worker(FAULT_WORKER, messages=Faults, output="log") as worker:
            pid = worker.pid
            await worker.send(Print(stdout="first\nsecond\n"))
            while len([r for r in caplog.records if "second" in r.getMessage()]) < 1:
                await anyio.sleep(0.01)
    lines = [r for r in caplog.records if r.name == "isolated_workers.worker"]
    assert [r.getMessage() for r in lines[:2]] == [
        f"worker {pid} stdout: first",
        f"worker {pid} stdout: second",
    ]
    assert all(getattr(r, "worker_pid", None) == pid for r in lines)


async def test_a_flood_of_output_neither_blocks_nor_corrupts(
    worker_backend: str,
) -> None:
    """1 MiB to stdout and stderr per handler: no deadlock, replies intact (C14)."""
    big = "x" * 1023 + "\n"
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, backend=worker_backend, output="capture"
        ) as worker:
            for _ in range(3):
                await worker.send(Print(stdout=big * 1024, stderr=big * 1024))
            while len(worker.captured_stdout) < 1024 * 1024:
                await anyio.sleep(0.01)
    assert set(worker.captured_stdout) == {"x", "\n"}


class _FailingHandler(logging.Handler):
    """A log handler whose emit raises, as a broken user handler would."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.calls = 0
        self.wanted = wanted
        self.reached = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.calls += 1
        if self.calls == self.wanted:
            self.reached.set()
        raise RuntimeError("this handler is broken")


async def test_a_failing_log_handler_costs_only_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A handler that raises in emit(): each line is reported the way logging
    reports handler errors, and the block and the worker carry on (issue 8)."""
    handler = _FailingHandler(wanted=6)
    worker_logger = logging.getLogger("isolated_workers.worker")
    worker_logger.addHandler(handler)
    level = worker_logger.level
    worker_logger.setLevel(logging.INFO)
    try:
        with anyio.fail_after(GUARD):
            async with open_worker(
                FAULT_WORKER, messages=Faults, output="log"
            ) as worker:
                for i in range(3):
                    await worker.send(Print(stdout=f"out {i}\n", stderr=f"err {i}\n"))
                await handler.reached.wait()  # both pumps met the failure
                assert await worker.send(Ping()) == worker.pid
    finally:
        worker_logger.removeHandler(handler)
        worker_logger.setLevel(level)
    errors = capsys.readouterr().err
    assert errors.count("--- Logging error ---") == 6
    assert "RuntimeError: this handler is broken" in errors


async def test_a_segfault_report_carries_the_python_stack(worker_backend: str) -> None:
    """A segfault's faulthandler report reaches WorkerCrashedError.stderr_tail (A5)."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, backend=worker_backend, output="log"
        ) as worker:
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Die("segv"))
    error = caught.value
    assert error.reason == Exited(code=None, signal=signal.SIGSEGV)
    assert error.stderr_tail is not None
    assert "Segmentation fault" in error.stderr_tail
    assert "in die" in error.stderr_tail  # the handler's frame
    assert "segmentation fault" in str(error)  # the signal's hint


async def test_an_abort_is_reported_with_its_signal() -> None:
    """os.abort() in a handler: Exited(signal=SIGABRT) with the stack on stderr (A6)."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, output="capture"
        ) as worker:
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Die("abort"))
    assert caught.value.reason == Exited(code=None, signal=signal.SIGABRT)
    assert caught.value.stderr_tail is not None
    assert "Aborted" in caught.value.stderr_tail


async def test_inherited_output_gives_no_tail() -> None:
    """With the default output="inherit", crash errors carry no stderr tail."""
    with anyio.fail_after(GUARD):
        async with open_worker(FAULT_WORKER, messages=Faults) as worker:
            with pytest.raises(WorkerCrashedError) as caught:
                await worker.send(Die("exit42"))
    assert caught.value.stderr_tail is None
    assert worker.captured_stderr == ""


async def test_a_startup_failure_shows_the_workers_last_words() -> None:
    """A worker that raises at import: WorkerStartupError notes its stderr (A11)."""
    with anyio.fail_after(GUARD), pytest.raises(WorkerStartupError) as caught:
        async with open_worker(
            "tests.workers.bad_import_error", messages=Messages, output="capture"
        ):
            pass
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "RuntimeError" in notes


def test_output_mode_is_checked() -> None:
    """An unknown output mode is refused before anything starts."""

    async def main() -> None:
        async with open_worker(
            FAULT_WORKER,
            messages=Faults,
            output="loud",  # type: ignore[arg-type]
        ):
            pass

    with pytest.raises(ValueError, match="output"):
        anyio.run(main)
