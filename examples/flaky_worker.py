"""A worker that crashes on one input: run by crash_recovery.py.

Its ``Digest`` handler dies the first time it meets the poison text, and
notes in a file that it did, so the worker that replaces it survives. Its
``Record`` handler is killed by SIGKILL on the poison entry every time, after
writing it to the journal, much as the kernel's out-of-memory killer might.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path

from flaky_messages import Digest, FlakyConfig, Messages, Record

from isolated_workers import get_startup_data, run_worker

config = get_startup_data(as_type=FlakyConfig)
STATE = Path(config.state_dir)


def say(text: str) -> None:
    """Write a line to stderr, where crash reports look for it."""
    print(f"[worker {os.getpid()}] {text}", file=sys.stderr, flush=True)


def digest(msg: Digest) -> str:
    marker = STATE / "digest-crashed"
    if msg.text == config.poison and not marker.exists():
        marker.touch()  # the next worker will know, and get past this point
        say(f"digesting {msg.text!r}: exiting mid-way")
        os._exit(1)  # no reply, no cleanup: a crash
    return hashlib.sha256(msg.text.encode()).hexdigest()[:16]


def record(msg: Record) -> int:
    journal = STATE / "journal.txt"
    with journal.open("a") as file:
        file.write(msg.entry + "\n")
    say(f"recorded {msg.entry!r}")
    if msg.entry == config.poison:
        say("and now the kernel kills me")
        os.kill(os.getpid(), signal.SIGKILL)  # dies here, before replying
    return len(journal.read_text().splitlines())


if __name__ == "__main__":
    run_worker(Messages, {Digest: digest, Record: record})
