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

from .._errors import WorkerStartupError
from .._util import log

__all__ = ["kill_and_reap", "signal_group", "spawn", "stop_and_reap"]

logger = logging.getLogger("isolated_workers")


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    pass_fds: Sequence[int],
    piped: bool,
    stdin: int | None = None,
    stdout: int | None = None,
) -> Process:
    """Start a worker in its own session, so that a Ctrl+C in the terminal
    reaches only the host and the whole group can be killed at once.

    ``stdin`` and ``stdout`` are descriptors for the worker's own, where the
    transport uses them; ``piped`` pipes the rest of its output to the host.
    """
    if stdout is None and piped:
        stdout = subprocess.PIPE
    try:
        return await anyio.open_process(
            list(argv),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=stdout,
            stderr=subprocess.PIPE if piped else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise WorkerStartupError(
            f"cannot start worker with {argv[0]!r}: {exc}"
        ) from exc


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the worker's process group: it and anything it started.

    The group outlives its reaped leader while any member lives, so this also
    reaches what a worker left behind.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _signal(process: Process, sig: signal.Signals) -> None:
    if getattr(process, "in_process", False):  # the test kit's stand-in
        process.send_signal(sig)
    else:
        # By group id: Popen.send_signal would reap the child behind the
        # event loop's back.
        signal_group(process.pid, sig)


async def stop_and_reap(process: Process, grace: float) -> None:
    """Wait ``grace`` seconds for an exit already asked for, then SIGTERM, then
    SIGKILL; return only once the process is reaped. Shielded from cancellation."""
    with anyio.CancelScope(shield=True):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with anyio.move_on_after(grace):
                await process.wait()
            if process.returncode is not None:
                break
            log(
                logger,
                logging.WARNING,
                "worker %d did not exit within %.3g s; sending %s",
                process.pid,
                grace,
                sig.name,
            )
            _signal(process, sig)
        await kill_and_reap(process)


async def kill_and_reap(process: Process) -> None:
    """SIGKILL the worker's group (it and anything it started) and reap it."""
    with anyio.CancelScope(shield=True):
        _signal(process, signal.SIGKILL)
        await process.wait()
        await process.aclose()
