"""Middleware that traces: a trace id crosses to the worker with each request,
and comes back with its reply.

Run it from anywhere::

    python examples/tracing.py
"""

from __future__ import annotations

from pathlib import Path

import anyio
from backend_option import run
from tracing_shared import Messages, Summarize, trace_id, tracing

from isolated_workers import Direction, Envelope, WorkerClient, open_worker

WORKER = Path(__file__).with_name("tracing_worker.py")


def log(envelope: Envelope, direction: Direction) -> None:
    """Log each message with its trace id; returning None passes it on."""
    trace = envelope.meta.get("trace", "?")
    print(f"[host] {direction} {envelope.kind} #{envelope.tx} ({trace})")


async def summarize(worker: WorkerClient, text: str, trace: str) -> None:
    trace_id.set(trace)  # this task's trace id; the middleware sends it along
    print(f"{trace}: {await worker.send(Summarize(text))}")


async def main() -> None:
    async with open_worker(
        WORKER,
        messages=Messages,
        middleware=[tracing, log],  # in this order, both ways
    ) as worker:
        text = "the quick brown fox jumps over the lazy dog " * 20_000
        async with anyio.create_task_group() as tg:
            tg.start_soon(summarize, worker, text, "trace-a")
            tg.start_soon(summarize, worker, "to be or not to be", "trace-b")
    print("Done.")


if __name__ == "__main__":
    run(main)
