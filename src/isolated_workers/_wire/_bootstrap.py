"""What a worker learns from its host before it connects.

The host writes one JSON line into a pipe that only the child inherits; the
child finds the pipe through an environment variable holding just the fd
number. The secret therefore never appears on a command line or in the
environment, both of which other local users can read.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["ALLOCATOR_ENV", "BOOTSTRAP_ENV", "read_bootstrap", "write_bootstrap"]

#: Set in a worker's environment by its host; holds the bootstrap pipe's fd.
BOOTSTRAP_ENV = "ISOLATED_WORKERS_BOOTSTRAP_FD"

#: glibc's malloc settings for a worker, unless the user set them: requests
#: below 64 MiB come from the heap, and up to 64 MiB of it stays mapped when
#: freed. By default glibc gives a freed MiB-sized block back to the kernel
#: and faults fresh pages in for the next message, which halves the speed
#: of large messages. Read by glibc as the process starts; the worker then
#: removes them from its environment, so that its own children start with
#: the defaults.
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(64 * 1024 * 1024),
}


def write_bootstrap(fd: int, info: dict[str, Any]) -> None:
    data = json.dumps(info).encode() + b"\n"
    while data:  # far below a pipe's capacity, so this never blocks
        data = data[os.write(fd, data) :]


def read_bootstrap() -> dict[str, Any] | None:
    """Read the host's bootstrap line; `None` outside a worker process.

    The variable is removed so that the worker's own subprocesses do not take
    themselves for workers.
    """
    value = os.environ.pop(BOOTSTRAP_ENV, None)
    if value is None:
        return None
    fd = int(value)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(
                "the host closed the bootstrap pipe before writing to it"
            )
        line += chunk
    os.set_inheritable(fd, False)
    info: dict[str, Any] = json.loads(line)
    info["pipe_fd"] = fd
    for name in info.get("unset_env", ()):
        os.environ.pop(name, None)
    return info


#: The protocol's ends of the worker's original stdin and stdout, set by the
#: launcher of a worker that talks to its host over them (`PipeTransport`).
stdio_channel: tuple[int, int] | None = None
