"""Survive a crashing worker: retry what is safe to retry, report the rest.

Run it from anywhere::

    python examples/crash_recovery.py          # host and worker on asyncio
    python examples/crash_recovery.py --trio   # both on Trio (pip install trio)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from backend_option import run
from flaky_messages import Digest, FlakyConfig, Messages, Record

from isolated_workers import (
    Reject,
    Retry,
    ShutdownPolicy,
    WorkerCrashedError,
    open_worker,
)

WORKER = Path(__file__).with_name("flaky_worker.py")
POISON = "unlucky"  # the input the worker crashes on

# A Digest may be sent up to three times (two retries); anything else fails
# as soon as the worker crashes under it.
POLICY = ShutdownPolicy(default=Reject(), per_message={Digest: Retry(attempts=2)})


async def main(state_dir: str) -> None:
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=FlakyConfig(state_dir=state_dir, poison=POISON),
        unexpected_shutdown=POLICY,
        output="capture",  # keep the worker's output for crash reports
    ) as worker:
        first_pid = worker.pid
        print(f"Worker {first_pid} is ready.")
        print(f"Digest of 'hello': {await worker.send(Digest('hello'))}")

        # (a) The worker dies under this request. A Digest may be retried:
        #     the client starts a new worker and sends the request again,
        #     and the caller sees only the result.
        digest = await worker.send(Digest(POISON))
        print(f"Digest of {POISON!r}: {digest}")
        print(f"Answered by worker {worker.pid}, in place of worker {first_pid}.")
        print(f"Respawns so far: {worker.respawns}.")

        # (b) A Record is not retried: the crash reaches the caller.
        try:
            await worker.send(Record(POISON))
        except WorkerCrashedError as exc:
            print(f"Record failed: {exc}")
            print(f"  reason: {exc.reason!r}")
            print(f"  attempt {exc.attempt} of {exc.max_attempts}")
            print("  the worker's last lines on stderr:")
            for line in (exc.stderr_tail or "").splitlines():
                print(f"    {line}")

        # Nothing was left to retry, and the default is Reject: the client
        # stays crashed, and further sends fail at once, unsent.
        print(f"Client state: {worker.state.name}.")
        try:
            await worker.send(Digest("hello"))
        except WorkerCrashedError as exc:
            print(f"A later send: {exc}")
        journal = await anyio.Path(state_dir, "journal.txt").read_text()
        print(f"Journal: {journal.splitlines()} (a retry would add it again).")

        # output="capture" kept what every worker of this client wrote.
        lines = worker.captured_stderr.splitlines()
        print(f"Captured stderr, {len(lines)} lines from both workers:")
        for line in lines:
            print(f"    {line}")


if __name__ == "__main__":
    # The worker's notes to itself live here, and go when the host is done.
    with tempfile.TemporaryDirectory() as state_dir:
        run(main, state_dir)
