"""Middleware on both sides: log, validate and time every request.

Run it from anywhere::

    python examples/middleware.py
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from contextvars import ContextVar
from pathlib import Path

import attrs
from backend_option import run
from middleware_messages import Messages, Slugify

from isolated_workers import Direction, Envelope, open_worker

WORKER = Path(__file__).with_name("middleware_worker.py")
logger = logging.getLogger("slug-host")

#: Who the current task works for; the middleware tells the worker.
user: ContextVar[str | None] = ContextVar("user", default=None)
#: When the current task sent its request: a task waits for one at a time.
sent: ContextVar[float] = ContextVar("sent")
#: One counter for every worker this program opens: a transaction id then
#: names one request in all the logs.
request_ids = itertools.count(1001)


def reject_empty(envelope: Envelope, direction: Direction) -> None:
    """Refuse a request before anything is written: the caller gets the error."""
    message = envelope.payload
    blank = isinstance(message, Slugify) and not message.title.strip()
    if direction == "outgoing" and blank:
        raise ValueError("Slugify needs a title with something in it")


def identify(envelope: Envelope, direction: Direction) -> Envelope | None:
    """Say in the request's meta which user it is for."""
    name = user.get()
    if direction == "outgoing" and name is not None:
        return attrs.evolve(envelope, meta={**envelope.meta, "user": name})
    return None


def log_message(envelope: Envelope, direction: Direction) -> None:
    """Log every request and reply; returning None passes it on unchanged."""
    if direction == "outgoing":
        who = envelope.meta.get("user", "nobody")
        logger.info("%s #%d: sending for %s", envelope.type, envelope.tx, who)
    else:
        logger.info("%s #%d: got the %s", envelope.type, envelope.tx, envelope.kind)


def timing(envelope: Envelope, direction: Direction) -> None:
    """Time each request, and show how long the worker said it took."""
    if direction == "outgoing":
        sent.set(time.perf_counter())
        return
    took = (time.perf_counter() - sent.get()) * 1000
    worker = envelope.meta.get("worker-ms", "?")
    logger.info(
        "#%d took %.1f ms, %s ms of it in the worker", envelope.tx, took, worker
    )


async def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[host] %(message)s", stream=sys.stdout
    )
    async with open_worker(
        WORKER,
        messages=Messages,
        # Applied in this order to each request, then in this order to its reply.
        middleware=[reject_empty, identify, log_message, timing],
        tx_id_factory=request_ids.__next__,
    ) as worker:
        user.set("alice")
        print(await worker.send(Slugify("Hello, World!")))

        try:
            await worker.send(Slugify("   "))
        except ValueError as exc:
            print(f"Refused on the host: {exc}")

        user.set(None)
        try:
            await worker.send(Slugify("Who am I?"))
        except PermissionError as exc:  # a RemoteError, and a PermissionError
            print(f"Refused by the worker: {exc}")


if __name__ == "__main__":
    run(main)
