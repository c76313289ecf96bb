"""The suite's rendezvous, `tests._util.Beacon`, wakes on what other processes write."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests._util import GUARD, Beacon

pytestmark = pytest.mark.anyio

WRITE = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2] + '\\n')"


async def write_from_a_child(path: Path, text: str) -> None:
    """A marker written the way a worker writes one, by another process."""
    await anyio.run_process([sys.executable, "-c", WRITE, str(path), text])


async def test_a_line_from_another_process_wakes_the_test(
    anyio_backend: object, beacon: Callable[[str], Beacon]
) -> None:
    """A beacon is a FIFO; each writer's line arrives whole, and the FIFO does
    not read as ended between two writers."""
    marker = beacon("marker")
    assert stat.S_ISFIFO(marker.path.stat().st_mode)
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


def test_a_late_writer_gets_a_plain_file(tmp_path: Path) -> None:
    """After `Beacon.close`, a writer creates a plain file, never blocks."""
    marker = Beacon(tmp_path / "late")
    marker.close()
    subprocess.run(
        [sys.executable, "-c", WRITE, str(marker.path), "late"],
        timeout=GUARD,
        check=True,
    )
    assert marker.path.read_text() == "late\n"
