"""The base classes that mark a message as a request, a notification or an event."""

# No "from __future__ import annotations": the annotations below must stay
# resolvable after __module__ is rewritten to "isolated_workers".

from typing import ClassVar, Generic, TypeVar

__all__ = ["Event", "Notification", "Request", "StreamRequest"]

# Covariant, so that a Request[int] is also a Request[object].
R_co = TypeVar("R_co", covariant=True)


class Request(Generic[R_co]):
    """Base of request messages: ``send()`` returns the worker's result.

    Subclass it as an attrs-frozen class and name the result type::

        @attrs.frozen
        class Resize(Request[Resized]):
            data: bytes
            width: int

    The wire name is the class name unless the class sets
    ``message_type: ClassVar[str] = "..."``.
    """

    __slots__ = ()
    message_type: ClassVar[str]


class Notification:
    """Base of fire-and-forget messages: ``send()`` returns `None` once written."""

    __slots__ = ()
    message_type: ClassVar[str]


class Event:
    """Base of messages a worker sends to its host while it works, with
    `emit`; the host hands them to the callback ``on_event`` names for their
    class. Fire-and-forget, like a notification the other way."""

    __slots__ = ()
    message_type: ClassVar[str]


# Covariant, like R_co.
T_co = TypeVar("T_co", covariant=True)


class StreamRequest(Generic[T_co]):
    """Base of requests answered with many items: ``worker.stream()`` yields
    them as the worker's handler, an async generator, produces them.

    Subclass it as an attrs-frozen class and name the item type::

        @attrs.frozen
        class Scan(StreamRequest[Match]):
            pattern: str
    """

    __slots__ = ()
    message_type: ClassVar[str]
