"""Length-prefixed frames: `FrameReader`, `FrameParser` and `encode_frame`.

Every test runs on both backends and over three byte streams: an in-memory
stream (which can deliver its data one byte at a time and counts what it
delivers), AnyIO's own socket stream, and the library's `SocketStream` over a
``socket.socketpair()``, the transport the host and worker really use.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream

from isolated_workers import JsonSerializer, ProtocolError
from isolated_workers._util import DEFAULT_MAX_FRAME_SIZE
from isolated_workers._wire._framing import (
    HEADER,
    FrameParser,
    FrameReader,
    Kind,
    encode_frame,
    frame_parts,
)
from isolated_workers._wire._protocol import decode_body, encode_body
from isolated_workers._wire._streams import SocketStream
from tests._util import MemoryReceive, MemorySend

pytestmark = pytest.mark.anyio

MAX = DEFAULT_MAX_FRAME_SIZE
READ_SIZE = 256 * 1024  # FrameReader's read size
MiB = 1024 * 1024


KINDS = ["memory", "anyio-socket", "socket"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@asynccontextmanager
async def open_pipe(
    kind: str, max_chunk: int | None = None
) -> AsyncIterator[tuple[ByteSendStream, ByteReceiveStream]]:
    """A one-way byte pipe of the given kind: ``(send side, receive side)``."""
    if kind == "memory":
        tx_obj, rx_obj = anyio.create_memory_object_stream[bytes](float("inf"))
        tx: ByteSendStream = MemorySend(tx_obj)
        rx: ByteReceiveStream = MemoryReceive(rx_obj, max_chunk)
    else:
        assert max_chunk is None
        a, b = socket.socketpair()
        if kind == "anyio-socket":
            tx = await anyio.abc.UNIXSocketStream.from_socket(a)
            rx = await anyio.abc.UNIXSocketStream.from_socket(b)
        else:
            tx, rx = SocketStream(a), SocketStream(b)
    try:
        yield tx, rx
    finally:
        await tx.aclose()
        await rx.aclose()


async def eof(stream: ByteSendStream) -> None:
    """Make the receiving side see the end of the stream."""
    if isinstance(stream, MemorySend):
        await stream.send_eof()
    else:
        assert isinstance(stream, anyio.abc.ByteStream)
        await stream.send_eof()


# --------------------------------------------------------------------------
# encode_frame


def test_encode_frame_layout() -> None:
    frame = encode_frame(Kind.RESULT, 2**64 - 1, b"body", MAX)
    assert frame == HEADER.pack(4, Kind.RESULT, 2**64 - 1) + b"body"
    assert HEADER.size == 13
    assert frame[:4] == (4).to_bytes(4, "big")


def test_encode_frame_refuses_a_body_over_the_limit() -> None:
    assert encode_frame(Kind.REQUEST, 1, b"x" * 10, 10)[HEADER.size :] == b"x" * 10
    with pytest.raises(ProtocolError, match=r"11 bytes exceeds max_frame_size \(10\)"):
        encode_frame(Kind.REQUEST, 1, b"x" * 11, 10)


def test_encode_frame_default_limit() -> None:
    body = bytes(MAX + 1)
    with pytest.raises(ProtocolError, match="exceeds max_frame_size"):
        encode_frame(Kind.REQUEST, 1, body, MAX)
    assert len(encode_frame(Kind.REQUEST, 1, body[:MAX], MAX)) == MAX + HEADER.size


def test_encode_frame_empty_body() -> None:
    assert encode_frame(Kind.CANCEL, 3, b"", MAX) == HEADER.pack(0, Kind.CANCEL, 3)


# --------------------------------------------------------------------------
# Reading


async def test_one_frame_roundtrip(kind: str) -> None:
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(encode_frame(Kind.REQUEST, 7, b"hello", MAX))
            assert await reader.receive() == [(Kind.REQUEST, 7, b"hello")]
            assert not reader.has_partial_frame


async def test_many_frames_from_one_read(kind: str) -> None:
    frames = [(Kind.NOTIFICATION, tx, f"frame {tx}".encode()) for tx in range(50)]
    data = b"".join(encode_frame(k, tx, body, MAX) for k, tx, body in frames)
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(data)  # one write: the reader sees it in one read
            assert await reader.receive() == frames
            assert not reader.has_partial_frame


async def test_frames_split_across_reads(kind: str) -> None:
    first = encode_frame(Kind.REQUEST, 1, b"a" * 100, MAX)
    second = encode_frame(Kind.REQUEST, 2, b"b" * 100, MAX)
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(first + second[:5])
            assert await reader.receive() == [(Kind.REQUEST, 1, b"a" * 100)]
            assert reader.has_partial_frame
            await tx.send(second[5:50])
            await tx.send(second[50:])
            assert await reader.receive() == [(Kind.REQUEST, 2, b"b" * 100)]
            assert not reader.has_partial_frame


async def test_frame_delivered_one_byte_at_a_time() -> None:
    """C1: a multi-byte UTF-8 payload split at every byte boundary."""
    text = "€" * 100_000
    serializer = JsonSerializer()
    body = encode_body(serializer, "Echo", {"text": text})
    frame = encode_frame(Kind.REQUEST, 42, body, MAX)
    assert len(body) > 3 * 100_000
    with anyio.fail_after(30):
        async with open_pipe("memory", max_chunk=1) as (tx, rx):
            assert isinstance(rx, MemoryReceive)
            reader = FrameReader(rx, MAX)
            await tx.send(frame)
            [(kind, tx_id, got)] = await reader.receive()
            assert rx.delivered == len(frame)  # really one byte per read
    assert (kind, tx_id) == (Kind.REQUEST, 42)
    assert decode_body(serializer, got) == ("Echo", {"text": text}, None)


async def test_zero_length_frames(kind: str) -> None:
    data = b"".join(encode_frame(Kind.CANCEL, tx, b"", MAX) for tx in range(3))
    data += encode_frame(Kind.RESULT, 3, b"x", MAX)
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(data)
            assert await reader.receive() == [
                (Kind.CANCEL, 0, b""),
                (Kind.CANCEL, 1, b""),
                (Kind.CANCEL, 2, b""),
                (Kind.RESULT, 3, b"x"),
            ]


async def test_lone_zero_length_frame(kind: str) -> None:
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(encode_frame(Kind.SHUTDOWN, 0, b"", MAX))
            assert await reader.receive() == [(Kind.SHUTDOWN, 0, b"")]


# --------------------------------------------------------------------------
# Oversized frames


@pytest.mark.parametrize("announced", [2**32 - 1, MAX + 1])
async def test_oversized_header_is_refused_before_the_body(
    kind: str, announced: int
) -> None:
    """Only the header is sent: the error cannot come from reading the body."""
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(HEADER.pack(announced, Kind.REQUEST, 1))
            with pytest.raises(ProtocolError) as info:
                await reader.receive()
    assert str(info.value) == (
        f"incoming frame of {announced} bytes exceeds max_frame_size ({MAX})"
    )


async def test_oversized_frame_is_refused_after_one_read() -> None:
    """With the body available, the reader still reads no more than one chunk."""
    limit = 1000
    body = bytes(4 * MiB)
    with anyio.fail_after(5):
        async with open_pipe("memory") as (tx, rx):
            assert isinstance(rx, MemoryReceive)
            reader = FrameReader(rx, limit)
            await tx.send(HEADER.pack(len(body), Kind.REQUEST, 1) + body)
            with pytest.raises(ProtocolError, match="exceeds max_frame_size"):
                await reader.receive()
            assert 0 < rx.delivered <= READ_SIZE


@pytest.mark.parametrize("limit", [1, 1000, 300_000])
async def test_max_frame_size_is_accepted_exactly(kind: str, limit: int) -> None:
    body = bytes(range(256)) * (limit // 256) + bytes(limit % 256)
    assert len(body) == limit
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, limit)
            async with anyio.create_task_group() as tg:
                tg.start_soon(tx.send, encode_frame(Kind.RESULT, 9, body, limit))
                frames = await reader.receive()
            assert frames == [(Kind.RESULT, 9, body)]
            await tx.send(HEADER.pack(limit + 1, Kind.RESULT, 10))
            with pytest.raises(ProtocolError, match=f"{limit + 1} bytes exceeds"):
                await reader.receive()


async def test_largest_limit_accepts_the_largest_header(kind: str) -> None:
    """With max_frame_size = 2**32 - 1, a 2**32 - 1 header is not refused: the
    reader waits for the body (here: until the end of the stream)."""
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, 2**32 - 1)
            await tx.send(HEADER.pack(2**32 - 1, Kind.RESULT, 1) + b"partial")
            await eof(tx)
            with pytest.raises(anyio.EndOfStream):
                await reader.receive()
            assert reader.has_partial_frame


# --------------------------------------------------------------------------
# End of stream


async def test_clean_eof(kind: str) -> None:
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(encode_frame(Kind.RESULT, 1, b"last", MAX))
            await eof(tx)
            assert await reader.receive() == [(Kind.RESULT, 1, b"last")]
            with pytest.raises(anyio.EndOfStream):
                await reader.receive()
            assert not reader.has_partial_frame


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 3])
async def test_eof_in_mid_frame(kind: str, cut: int) -> None:
    frame = encode_frame(Kind.RESULT, 1, b"0123456789", MAX)
    with anyio.fail_after(5):
        async with open_pipe(kind) as (tx, rx):
            reader = FrameReader(rx, MAX)
            await tx.send(frame[:cut])
            await eof(tx)
            with pytest.raises(anyio.EndOfStream):
                await reader.receive()
            assert reader.has_partial_frame


# --------------------------------------------------------------------------
# Large frames: no copies


def test_a_large_body_is_written_apart_from_its_header() -> None:
    """Bodies over 64 KiB are not joined to their header (no copy)."""
    body = bytes(100 * 1024)
    header, same = frame_parts(Kind.RESULT, 5, body, MAX)
    assert same is body
    assert header == HEADER.pack(len(body), Kind.RESULT, 5)
    assert frame_parts(Kind.RESULT, 5, b"small", MAX) == (
        HEADER.pack(5, Kind.RESULT, 5) + b"small",
    )


def test_a_large_frame_is_read_into_a_buffer_of_its_size() -> None:
    """A frame larger than the read buffer gets a buffer of its announced size,
    which becomes the body: the parser copies no byte of it twice."""
    body = bytes(range(256)) * 4096  # 1 MiB
    data = encode_frame(Kind.RESULT, 1, body, MAX) + encode_frame(
        Kind.RESULT, 2, b"next", MAX
    )
    parser = FrameParser(MAX)
    frames: list[tuple[int, int, bytes | bytearray]] = []
    offset = 0
    buffers: set[int] = set()
    while offset < len(data):
        view = parser.buffer()
        count = min(len(view), len(data) - offset)
        view[:count] = data[offset : offset + count]
        buffers.add(id(view.obj))
        offset += count
        frames += parser.feed(count)
    [(_, tx1, big), (_, tx2, small)] = frames
    assert (tx1, tx2) == (1, 2)
    assert type(big) is bytearray
    assert big == body
    assert id(big) in buffers  # read into, not copied out of
    assert small == b"next"
    assert not parser.has_partial_frame


def feed_all(parser: FrameParser, data: bytes) -> list[tuple[int, int, Any]]:
    """Feed ``data`` through the parser's buffers; return the frames."""
    frames: list[tuple[int, int, Any]] = []
    offset = 0
    while offset < len(data):
        view = parser.buffer()
        count = min(len(view), len(data) - offset)
        view[:count] = data[offset : offset + count]
        view.release()
        offset += count
        frames += parser.feed(count)
    return frames


def test_a_large_buffer_is_reused_only_once_nobody_holds_it() -> None:
    """The buffer of a large frame serves the next large frame if the first
    body was dropped by then, and never while someone still reads it."""
    parser = FrameParser(MAX)
    frame = encode_frame(Kind.RESULT, 1, bytes(1024 * 1024), MAX)
    [(_, _, first)] = feed_all(parser, frame)
    [(_, _, second)] = feed_all(parser, frame)
    assert second is not first  # ``first`` is still held here
    kept = id(second)
    del second
    ones = bytes([1]) * (1024 * 1024)
    [(_, _, third)] = feed_all(parser, encode_frame(Kind.RESULT, 3, ones, MAX))
    assert id(third) == kept
    assert third == ones
    assert first == bytes(1024 * 1024)  # the body still held was not touched
