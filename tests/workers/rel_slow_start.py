"""A worker that pauses before its handshake, for host-dies-during-handshake and
cancel-during-startup tests.

``python rel_slow_start.py SPAWNED GO``: write this process's pid to ``SPAWNED``,
wait until the file ``GO`` exists (20 s at most, then exit 9), then connect to
the host and serve like rel_worker.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from isolated_workers import get_startup_data, run_worker
from tests.workers.rel_messages import RelMessages
from tests.workers.rel_worker import HANDLERS


def main(spawned: str, go: str) -> None:
    Path(spawned).write_text(str(os.getpid()))
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(9)
        time.sleep(0.005)
    get_startup_data()
    run_worker(RelMessages, HANDLERS)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
