"""The example of the page on coming from another library."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_migrating(tmp_path: Path, backend: str) -> None:
    """run_sync in place of an executor: a call, a map, a time limit, an error."""
    out = run_example(tmp_path, "migrating.py", backend).stdout
    assert "grow(Box(3, 4), 2) = Box(width=5, height=6)" in out
    grown = ", ".join(f"Box(width={n}, height={n})" for n in range(2, 6))
    assert f"Grown by 1: [{grown}]" in out
    assert "slow_area timed out after 0.5 s; its worker was replaced." in out
    assert "Caught on the host: ValueError: sleep length must be non-negative" in out
    assert out.rstrip().endswith("Pool closed.")
