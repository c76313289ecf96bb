"""What the host and the worker of tracing.py share: the messages, a
compressing serializer and a middleware that carries a trace id."""

from __future__ import annotations

import contextvars
import zlib
from typing import Any

import attrs

from isolated_workers import (
    Direction,
    Envelope,
    Request,
    Serializer,
    define_messages,
)


@attrs.frozen
class Summarize(Request[str]):
    text: str


Messages = define_messages(Summarize)


class ZlibSerializer(Serializer):
    """Compresses what another serializer makes."""

    def __init__(self, inner: Serializer, *, limit: int = 64 * 1024 * 1024) -> None:
        self.inner = inner
        self.limit = limit  # a small frame must not inflate without bound
        self.name = f"zlib+{inner.name}"  # both sides must wrap alike

    def dumps(self, obj: Any) -> bytes:
        return zlib.compress(self.inner.dumps(obj))

    def loads(self, data: bytes) -> Any:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(data, self.limit)
        if inflater.unconsumed_tail:
            raise ValueError(f"message inflates beyond {self.limit} bytes")
        return self.inner.loads(plain)


#: The trace id of the work in progress, in the host's task or the worker's.
trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="-")


def tracing(envelope: Envelope, direction: Direction) -> Envelope | None:
    """Send the current trace id with every message; adopt the one received."""
    if direction == "outgoing":
        return attrs.evolve(envelope, meta={**envelope.meta, "trace": trace_id.get()})
    if "trace" in envelope.meta:
        trace_id.set(envelope.meta["trace"])
    return None
