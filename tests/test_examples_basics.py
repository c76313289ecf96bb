"""The examples of the error handling, timeouts and lifecycle guides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_cancellation(tmp_path: Path, backend: str) -> None:
    """Cancelled and timed-out requests are cancelled in a worker that keeps going."""
    out = run_example(tmp_path, "cancellation.py", backend).stdout
    assert "Gave up after 0.2 s: True." in out
    assert "Timed out: 'CountPrimes' did not complete within 0.5 s." in out
    # Printed by the worker itself, from its handler's cancellation.
    assert out.count("[patient] cancelled at ") == 2
    assert "Still serving: 168 primes below 1000." in out
