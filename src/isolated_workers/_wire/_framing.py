"""Length-prefixed frames: encoding and parsing.

A frame is a 13-byte header (body length: u32, kind: u8, transaction id: u64,
big-endian) followed by the body. Readers parse every complete frame of each
read; a large body is read straight into a buffer of its own and written from
the caller's buffer, never joined to its header.
"""

from __future__ import annotations

import enum
import struct
import sys

from anyio.abc import ByteReceiveStream

from .._errors import ProtocolError
from ._streams import Buffer

__all__ = [
    "HEADER",
    "Frame",
    "FrameParser",
    "FrameReader",
    "Kind",
    "encode_frame",
    "frame_parts",
]

HEADER = struct.Struct("!IBQ")
MAX_FRAME_LIMIT = 2**32 - 1
_READ_SIZE = 256 * 1024
# Compact the read buffer when less room than this is left at its end.
_MIN_READ = 64 * 1024
# The largest frame buffer kept for the next large frame.
_RECYCLED = 4 * 1024 * 1024
# A large frame's buffer grows by this much at a time: a header alone does not
# make the reader allocate all it announces.
_LARGE_STEP = 64 * 1024 * 1024


class Kind(enum.IntEnum):
    REQUEST = 1
    NOTIFICATION = 2
    RESULT = 3
    ERROR = 4
    CANCEL = 5
    SHUTDOWN = 6
    HELLO = 7
    READY = 8
    EVENT = 9
    STREAM = 10  # a `StreamRequest`, to the worker
    ITEM = 11  # one item of a stream, to the host
    CREDIT = 12  # the host takes that many more items of a stream


#: kind, transaction id, body; the body of a frame larger than the read
#: buffer is the `bytearray` it was read into, not a copy of it.
Frame = tuple[int, int, "bytes | bytearray"]

#: Bodies up to this size are joined to their header; larger ones are written
#: from the caller's buffer as they are.
_JOIN_LIMIT = 64 * 1024


def frame_parts(
    kind: int, tx: int, body: Buffer, max_frame_size: int
) -> tuple[Buffer, ...]:
    """Header and body, ready for a gather write; refused before anything is
    written if too large."""
    size = len(body)
    if size > max_frame_size:
        raise ProtocolError(
            f"message of {size} bytes exceeds max_frame_size ({max_frame_size})"
        )
    header = HEADER.pack(size, kind, tx)
    if size <= _JOIN_LIMIT:
        return (header + body,)
    return (header, body)


def encode_frame(kind: int, tx: int, body: Buffer, max_frame_size: int) -> bytes:
    """Header plus body in one piece, refused if too large."""
    return b"".join(frame_parts(kind, tx, body, max_frame_size))


class FrameParser:
    """Cuts frames out of the bytes a channel delivers, without reading ahead.

    Read into `buffer`, then call `feed` with the count: it returns every frame
    the read completed. A frame too large for the read buffer gets a buffer
    of its own, of its announced size (allocated 64 MiB at a time), read into
    directly. A header announcing more than
    ``max_frame_size`` raises `ProtocolError` before any of its body is read.
    """

    def __init__(self, max_frame_size: int, read_size: int = _READ_SIZE) -> None:
        self._max = max_frame_size
        self._data = bytearray(read_size)
        self._start = 0  # the first byte not yet parsed
        self._end = 0  # the end of what was read
        self._large: bytearray | None = None  # the frame read into its own buffer
        self._large_filled = 0
        self._large_head = (0, 0, 0)  # kind, tx, size
        # The last large frame's buffer, reused for the next one if by then
        # nobody else holds it: fresh memory costs a page fault per page.
        self._lent: bytearray | None = None

    @property
    def has_partial_frame(self) -> bool:
        return self._large is not None or self._end > self._start

    def buffer(self) -> memoryview:
        """Where the next read goes."""
        large = self._large
        if large is not None:
            if self._large_filled == len(large):
                large += bytes(min(self._large_head[2] - len(large), _LARGE_STEP))
            return memoryview(large)[self._large_filled :]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._data) - self._end < _MIN_READ:
            kept = self._end - self._start
            self._data[:kept] = self._data[self._start : self._end]
            self._start, self._end = 0, kept
        return memoryview(self._data)[self._end :]

    def feed(self, count: int) -> list[Frame]:
        """Take ``count`` bytes read into `buffer`; return the complete frames."""
        large = self._large
        if large is not None:
            self._large_filled += count
            kind, tx, size = self._large_head
            if self._large_filled < size:
                return []
            self._large = None
            if size <= _RECYCLED:
                self._lent = large
            return [(kind, tx, large)]
        self._end += count
        data = self._data
        frames: list[Frame] = []
        start, end = self._start, self._end
        while end - start >= HEADER.size:
            size, kind, tx = HEADER.unpack_from(data, start)
            if size > self._max:
                raise ProtocolError(
                    f"incoming frame of {size} bytes exceeds "
                    f"max_frame_size ({self._max})"
                )
            body = start + HEADER.size
            if end - body >= size:
                frames.append((kind, tx, bytes(data[body : body + size])))
                start = body + size
            elif size + HEADER.size > len(data) - _MIN_READ:
                # Too large to gather here: give it a buffer of its own.
                have = end - body
                spare, self._lent = self._lent, None
                # Held only by `spare` and getrefcount's argument: free to reuse.
                if (
                    spare is not None
                    and sys.getrefcount(spare) == 2
                    and len(spare) >= min(size, _LARGE_STEP)
                ):
                    del spare[size:]  # keeps its memory: no new pages to touch
                    self._large = spare
                else:
                    self._large = bytearray(min(size, max(have, _LARGE_STEP)))
                self._large[:have] = data[body:end]
                self._large_filled = have
                self._large_head = (kind, tx, size)
                start = end
                break
            else:
                break
        self._start = start
        return frames


class FrameReader:
    """Reads frames from an AnyIO byte stream (the handshake's, and tests')."""

    def __init__(self, stream: ByteReceiveStream, max_frame_size: int) -> None:
        self._stream = stream
        self.parser = FrameParser(max_frame_size)

    @property
    def has_partial_frame(self) -> bool:
        return self.parser.has_partial_frame

    async def receive(self) -> list[Frame]:
        """Wait for at least one complete frame and return all that are complete.

        Raises:
            anyio.EndOfStream: The peer closed the stream (check
                `has_partial_frame` to tell a clean end from a truncated frame).
            ProtocolError: A header announced an oversized frame.
        """
        while True:
            view = self.parser.buffer()
            data = await self._stream.receive(len(view))
            view[: len(data)] = data
            frames = self.parser.feed(len(data))
            if frames:
                return frames
