"""The base classes that mark a message as a request or a notification."""

# No "from __future__ import annotations": the annotations below must stay
# resolvable after __module__ is rewritten to "isolated_workers".

from typing import ClassVar, Generic, TypeVar

__all__ = ["Notification", "Request"]

R = TypeVar("R")


class Request(Generic[R]):
    """Base of request messages: ``send()`` returns the worker's result, an ``R``.

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
