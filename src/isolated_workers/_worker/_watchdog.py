"""The worker's watch on its host: when the host dies, the worker goes too.

The host keeps the write end of the bootstrap pipe open for the worker's whole
life and writes nothing more to it, so the read end sees end-of-file exactly
when the host process is gone, however it died (SIGKILL, OOM kill, os._exit).
A thread waits for that, so that a worker blocked in a long synchronous
handler, whose event loop cannot run, still exits. Unlike PR_SET_PDEATHSIG
this does not depend on which thread of the host spawned the worker.
"""

from __future__ import annotations

import faulthandler
import os
import select
import shutil
import signal
import sys
import threading
from typing import NoReturn

__all__ = [
    "HOST_GONE_EXIT_CODE",
    "enable_crash_reports",
    "exit_if_host_gone",
    "watch_host",
]

#: The exit status of a worker whose host died.
HOST_GONE_EXIT_CODE = 75


def watch_host(pipe_fd: int, socket_path: str | None) -> None:
    """Exit this process at once when the host's end of ``pipe_fd`` closes."""

    def wait_for_host_death() -> None:
        try:
            while os.read(pipe_fd, 4096):
                pass
        except OSError:
            pass
        _follow_host(socket_path)

    threading.Thread(
        target=wait_for_host_death, name="isolated-workers host watch", daemon=True
    ).start()


def exit_if_host_gone(pipe_fd: int, socket_path: str | None) -> None:
    """If the host has already died, exit now, quietly, as the watch would."""
    poller = select.poll()  # unlike select(), fine with fd numbers over 1023
    poller.register(pipe_fd, select.POLLIN)
    if poller.poll(0) and not os.read(pipe_fd, 1):
        _follow_host(socket_path)


def _follow_host(socket_path: str | None) -> NoReturn:
    # Normally the host removes the socket directory once the worker is
    # connected; a host that died before then cannot.
    if socket_path is not None:
        shutil.rmtree(os.path.dirname(socket_path), ignore_errors=True)
    if os.getpgrp() == os.getpid():
        # The worker leads its own group: take what it started along too, as
        # its host would have on close. This ends the worker as well.
        os.killpg(0, signal.SIGKILL)
    os._exit(HOST_GONE_EXIT_CODE)  # only if it was not its own group's leader


def enable_crash_reports() -> None:
    """Make a fatal signal leave the crashing thread's Python stack on stderr,
    and SIGUSR1 dump every thread's stack (for hunting deadlocks)."""
    faulthandler.enable(file=sys.stderr, all_threads=False)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
