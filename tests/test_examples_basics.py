"""The examples of the error handling, timeouts and lifecycle guides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_errors(tmp_path: Path, backend: str) -> None:
    """Handler errors keep built-in types or come as RemoteError; the worker
    keeps serving; a notification's error is logged; bad replies, sends after
    the close and a contract mismatch raise the library's own errors."""
    out = run_example(tmp_path, "errors.py", backend).stdout
    assert "Caught as a KeyError: KeyError: 'screws'" in out
    assert "and it is a RemoteError too: True" in out
    assert "Caught a RemoteError: errors_messages.OutOfStock: only 4 nuts left" in out
    assert "  remote_type: errors_messages.OutOfStock\n" in out
    assert "  code: out-of-stock\n" in out
    # The worker's own traceback, down to the line that raised.
    assert 'errors_worker.py", line ' in out
    assert ", in reserve\n" in out
    assert "    errors_messages.OutOfStock: only 4 nuts left, 5 asked\n" in out
    assert "Reserved 3 bolts; 7 left." in out
    assert "The worker logged: the handler of notification 'Restock' raised" in out
    assert (
        "Caught a ProtocolError: the result of 'Count' does not match its "
        "declared type: expected int, got str"
    ) in out
    assert (
        "Caught a WorkerClosedError: the worker is closed; cannot send 'Count'" in out
    )
    assert (
        "Caught a WorkerStartupError: host and worker define these messages "
        "differently: Reserve"
    ) in out


def test_lifecycle(tmp_path: Path, backend: str) -> None:
    """States, a health check, state kept across messages, and a clean-up that
    runs after a graceful close but not after SIGTERM."""
    done = run_example(tmp_path, "lifecycle.py", backend)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Opened: READY, pid ")
    pid = lines[0].removeprefix("Opened: READY, pid ").rstrip(".")
    assert lines[1:] == [
        f"Health check passed: worker {pid}, 1 answered.",
        "Running total, kept in the worker: 42.",
        "Stats: 4 completed, 0 failed, 0 in flight, 0 respawns.",
        "After the block: CLOSED.",
        "The worker's clean-up wrote: calm: total 42 after 4 requests",
        "Health check failed: 'Ping' did not complete within 1 s.",
        "State: READY; process alive: True.",
        "After the block: CLOSED.",
        "The worker's clean-up ran: False.",
    ]
    # The host's warning as it escalates the close of the stuck worker.
    assert "did not exit within 1 s; sending SIGTERM" in done.stderr
    assert "sending SIGKILL" not in done.stderr


def test_timeouts(tmp_path: Path, backend: str) -> None:
    """Configured limits and the caller's cancel scopes; async handlers are
    cancelled in the worker, a sync one runs on and its reply comes late;
    kill_on_cancel replaces the worker."""
    out = run_example(tmp_path, "timeouts.py", backend).stdout
    assert (
        "Timed out: WorkerTimeoutError: 'CountPrimes' did not complete within 0.5 s."
    ) in out
    assert "Gave up after 0.2 s: True." in out
    assert "The caller's limit came first: WorkerTimeoutError? False." in out
    # Printed by the worker itself, from its handler's cancellation: one per
    # request given up, unless a loaded machine delayed one so much that it
    # was withdrawn before its handler started.
    assert 1 <= out.count("[patient] cancelled at ") <= 3
    assert "Gave up on the sync handler; late replies: 0." in out
    assert "Is 7 prime? True. Late replies now: 1." in out
    assert "Killed the worker stuck in slow_area; state: STARTING." in out
    assert "A new worker answers: is 97 prime? True." in out
    assert "New pid: True; respawns: 1; state: READY." in out


def test_concepts(tmp_path: Path, backend: str) -> None:
    """A request, a notification, a stream and events, each doing its part."""
    out = run_example(tmp_path, "concepts.py", backend).stdout
    assert out.splitlines() == [
        "  event: line 1 of 2 counted",
        "  event: line 2 of 2 counted",
        "request: 11 words",
        "notification: sent; no reply",
        "  event: line 1 of 2 counted",
        "  event: line 2 of 2 counted",
        "request: 7 words, without 'the'",
        "stream: ['cat', 'sat', 'on', 'mat', 'dog', 'ate', 'cat']",
    ]
