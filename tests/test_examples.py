"""Every script in ``examples/`` runs as a real host with real workers and says so."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._util import HAVE_TRIO

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.slow


def run_example(tmp_path: Path, name: str, *args: str) -> str:
    """Run ``examples/<name>`` from an unrelated directory; return its output."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,  # the examples must not depend on the working directory
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "backend",
    [
        "asyncio",
        pytest.param(
            "trio",
            marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed"),
        ),
        pytest.param(
            "uvloop",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("uvloop") is None,
                reason="uvloop is not installed",
            ),
        ),
    ],
)
def test_quickstart(tmp_path: Path, backend: str) -> None:
    """The quick-start counts primes, catches a ValueError and closes the worker."""
    args = [] if backend == "asyncio" else [f"--{backend}"]
    out = run_example(tmp_path, "quickstart.py", *args)
    assert f"Host on {backend};" in out
    assert "primes-1 found 22,044 primes below 250,000." in out
    assert "Is 2,147,483,647 prime? True." in out
    assert "Caught on the host: ValueError: " in out
    assert "-7 is negative" in out
    assert "3 requests, 1 error caught, worker closed." in out


@pytest.mark.skipif(HAVE_TRIO, reason="checks the message shown without trio")
def test_quickstart_without_trio(tmp_path: Path) -> None:
    """Asked for Trio where it is missing, the quick-start says how to get it."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--trio"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "isolated-workers[trio]" in done.stderr


def test_pool(tmp_path: Path) -> None:
    """Forty chunks sent at once spread evenly over a pool of four workers."""
    out = run_example(tmp_path, "pool.py")
    assert "4 workers ready" in out
    assert "33,860 primes below 400,000, in 40 chunks." in out
    assert "Chunks per worker: [10, 10, 10, 10]" in out
    assert "Pool closed;" in out


def test_functions(tmp_path: Path) -> None:
    """run_sync carries an attrs argument and result, and kills a stuck call."""
    out = run_example(tmp_path, "functions.py")
    assert "grow(Box(3, 4), 2) = Box(width=5, height=6)" in out
    assert "Gave up after 0.5 s" in out
    assert "area = 1" in out


def test_testing_kit_example() -> None:
    """The example test of host code on the in-process worker passes."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--rootdir", str(EXAMPLES), str(EXAMPLES / "test_with_kit.py")),
        ],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_fleet(tmp_path: Path) -> None:
    """Four workers started with task_group.start split the count between them."""
    out = run_example(tmp_path, "fleet.py")
    assert "4 workers ready" in out
    assert "33,860 primes below 400,000." in out
    assert out.count("primes in [") == 4
    if HAVE_TRIO:  # the fleet mixes event loops when it can
        assert "(trio)" in out
        assert "(asyncio)" in out
    assert "Fleet closed;" in out


def test_cancellation(tmp_path: Path) -> None:
    """Cancelled and timed-out requests are cancelled in a worker that keeps going."""
    out = run_example(tmp_path, "cancellation.py")
    assert "Gave up after 0.2 s: True." in out
    assert "Timed out: 'CountPrimes' did not complete within 0.5 s." in out
    # Printed by the worker itself, from its handler's cancellation.
    assert out.count("[patient] cancelled at ") == 2
    assert "Still serving: 168 primes below 1000." in out


@pytest.mark.parametrize(
    "backend",
    [
        "asyncio",
        pytest.param(
            "trio",
            marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed"),
        ),
    ],
)
def test_crash_recovery(tmp_path: Path, backend: str) -> None:
    """A crash under a Digest is retried on a new worker; one under a Record
    fails with a WorkerCrashedError that carries the worker's last words."""
    args = ["--trio"] if backend == "trio" else []
    out = run_example(tmp_path, "crash_recovery.py", *args)
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
    assert "Journal: ['unlucky'] (a retry would add it again)." in out
    assert "Captured stderr, 3 lines from both workers:" in out
    assert f"    [worker {first[1]}] digesting 'unlucky': exiting mid-way\n" in out


def test_tracing(tmp_path: Path) -> None:
    """Trace ids cross to the worker and back in meta; messages travel zlibbed."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "tracing.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "880,000 chars of text travel as 2,6" in out
    for tx, trace in (("1", "trace-a"), ("2", "trace-b")):
        assert f"[host] outgoing request #{tx} ({trace})" in out
        # The worker's middleware stamped its reply with the trace it adopted.
        assert f"[host] incoming result #{tx} ({trace})" in out
    assert "trace-a: 180,000 words, 8 distinct" in out
    assert "trace-b: 6 words, 4 distinct" in out
    assert "[worker] trace trace-a: 880,000 chars" in done.stderr
    assert "[worker] trace trace-b: 18 chars" in done.stderr
    assert out.endswith("Done.\n")
