"""The worker of middleware.py: its middleware times, logs and checks each
request before the handler runs."""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar

import attrs
from middleware_messages import Messages, Slugify

from isolated_workers import Direction, Envelope, run_worker

logger = logging.getLogger("slug-worker")

#: When the request being handled arrived. Each async handler runs in a task
#: of its own, so each request has its own value.
arrived: ContextVar[float | None] = ContextVar("arrived", default=None)


def timing(envelope: Envelope, direction: Direction) -> Envelope | None:
    """Time each request from its arrival to its reply; the reply says how
    long in its meta."""
    if direction == "incoming":
        arrived.set(time.perf_counter())
        return None
    start = arrived.get()
    if start is None:  # a reply to a request this middleware never saw
        return None
    took = f"{(time.perf_counter() - start) * 1000:.2f}"
    return attrs.evolve(envelope, meta={**envelope.meta, "worker-ms": took})


def log_message(envelope: Envelope, direction: Direction) -> None:
    """Log every message; returning None passes it on unchanged."""
    user = envelope.meta.get("user", "nobody")
    if direction == "incoming":
        logger.info("%s #%d from %s", envelope.type, envelope.tx, user)
    else:
        logger.info("%s #%d: sending the %s", envelope.type, envelope.tx, envelope.kind)


def require_user(envelope: Envelope, direction: Direction) -> None:
    """Refuse a request that does not say who sent it, before its handler runs."""
    if direction == "incoming" and "user" not in envelope.meta:
        raise PermissionError(f"{envelope.type} #{envelope.tx} names no user")


async def slugify(msg: Slugify) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", msg.title.lower()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[worker] %(message)s")
    run_worker(
        Messages,
        {Slugify: slugify},
        # Applied in this order to each request, then in this order to its reply.
        middleware=[timing, log_message, require_user],
    )
