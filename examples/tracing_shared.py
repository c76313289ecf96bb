"""What the host and the worker of tracing.py share: the messages, and a
middleware that carries a trace id across the process boundary."""

from __future__ import annotations

import contextvars

import attrs

from isolated_workers import (
    Direction,
    Envelope,
    Request,
    define_messages,
)


@attrs.frozen
class Summarize(Request[str]):
    text: str


Messages = define_messages(Summarize)

#: The trace id of the work in progress, in the host's task or the worker's.
trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="-")


def tracing(envelope: Envelope, direction: Direction) -> Envelope | None:
    """Send the current trace id with every message; adopt the one received."""
    if direction == "outgoing":
        return attrs.evolve(envelope, meta={**envelope.meta, "trace": trace_id.get()})
    # Set it even when the message has none, so that no trace id is left
    # over from an earlier message handled in the same task.
    trace_id.set(envelope.meta.get("trace", "-"))
    return None
