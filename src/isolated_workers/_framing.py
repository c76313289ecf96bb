"""Length-prefixed frames over AnyIO byte streams.

A frame is a 13-byte header (body length: u32, kind: u8, transaction id: u64,
big-endian) followed by the body. Readers parse every complete frame of each
read; writers coalesce the frames queued while a write is under way into one.
"""

from __future__ import annotations

import contextlib
import enum
import struct
from collections.abc import Callable

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from ._errors import ProtocolError
from ._streams import NowaitStream

__all__ = ["HEADER", "FrameReader", "FrameWriter", "Kind", "encode_frame"]

HEADER = struct.Struct("!IBQ")
MAX_FRAME_LIMIT = 2**32 - 1
_READ_SIZE = 256 * 1024
_JOIN_LIMIT = 64 * 1024


class Kind(enum.IntEnum):
    REQUEST = 1
    NOTIFICATION = 2
    RESULT = 3
    ERROR = 4
    CANCEL = 5
    SHUTDOWN = 6
    HELLO = 7
    READY = 8


Frame = tuple[int, int, bytes]


def encode_frame(kind: int, tx: int, body: bytes, max_frame_size: int) -> bytes:
    """Header plus body, refused before anything is written if too large."""
    if len(body) > max_frame_size:
        raise ProtocolError(
            f"message of {len(body)} bytes exceeds max_frame_size ({max_frame_size})"
        )
    return HEADER.pack(len(body), kind, tx) + body


class FrameReader:
    """Reads frames; a header announcing more than ``max_frame_size`` is refused
    before its body is read."""

    def __init__(self, stream: ByteReceiveStream, max_frame_size: int) -> None:
        self._stream = stream
        self._max = max_frame_size
        self._buffer = bytearray()

    @property
    def has_partial_frame(self) -> bool:
        return bool(self._buffer)

    async def receive(self) -> list[Frame]:
        """Wait for at least one complete frame and return all that are complete.

        Raises:
            anyio.EndOfStream: The peer closed the stream (check
                `has_partial_frame` to tell a clean end from a truncated frame).
            ProtocolError: A header announced an oversized frame.
        """
        while True:
            frames = self._parse()
            if frames:
                return frames
            self._buffer += await self._stream.receive(_READ_SIZE)

    def _parse(self) -> list[Frame]:
        buffer = self._buffer
        frames: list[Frame] = []
        offset = 0
        end = len(buffer)
        while end - offset >= HEADER.size:
            size, kind, tx = HEADER.unpack_from(buffer, offset)
            if size > self._max:
                raise ProtocolError(
                    f"incoming frame of {size} bytes exceeds "
                    f"max_frame_size ({self._max})"
                )
            start = offset + HEADER.size
            if end - start < size:
                break
            frames.append((kind, tx, bytes(buffer[start : start + size])))
            offset = start + size
        if offset:
            del buffer[:offset]
        return frames


class FrameWriter:
    """Writes frames one batch at a time.

    Frames queued while another task writes go out together in the next batch.
    A batch the kernel takes at once is written without awaiting; the rest of
    one is written shielded from cancellation, because a frame half written
    would desynchronize the stream for every other caller.
    """

    def __init__(
        self,
        stream: ByteSendStream,
        spawn_flush: Callable[[], object] | None = None,
    ) -> None:
        self._stream = stream
        self._socket = stream if isinstance(stream, NowaitStream) else None
        self._queue: list[bytes] = []
        self._writing = False
        self._batch_done: anyio.Event | None = None  # made when someone waits
        self._error: BaseException | None = None
        self._spawn_flush = spawn_flush

    async def send(self, frame: bytes) -> None:
        """Write ``frame`` and return once it is written.

        Raises:
            anyio.BrokenResourceError, anyio.ClosedResourceError: the stream
                failed, now or in the batch that carried this frame.
        """
        if self._error is None:
            self._queue.append(frame)
            if not self._writing:
                await self._flush()
                return
            if self._batch_done is None:
                self._batch_done = anyio.Event()
            done = self._batch_done
            with anyio.CancelScope(shield=True):
                await done.wait()
        if self._error is not None:
            raise anyio.BrokenResourceError("the connection failed") from self._error

    def post(self, frame: bytes) -> None:
        """Queue ``frame`` without waiting; errors surface on the reading side."""
        if self._error is not None:
            return
        self._queue.append(frame)
        if not self._writing and self._spawn_flush is not None:
            self._writing = True  # the spawned flush owns the stream from now on
            self._spawn_flush()

    async def flush_posted(self) -> None:
        """Write what `post` queued; run as a task by ``spawn_flush``."""
        self._writing = False
        with contextlib.suppress(Exception):  # the reader sees the broken stream
            await self._flush()

    async def _flush(self) -> None:
        self._writing = True
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                done, self._batch_done = self._batch_done, None
                try:
                    if len(batch) > 1 and sum(map(len, batch)) <= _JOIN_LIMIT:
                        batch = [b"".join(batch)]
                    for data in batch:
                        await self._write(data)
                except BaseException as exc:
                    self._error = exc
                    self._release_waiters()  # no later batch will run
                    raise
                finally:
                    if done is not None:
                        done.set()
        finally:
            self._writing = False

    def _release_waiters(self) -> None:
        if self._batch_done is not None:
            self._batch_done.set()

    async def _write(self, data: bytes) -> None:
        if self._socket is None:
            with anyio.CancelScope(shield=True):
                await self._stream.send(data)
            return
        sent = self._socket.send_nowait(data)
        if sent < len(data):
            with anyio.CancelScope(shield=True):
                await self._socket.send(memoryview(data)[sent:])
