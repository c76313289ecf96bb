"""When the host dies, its workers exit by themselves (reliability.md B6, B8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._util import HAVE_TRIO

BACKENDS = [
    "asyncio",
    pytest.param(
        "trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed")
    ),
]


def wait_reaped(pid: int, deadline: float) -> float | None:
    """Reap ``pid`` (an orphan adopted by this subreaper process); return when it
    exited, or None if it is still running at ``deadline``."""
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return time.monotonic()
        time.sleep(0.01)
    return None


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_exit_when_the_host_is_sigkilled(backend: str, tmp_path: Path) -> None:
    """Idle, busy-async and busy-sync workers all exit within 2 s of host death."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.workers.dying_host", backend, str(tmp_path)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    ) as host:
        try:
            check_workers_follow(host)
        finally:
            if host.poll() is None:  # the test failed before the host killed itself
                os.killpg(host.pid, signal.SIGKILL)


def check_workers_follow(host: subprocess.Popen[bytes]) -> None:
    """Read the workers' pids, see the host die, and time each worker's exit."""
    assert host.stdout is not None
    pids = json.loads(host.stdout.readline())
    assert host.wait(timeout=20) == -signal.SIGKILL
    died = time.monotonic()
    exits = {pid: wait_reaped(pid, died + 10) for pid in pids}
    still_running = [pid for pid, when in exits.items() if when is None]
    assert not still_running, f"workers outlived their host: {still_running}"
    slowest = max(when - died for when in exits.values() if when is not None)
    assert slowest < 2.0, f"a worker took {slowest:.2f} s to notice"
    assert not list(Path(os.environ["TMPDIR"]).glob("isolated-workers-*"))
