"""The examples of the shutdown handling guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_crash_recovery(tmp_path: Path, backend: str) -> None:
    """A crash under a Digest is retried on a new worker; one under a Record
    fails with a WorkerCrashedError that carries the worker's last words, and
    leaves the client crashed: a later send fails at once, unsent."""
    out = run_example(tmp_path, "crash_recovery.py", backend).stdout
    first = re.search(r"^Worker (\d+) is ready\.$", out, re.MULTILINE)
    answered = re.search(
        r"^Answered by worker (\d+), in place of worker (\d+)\.$", out, re.MULTILINE
    )
    assert first is not None, out
    assert answered is not None, out
    assert answered[2] == first[1] != answered[1]
    assert "Digest of 'hello': 2cf24dba5fb0a30e" in out
    assert "Digest of 'unlucky': e0dd5b5c9ba0c2b5" in out
    assert "Respawns so far: 1." in out
    assert (
        "Record failed: Worker crashed (exit code None, signal SIGKILL) while "
        "processing 'Record': killed by the OS or another process; out of memory "
        "is a common cause"
    ) in out
    assert "reason: Exited(code=None, signal=<Signals.SIGKILL: 9>)" in out
    assert "attempt 1 of 1" in out
    new = answered[1]
    assert f"    [worker {new}] recorded 'unlucky'\n" in out
    assert f"    [worker {new}] and now the kernel kills me\n" in out
    assert "Client state: CRASHED." in out
    assert (
        "A later send: Worker crashed earlier (exit code None, signal SIGKILL); "
        "'Digest' was not sent\n"
    ) in out
    assert "Journal: ['unlucky'] (a retry would add it again)." in out
    assert "Captured stderr, 3 lines from both workers:" in out
    assert f"    [worker {first[1]}] digesting 'unlucky': exiting mid-way\n" in out
