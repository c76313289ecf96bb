"""Middleware: functions that see, and may replace, every message on its way."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias, cast

import attrs

from .._errors import ProtocolError

__all__ = ["Direction", "Envelope", "EnvelopeKind", "Middleware", "apply", "check_meta"]

#: ``"outgoing"`` for what this side sends, ``"incoming"`` for what it receives.
Direction: TypeAlias = Literal["outgoing", "incoming"]
EnvelopeKind: TypeAlias = Literal["request", "notification", "result", "error"]


@attrs.frozen
class Envelope:
    """One message as middleware sees it.

    Attributes:
        kind: ``"request"``, ``"notification"``, ``"result"`` or ``"error"``.
        type: The wire name of the message (for a result or an error, of the
            request it answers).
        tx: The transaction id that pairs a request with its reply; 0 for a
            notification.
        payload: The message, the handler's result, or for an error the
            exception (a `RemoteError` on the host); never its serialized form.
        meta: Strings carried across the wire with the message, for trace
            ids and the like. A reply starts with empty ``meta``.
    """

    kind: Literal["request", "notification", "result", "error"]
    type: str
    tx: int
    payload: Any
    meta: dict[str, str] = attrs.field(factory=lambda: _no_meta())


def _no_meta() -> dict[str, str]:
    return {}


#: Called with each envelope and its direction; returns `None` to pass it on
#: unchanged or a new `Envelope` (made with `attrs.evolve`) to replace it. May
#: be a coroutine function.
Middleware: TypeAlias = Callable[
    [Envelope, Direction], Envelope | Awaitable[Envelope | None] | None
]


async def apply(
    middleware: Sequence[Middleware], envelope: Envelope, direction: Direction
) -> Envelope:
    """Run ``envelope`` through ``middleware`` in order; their errors propagate."""
    for step in middleware:
        answer: object = step(envelope, direction)
        if inspect.isawaitable(answer):
            answer = cast(object, await answer)  # checked below, untrusted
        if answer is None:
            continue
        if not isinstance(answer, Envelope):
            raise TypeError(
                f"middleware {step!r} returned {type(answer).__name__}; "
                "expected an Envelope or None"
            )
        if (answer.kind, answer.type, answer.tx) != (
            envelope.kind,
            envelope.type,
            envelope.tx,
        ):
            raise ValueError(
                f"middleware {step!r} changed the kind, type or tx of an envelope; "
                "only payload and meta may change"
            )
        check_meta(answer.meta, TypeError)
        envelope = answer
    return envelope


def check_meta(meta: object, error: type[Exception] = ProtocolError) -> dict[str, str]:
    """Return ``meta`` if it maps strings to strings (`None` means empty)."""
    if meta is None:
        return {}
    if type(meta) is dict:
        items = cast("dict[object, object]", meta)
        if all(type(k) is str and type(v) is str for k, v in items.items()):
            return cast("dict[str, str]", items)
    raise error(f"meta must be a dict of str to str, not {meta!r:.200}")
