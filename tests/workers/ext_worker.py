"""The plain worker, with the serializer and middleware its startup data picks:
``{"serializer": "json" | "msgpack" | "pickle" | "reversed", "middleware": bool}``.

The middleware and serializers are defined here, for the tests to use on the
host too; importing this module performs no handshake.
"""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import (
    Direction,
    Envelope,
    JsonSerializer,
    Middleware,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    get_startup_data,
    run_worker,
)
from tests.workers.echo_handlers import HANDLERS, request_meta
from tests.workers.messages import Guarded, Messages


def worker_middleware(envelope: Envelope, direction: Direction) -> Envelope | None:
    """Record incoming meta; refuse negative Guarded values; sign replies."""
    if direction == "incoming":
        request_meta.set(envelope.meta)
        if isinstance(envelope.payload, Guarded) and envelope.payload.value < 0:
            raise PermissionError(f"negative values are refused: {envelope.payload}")
        return None
    return attrs.evolve(
        envelope,
        meta={"signed": "worker", "kind": envelope.kind, "tx": str(envelope.tx)},
    )


async def doubling_middleware(
    envelope: Envelope, direction: Direction
) -> Envelope | None:
    """An async middleware that doubles Guarded values on the way in."""
    if direction == "incoming" and isinstance(envelope.payload, Guarded):
        return attrs.evolve(envelope, payload=Guarded(envelope.payload.value * 2))
    return None


class ReversingSerializer(Serializer):
    """A custom serializer wrapping another: stores its bytes reversed."""

    def __init__(self, inner: Serializer) -> None:
        self.inner = inner
        self.name = f"reversed+{inner.name}"

    def dumps(self, obj: Any) -> bytes:
        return self.inner.dumps(obj)[::-1]

    def loads(self, data: bytes) -> Any:
        return self.inner.loads(data[::-1])


def make_serializer(name: str) -> Serializer:
    if name == "reversed":
        return ReversingSerializer(MsgpackSerializer())
    return {
        "json": JsonSerializer,
        "msgpack": MsgpackSerializer,
        "pickle": PickleSerializer,
    }[name]()


if __name__ == "__main__":
    config: dict[str, Any] = get_startup_data() or {}
    middleware: list[Middleware] = []
    if config.get("middleware"):
        middleware = [worker_middleware, doubling_middleware]
    run_worker(
        Messages,
        HANDLERS,
        middleware=middleware,
        serializer=make_serializer(config.get("serializer", "json")),
    )
