"""Every script in ``examples/`` runs as a real host with real workers and says so.

The examples of each guide are run by ``tests/test_examples_<group>.py``; this
module runs the quick start, and checks that every example host is run on both
backends.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, EXAMPLES, HAVE_TRIO, run_example

TESTS = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        *EXAMPLE_BACKENDS,
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
    # run_example passes --trio; uvloop has an option of its own.
    if backend == "uvloop":
        out = run_example(tmp_path, "quickstart.py", "asyncio", "--uvloop").stdout
    else:
        out = run_example(tmp_path, "quickstart.py", backend).stdout
    assert f"Host on {backend};" in out
    assert "primes-1 found 22,044 primes below 250,000." in out
    assert "Is 2,147,483,647 prime? True." in out
    assert "Caught on the host: ValueError: " in out
    assert "-7 is negative" in out
    assert "3 requests, 1 error caught, worker closed." in out


@pytest.mark.slow
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


def example_hosts() -> list[str]:
    """The examples that are hosts: scripts with a main guard that serve no worker."""
    return sorted(
        path.name
        for path in EXAMPLES.glob("*.py")
        if 'if __name__ == "__main__":' in (text := path.read_text())
        and "run_worker(" not in text
    )


@pytest.mark.pure
def test_every_example_host_runs_on_both_backends() -> None:
    """Each example host is run by a test module whose tests all take the
    ``backend`` parameter of EXAMPLE_BACKENDS."""
    run_by: dict[str, str] = {}
    runs = re.compile(r'run_example\(\s*tmp_path,\s*"([\w.]+)",\s*backend')
    for path in TESTS.glob("test_examples*.py"):
        for name in runs.findall(path.read_text()):
            run_by[name] = path.name
    assert "quickstart.py" in run_by
    assert sorted(run_by) == example_hosts()
    for name in set(run_by.values()) - {"test_examples.py"}:
        text = (TESTS / name).read_text()
        assert 'pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)' in text, name


@pytest.mark.slow
def test_testing_kit_example() -> None:
    """The example tests of host code (in-process and real workers) pass, on
    both backends."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"),
            *("--rootdir", str(EXAMPLES), str(EXAMPLES / "test_with_kit.py")),
        ],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    real = "test_the_real_worker_answers_and_is_gone_after"
    assert f"{real}[asyncio] PASSED" in done.stdout
    if HAVE_TRIO:
        assert f"{real}[trio] PASSED" in done.stdout
        assert "[trio-autojump] PASSED" in done.stdout
