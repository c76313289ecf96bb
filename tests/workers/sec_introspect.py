"""A worker that reports its command line, environment and open fds."""

from __future__ import annotations

import json
import os
from pathlib import Path

from isolated_workers import get_startup_data, run_worker
from isolated_workers._worker._session import connect
from tests._leaks import open_fds
from tests.workers.sec_messages import Introspect, Introspection, Messages

startup = get_startup_data()  # performs the handshake
SESSION = connect()  # made by get_startup_data above
SOCKET_FD = SESSION.channel.fileno()  # type: ignore[union-attr]
PIPE_FD = SESSION.pipe_fd


def _fds() -> dict[str, str]:
    return {str(fd): target for fd, target in open_fds()}


def introspect(msg: Introspect) -> Introspection:
    return Introspection(
        pid=os.getpid(),
        cmdline=Path("/proc/self/cmdline").read_bytes(),
        proc_environ=Path("/proc/self/environ").read_bytes(),
        environ=dict(os.environ),
        fds=_fds(),
        socket_fd=SOCKET_FD,
        pipe_fd=PIPE_FD,
        startup_data=json.dumps(startup),
    )


if __name__ == "__main__":
    run_worker(Messages, {Introspect: introspect})
