"""The examples of the pools, streams and events, and testing guides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from isolated_workers._wire._protocol import STREAM_WINDOW
from tests._util import EXAMPLE_BACKENDS, HAVE_TRIO, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_pool(tmp_path: Path, backend: str) -> None:
    """Forty chunks sent at once spread evenly over a pool of four workers."""
    out = run_example(tmp_path, "pool.py", backend).stdout
    assert "4 workers ready" in out
    assert "33,860 primes below 400,000, in 40 chunks." in out
    assert "Chunks per worker: [10, 10, 10, 10]" in out
    assert "Every worker agrees: [True, True, True, True]" in out
    assert "Pool closed;" in out


def test_functions(tmp_path: Path, backend: str) -> None:
    """run_sync carries an attrs argument and result, refuses a lambda, kills a
    stuck call, and works in a worker with a contract of its own."""
    out = run_example(tmp_path, "functions.py", backend).stdout
    assert "grow(Box(3, 4), 2) = Box(width=5, height=6)" in out
    assert "Refused on the host: __main__.main.<locals>.<lambda> is a lambda" in out
    assert "Gave up after 0.5 s" in out
    assert "area = 1" in out
    assert "In the primes worker: Box(width=2, height=2)" in out


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


def test_streams_events(tmp_path: Path, backend: str) -> None:
    """A stream's items come with the progress events of its worker; leaving
    early closes the generator a window ahead at most; an error comes after
    the items before it."""
    out = run_example(tmp_path, "streams_events.py", backend).stdout
    assert "1,229 primes below 10,000; the last is 9,973." in out
    assert "Progress events: [2500, 5000, 7500, 10000]." in out
    assert "[worker] primes below 10,000: closed after 1,229" in out
    assert "The first prime above 1,000 is 1,009; no more were needed." in out
    # The host took 169 primes (1,009 is the 169th); the worker found at most a
    # window more, and one it was about to yield.
    found = re.search(
        r"^\[worker\] primes below 10,000,000: closed after (\d+)$", out, re.M
    )
    assert found is not None, out
    assert 169 <= int(found[1]) <= 169 + STREAM_WINDOW + 1
    assert "9 primes, up to 9,999,991; then ValueError: 10,000,001 is past" in out
    assert "[worker] primes below 10,000,100: closed after 9" in out
