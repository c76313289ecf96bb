"""The suite's rendezvous, `tests._util.Beacon`, sees what other processes write."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests._util import GUARD, Beacon

pytestmark = pytest.mark.anyio

APPEND = "import sys\nwith open(sys.argv[1], 'a') as f: f.write(sys.argv[2] + '\\n')"


async def write_from_a_child(path: Path, text: str) -> None:
    """A line appended the way a worker appends one, by another process."""
    await anyio.run_process([sys.executable, "-c", APPEND, str(path), text])


async def test_lines_from_other_processes_are_seen(
    anyio_backend: object, beacon: Callable[[str], Beacon]
) -> None:
    """Each writer's line is seen, in the order written."""
    marker = beacon("marker")
    with anyio.fail_after(GUARD):
        await write_from_a_child(marker.path, "first")
        assert await marker.wait_for_text() == "first\n"
        await write_from_a_child(marker.path, "second")
        assert await marker.wait_for_lines(2) == ["first", "second"]


async def test_waiting_for_nothing_fails_after_its_patience(
    anyio_backend: object, beacon: Callable[[str], Beacon]
) -> None:
    """A worker that never writes fails the wait; it does not hang the test."""
    marker = beacon("never")
    with pytest.raises(pytest.fail.Exception, match="waiting for any line"):
        await marker.wait_for_text(patience=0.05)
