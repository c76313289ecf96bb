"""Catch what a worker's handlers raise, and the library's own errors.

Run it from anywhere: ``python examples/errors.py`` (``--trio`` for Trio).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import anyio
import attrs
from backend_option import run
from errors_messages import Count, Messages, Reserve, Restock

from isolated_workers import (
    ProtocolError,
    RemoteError,
    Request,
    WorkerClosedError,
    WorkerStartupError,
    define_messages,
    open_worker,
)

WORKER = Path(__file__).with_name("errors_worker.py")
# The worker's stock, sent as startup data. The washers' "12" is a string
# that slipped in, as it might from a CSV file.
STOCK = {"bolts": 10, "nuts": 4, "washers": "12"}


@attrs.frozen
class OldReserve(Request[int]):
    """``Reserve`` as an older version of the contract had it."""

    message_type: ClassVar[str] = "Reserve"  # the same wire name

    item: str  # and no quantity


OLD_MESSAGES = define_messages(OldReserve, Count, Restock)


class StderrLines(logging.Handler):
    """Collects what workers write to stderr: with ``output="log"``, each line
    is a record of the ``isolated_workers.worker`` logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.arrived = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "worker_stream", None) == "stderr":
            self.lines.append(record.getMessage().split(": ", 1)[1])
            self.arrived.set()


async def main() -> None:
    stderr = StderrLines()
    worker_log = logging.getLogger("isolated_workers.worker")
    worker_log.addHandler(stderr)
    worker_log.setLevel(logging.INFO)

    async with open_worker(
        WORKER, messages=Messages, startup_data=STOCK, output="log"
    ) as worker:
        # A built-in exception keeps its type: catch it as usual.
        try:
            await worker.send(Reserve("screws", 1))
        except KeyError as exc:
            print(f"Caught as a KeyError: {exc}")
            print(f"  and it is a RemoteError too: {isinstance(exc, RemoteError)}")

        # Other exceptions come as a RemoteError, which describes them.
        try:
            await worker.send(Reserve("nuts", 5))
        except RemoteError as exc:
            print(f"Caught a RemoteError: {exc}")
            print(f"  remote_type: {exc.remote_type}")
            print(f"  code: {exc.code}")
            print("  remote_traceback:")
            for line in exc.remote_traceback.splitlines():
                print(f"    {line}")

        # The worker keeps serving after a handler raised.
        print(f"Reserved 3 bolts; {await worker.send(Reserve('bolts', 3))} left.")

        # A notification's handler has nobody to raise to: the worker logs
        # the error, and send() has returned long before.
        await worker.send(Restock("nuts", -2))
        with anyio.fail_after(10):
            await stderr.arrived.wait()
        print(f"The worker logged: {stderr.lines[0]}")

        # A result that does not match the declared type is refused.
        try:
            await worker.send(Count("washers"))
        except ProtocolError as exc:
            print(f"Caught a ProtocolError: {exc}")

    # Every error of the library is a WorkerError; two more of them:
    try:
        await worker.send(Count("bolts"))
    except WorkerClosedError as exc:
        print(f"Caught a WorkerClosedError: {exc}")

    try:
        async with open_worker(
            WORKER, messages=OLD_MESSAGES, startup_data=STOCK, output="log"
        ):
            pass
    except WorkerStartupError as exc:
        print(f"Caught a WorkerStartupError: {exc}")


if __name__ == "__main__":
    run(main)
