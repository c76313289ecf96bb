"""Fixtures shared by the whole suite.

- ``anyio_backend``: every ``pytest.mark.anyio`` test runs on asyncio (debug mode)
  and, when it is installed, on Trio.
- ``worker_backend``: the event loop of the worker process; a test that requests it
  covers all four host/worker pairings.
- ``beacon``: files a worker writes lines to and a test awaits (`tests._util.Beacon`).
- ``check_leaks`` (autouse): fails a test that leaves fds, processes, zombies or
  socket directories behind; modules marked ``pure`` skip it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import _leaks
from tests._util import HAVE_TRIO, Beacon

_HOST_BACKENDS = [pytest.param(("asyncio", {"debug": True}), id="asyncio")]
_WORKER_BACKENDS = [pytest.param("asyncio", id="w-asyncio")]
if HAVE_TRIO:
    _HOST_BACKENDS.append(pytest.param("trio", id="trio"))
    _WORKER_BACKENDS.append(pytest.param("trio", id="w-trio"))

_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


_SESSION_TMPDIR = tempfile.mkdtemp(prefix="iw-tests-")


def pytest_configure(config: pytest.Config) -> None:
    """Give the run a temporary directory of its own, and adopt orphans.

    Socket directories then cannot be confused with those of other runs on the
    machine; adopted orphans are seen (and reaped) by the leak check.
    """
    os.environ["TMPDIR"] = tempfile.tempdir = _SESSION_TMPDIR
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


@pytest.fixture(params=_HOST_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    """The host's event loop, for anyio's pytest plugin."""
    backend: str | tuple[str, dict[str, Any]] = request.param
    return backend


@pytest.fixture(params=_WORKER_BACKENDS)
def worker_backend(request: pytest.FixtureRequest) -> str:
    """The event loop the worker process runs: ``"asyncio"`` or ``"trio"``."""
    backend: str = request.param
    return backend


@pytest.fixture(autouse=True)
def check_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves anything behind; kill any processes it left.

    Modules marked ``pure`` (no files, sockets or processes) skip it.
    """
    if request.node.get_closest_marker("pure") is not None:
        yield
        return
    before = _leaks.snapshot()
    yield
    leaks = _leaks.wait_for_no_leaks(before)
    if leaks:
        report = leaks.describe()  # before the kill, while cmdlines are readable
        # Kill and reap now so that these processes do not trouble the next test.
        _leaks.kill_and_reap(leaks.procs | leaks.zombies)
        pytest.fail(f"the test leaked resources:\n{report}", pytrace=False)


@pytest.fixture
def beacon(tmp_path: Path) -> Callable[[str], Beacon]:
    """Make `Beacon` files by name in ``tmp_path``."""
    return lambda name: Beacon(tmp_path / name)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's temporary directory."""
    shutil.rmtree(_SESSION_TMPDIR, ignore_errors=True)
