"""The worker of examples/lifecycle.py: state kept across messages, and a
clean-up that runs when the host closes it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lifecycle_messages import Add, Hang, Health, LifecycleConfig, Messages, Ping

from isolated_workers import get_startup_data, run_worker

config = get_startup_data(as_type=LifecycleConfig)


class Tally:
    """The worker's state: one object, whose bound methods are the handlers.

    It lives as long as the process; a new worker starts with a new one.
    """

    def __init__(self) -> None:
        self.total = 0
        self.requests = 0

    def ping(self, msg: Ping) -> Health:
        self.requests += 1
        return Health(pid=os.getpid(), requests=self.requests)

    def add(self, msg: Add) -> int:
        self.requests += 1
        self.total += msg.amount
        return self.total

    def hang(self, msg: Hang) -> None:
        time.sleep(msg.seconds)  # a sync handler: nothing else runs meanwhile


if __name__ == "__main__":
    tally = Tally()
    try:
        run_worker(Messages, {Ping: tally.ping, Add: tally.add, Hang: tally.hang})
    finally:
        # run_worker returns when the host closes the worker gracefully. A
        # worker ended by a signal (SIGTERM, SIGKILL) never gets here.
        Path(config.exit_file).write_text(
            f"{config.name}: total {tally.total} after {tally.requests} requests\n"
        )
