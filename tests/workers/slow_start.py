"""The fault worker, paused before its handshake, for host-dies-during-handshake
and cancel-during-startup tests.

``python slow_start.py SPAWNED GO``: mark ``SPAWNED`` with this process's pid,
wait until the file ``GO`` exists (20 s at most, then exit 9), then connect to
the host and serve as the fault worker does.
"""

from __future__ import annotations

import os
import sys
import time

from tests.workers import fault_worker
from tests.workers.echo_handlers import mark


def main(spawned: str, go: str) -> None:
    mark(spawned)
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(9)
        time.sleep(0.005)
    fault_worker.main()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
