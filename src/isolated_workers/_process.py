"""Spawning worker processes and stopping them: ask, SIGTERM, SIGKILL, always reap."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import Process

from ._errors import WorkerStartupError

__all__ = ["kill_group", "spawn", "stop_and_reap"]

logger = logging.getLogger("isolated_workers")


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    pass_fds: Sequence[int],
) -> Process:
    """Start a worker in its own session, so that a Ctrl+C in the terminal
    reaches only the host and the whole group can be killed at once."""
    try:
        return await anyio.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=None,
            stderr=None,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise WorkerStartupError(
            f"cannot start worker with {argv[0]!r}: {exc}"
        ) from exc


def kill_group(pid: int) -> None:
    """SIGKILL the worker's whole process group (it and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def stop_and_reap(process: Process, grace: float) -> None:
    """Wait ``grace`` seconds for an exit already asked for, then SIGTERM, then
    SIGKILL; return only once the process is reaped. Shielded from cancellation."""
    with anyio.CancelScope(shield=True):
        try:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with anyio.move_on_after(grace):
                    await process.wait()
                if process.returncode is not None:
                    break
                logger.warning(
                    "worker %d did not exit within %.3g s; sending %s",
                    process.pid,
                    grace,
                    sig.name,
                )
                if sig is signal.SIGKILL:
                    kill_group(process.pid)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(sig)
            await process.wait()
        finally:
            kill_group(process.pid)  # leftovers the worker started; it was reaped
            await process.aclose()
