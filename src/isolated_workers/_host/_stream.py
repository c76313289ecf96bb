"""`ItemStream`: the host's end of a stream request, an async iterator of items.

The worker sends at most `STREAM_WINDOW` items ahead of what the consumer took;
the stream grants more with CREDIT frames as the consumer takes them, so a slow
consumer pauses the worker's generator and memory stays flat.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import attrs

from .._errors import ProtocolError, WorkerTimeoutError
from .._registry import MessageSpec
from .._wire._codec import StructureError
from .._wire._framing import Kind, frame_parts
from .._wire._protocol import CREDIT, STREAM_WINDOW, decode_body
from .._wire._serializers import Serializer
from ._link import WorkerLink

__all__ = ["ItemStream"]

T = TypeVar("T")


@attrs.define(eq=False)
class ItemStream(Generic[T]):
    """The items of one stream request, in the order the worker yielded them."""

    _spec: MessageSpec
    _tx: int
    _link: WorkerLink
    _serializer: Serializer
    _timeout: float
    _bodies: deque[bytes | bytearray] = attrs.field(
        init=False, factory=deque[bytes | bytearray]
    )
    _wake: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _taken: int = attrs.field(init=False, default=0)  # since the last credit
    _error: BaseException | None = attrs.field(init=False, default=None)
    #: Whether the worker has sent its last frame for this stream.
    ended: bool = attrs.field(init=False, default=False)

    def __aiter__(self) -> ItemStream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._bodies:
            with anyio.move_on_after(self._timeout):
                while not self._bodies and not self.ended:
                    await self._wake.wait()
                    self._wake = anyio.Event()
            if not self._bodies and not self.ended:
                raise WorkerTimeoutError(
                    f"no item of {self._spec.name!r} came within {self._timeout:g} s"
                )
        else:
            await anyio.lowlevel.checkpoint()
        if not self._bodies:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        body = self._bodies.popleft()
        self._taken += 1
        if self._taken >= STREAM_WINDOW // 2 and not self.ended:
            credit = CREDIT.pack(self._taken)
            self._link.post(frame_parts(Kind.CREDIT, self._tx, credit, CREDIT.size))
            self._taken = 0
        return self._item(body)

    def _item(self, body: bytes | bytearray) -> T:
        name = self._spec.name
        _, payload, _ = decode_body(self._serializer, body)
        assert self._spec.structure_result is not None
        try:
            item: T = self._spec.structure_result(payload, "")
        except StructureError as exc:
            raise ProtocolError(
                f"an item of {name!r} does not match its declared type: {exc}"
            ) from None
        return item

    # --- called by the client as frames come: never raise -----------------

    def push(self, body: bytes | bytearray) -> bool:
        """Keep an item; `False` if the worker sent more than it was granted."""
        # Each item the worker has sent and the host not yet paid for with a
        # CREDIT frame is buffered or counted in _taken: a worker that keeps
        # to its window never has more than STREAM_WINDOW of them.
        if len(self._bodies) + self._taken >= STREAM_WINDOW:
            return False
        self._bodies.append(body)
        self._wake.set()
        return True

    def end(self, error: BaseException | None = None) -> None:
        """The worker is done (``error``: it failed, or was lost)."""
        if not self.ended:
            self.ended, self._error = True, error
            self._wake.set()

    @property
    def name(self) -> str:
        return self._spec.name
