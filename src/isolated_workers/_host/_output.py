"""Where a worker's stdout and stderr go: inherited, logged, or captured."""

from __future__ import annotations

import collections
import logging
from typing import Literal

import anyio
from anyio.abc import ByteReceiveStream

from .._util import log

__all__ = ["OutputMode", "OutputSink", "check_output_mode"]

OutputMode = Literal["inherit", "log", "capture"]

#: Lines of a worker's stderr kept for crash reports.
TAIL_LINES = 50
#: Bytes of each stream kept in "capture" mode (the most recent ones).
CAPTURE_LIMIT = 1024 * 1024

#: A line longer than this is passed on in pieces (progress bars drawn with \r).
_LONGEST_LINE = 64 * 1024

worker_logger = logging.getLogger("isolated_workers.worker")


def check_output_mode(mode: str) -> None:
    if mode not in ("inherit", "log", "capture"):
        raise ValueError(f"output must be 'inherit', 'log' or 'capture', not {mode!r}")


class OutputSink:
    """Receives the output of every worker a client starts."""

    def __init__(self, mode: str) -> None:
        check_output_mode(mode)
        self.mode = mode
        self.captured: dict[str, bytearray] = {
            "stdout": bytearray(),
            "stderr": bytearray(),
        }

    @property
    def piped(self) -> bool:
        """Whether workers' output comes through pipes to the host."""
        return self.mode != "inherit"

    def new_tail(self) -> collections.deque[str]:
        return collections.deque(maxlen=TAIL_LINES)

    async def pump(
        self,
        stream: ByteReceiveStream,
        name: Literal["stdout", "stderr"],
        pid: int,
        tail: collections.deque[str],
    ) -> None:
        """Read one of a worker's streams to its end, line by line."""
        pending = b""
        try:
            async for chunk in stream:
                if self.mode == "capture":
                    kept = self.captured[name]
                    kept += chunk
                    del kept[:-CAPTURE_LIMIT]
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > _LONGEST_LINE:  # no newline in sight: cut it
                    lines.append(pending)
                    pending = b""
                for line in lines:
                    self._line(name, pid, line, tail)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        if pending:
            self._line(name, pid, pending, tail)

    def _line(
        self, name: str, pid: int, raw: bytes, tail: collections.deque[str]
    ) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if name == "stderr":
            tail.append(text)
        if self.mode == "log":
            log(
                worker_logger,
                logging.INFO,
                "worker %d %s: %s",
                pid,
                name,
                text,
                extra={"worker_pid": pid, "worker_stream": name},
            )
