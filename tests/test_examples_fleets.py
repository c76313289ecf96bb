"""The examples of the pools, streams and events, and testing guides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, HAVE_TRIO, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_pool(tmp_path: Path, backend: str) -> None:
    """Forty chunks sent at once spread evenly over a pool of four workers."""
    out = run_example(tmp_path, "pool.py", backend).stdout
    assert "4 workers ready" in out
    assert "33,860 primes below 400,000, in 40 chunks." in out
    assert "Chunks per worker: [10, 10, 10, 10]" in out
    assert "Pool closed;" in out


def test_functions(tmp_path: Path, backend: str) -> None:
    """run_sync carries an attrs argument and result, and kills a stuck call."""
    out = run_example(tmp_path, "functions.py", backend).stdout
    assert "grow(Box(3, 4), 2) = Box(width=5, height=6)" in out
    assert "Gave up after 0.5 s" in out
    assert "area = 1" in out


def test_fleet(tmp_path: Path, backend: str) -> None:
    """Four workers started with task_group.start split the count between them."""
    out = run_example(tmp_path, "fleet.py", backend).stdout
    assert "4 workers ready" in out
    assert "33,860 primes below 400,000." in out
    assert out.count("primes in [") == 4
    if HAVE_TRIO:  # the fleet mixes event loops when it can
        assert "(trio)" in out
        assert "(asyncio)" in out
    assert "Fleet closed;" in out
