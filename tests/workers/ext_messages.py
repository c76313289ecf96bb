"""Messages, middleware and serializers for tests/test_middleware.py and
tests/test_serializers.py."""

from __future__ import annotations

import contextvars
from typing import Any

import attrs

from isolated_workers import (
    Direction,
    Envelope,
    JsonSerializer,
    MsgpackSerializer,
    Notification,
    PickleSerializer,
    Request,
    Serializer,
    define_messages,
)


@attrs.frozen
class Payload:
    items: list[int]
    blob: bytes
    label: str | None = None


@attrs.frozen
class Echo(Request[Payload]):
    payload: Payload


@attrs.frozen
class SeenMeta(Request[dict[str, str]]):
    """Returns the meta the worker's middleware recorded for this request."""


@attrs.frozen
class Guarded(Request[int]):
    """The worker's middleware refuses negative values before the handler runs."""

    value: int


@attrs.frozen
class Explode(Request[None]):
    text: str


@attrs.frozen
class Wait(Request[None]):
    """Never answered: the handler waits until cancelled."""


@attrs.frozen
class Hold(Request[int]):
    """Answered with ``value`` once a `Release` arrives."""

    value: int


@attrs.frozen
class Release(Notification):
    pass


@attrs.frozen
class Note(Notification):
    value: int


@attrs.frozen
class Notes(Request[list[int]]):
    pass


Messages = define_messages(
    Echo, SeenMeta, Guarded, Explode, Wait, Hold, Release, Note, Notes
)

#: The meta of the request being handled, set by the worker's middleware.
request_meta: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "request_meta", default=None
)


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
