"""The worker of tracing.py: summarizes text, logging under the caller's trace id."""

from __future__ import annotations

import sys

from tracing_shared import Messages, Summarize, trace_id, tracing

from isolated_workers import run_worker


async def summarize(msg: Summarize) -> str:
    # The middleware set trace_id on the way in, in this handler's own task.
    print(f"[worker] trace {trace_id.get()}: {len(msg.text):,} chars", file=sys.stderr)
    words = msg.text.split()
    return f"{len(words):,} words, {len(set(words))} distinct"


if __name__ == "__main__":
    run_worker(Messages, {Summarize: summarize}, middleware=[tracing])
