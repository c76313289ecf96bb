"""The examples of the serializers, middleware and transports guides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_tracing(tmp_path: Path, backend: str) -> None:
    """Trace ids cross to the worker and back in meta; messages travel zlibbed."""
    done = run_example(tmp_path, "tracing.py", backend)
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
