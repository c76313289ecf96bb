"""`Connection`: frames in and out of one channel, over real sockets and pipes.

Every test runs on both backends (asyncio's reader and writer callbacks, Trio's
reader and writer tasks) and over both channels a worker uses: a
``socket.socketpair()`` and a pair of pipes. The far end is a plain stream
read and written by the test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest

from isolated_workers import ProtocolError
from isolated_workers._wire._connection import Connection
from isolated_workers._wire._framing import (
    HEADER,
    Frame,
    FrameParser,
    FrameReader,
    Kind,
    encode_frame,
    frame_parts,
)
from isolated_workers._wire._streams import (
    Buffer,
    Channel,
    NowaitStream,
    PipeChannel,
    SocketChannel,
)
from tests._util import GUARD

pytestmark = pytest.mark.anyio

MAX = 64 * 1024 * 1024
MiB = 1024 * 1024


@pytest.fixture(params=["socket", "pipe"])
def channel_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def channel_pair(kind: str) -> tuple[Channel, Channel]:
    if kind == "socket":
        a, b = socket.socketpair()
        return SocketChannel(a), SocketChannel(b)
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    return PipeChannel(r1, w2), PipeChannel(r2, w1)


class Recorder:
    """Collects what a connection delivers; its reply callback may write."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.arrived = anyio.Event()

    def __call__(self, frames: list[Frame]) -> None:
        self.frames += frames
        self.arrived.set()


class CountingChannel(Channel):
    """Wraps a channel and counts its writes."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.read_fd, self.write_fd = inner.read_fd, inner.write_fd
        self.writes: list[int] = []

    def recv_into(self, buffer: memoryview) -> int:
        return self.inner.recv_into(buffer)

    def send(self, buffers: Sequence[Buffer]) -> int:
        sent = self.inner.send(buffers)
        self.writes.append(sent)
        return sent

    def shutdown_write(self) -> None:
        self.inner.shutdown_write()

    def close(self) -> None:
        self.closed = True
        self.inner.close()


@asynccontextmanager
async def connected(
    kind: str, wrap: type[CountingChannel] | None = None, high_water: int = MiB
) -> AsyncIterator[tuple[Connection, NowaitStream, FrameReader]]:
    """A connection (not running) and the far end as a stream and reader."""
    near, far = channel_pair(kind)
    if wrap is not None:
        near = wrap(near)
    connection = Connection(near, FrameParser(MAX), high_water=high_water)
    stream = NowaitStream(far)
    try:
        yield connection, stream, FrameReader(stream, MAX)
    finally:
        connection.close()
        await stream.aclose()


async def read_frames(reader: FrameReader, count: int) -> list[Frame]:
    frames: list[Frame] = []
    while len(frames) < count:
        frames += await reader.receive()
    return frames


async def test_frames_of_one_read_arrive_together(channel_kind: str) -> None:
    """Every frame completed by a read reaches on_frames in one call."""
    frames = [(Kind.REQUEST, tx, b"body %d" % tx) for tx in range(50)]
    recorder = Recorder()
    with anyio.fail_after(GUARD):
        async with (
            connected(channel_kind) as (connection, far, _),
            anyio.create_task_group() as tg,
        ):
            await far.send(b"".join(encode_frame(*f, MAX) for f in frames))
            tg.start_soon(connection.run, recorder)
            await recorder.arrived.wait()
            assert recorder.frames == frames
            connection.close()


async def test_replies_made_while_handling_a_read_go_out_in_one_write(
    channel_kind: str,
) -> None:
    """Frames written from on_frames leave together once it returns."""
    with anyio.fail_after(GUARD):
        async with connected(channel_kind, CountingChannel) as (
            connection,
            far,
            reader,
        ):
            channel = connection.channel
            assert isinstance(channel, CountingChannel)

            def reply(frames: list[Frame]) -> None:
                for _, tx, body in frames:
                    connection.write(frame_parts(Kind.RESULT, tx, body, MAX))

            await far.send(
                b"".join(encode_frame(Kind.REQUEST, tx, b"x", MAX) for tx in range(50))
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(connection.run, reply)
                replies = await read_frames(reader, 50)
                tg.cancel_scope.cancel()
    assert [tx for _, tx, _ in replies] == list(range(50))
    assert len(channel.writes) == 1


async def test_frames_written_as_a_batch_go_out_in_one_write(
    channel_kind: str, anyio_backend_name: str
) -> None:
    """Frames written with ``batch=True`` in one pass leave in one write, on
    Trio as on asyncio; a lone frame on Trio leaves at once, unbatched."""
    with anyio.fail_after(GUARD):
        async with connected(channel_kind, CountingChannel) as (
            connection,
            _,
            reader,
        ):
            channel = connection.channel
            assert isinstance(channel, CountingChannel)
            async with anyio.create_task_group() as tg:
                tg.start_soon(connection.run, Recorder())
                await anyio.wait_all_tasks_blocked()
                connection.write(frame_parts(Kind.RESULT, 1, b"lone", MAX))
                if anyio_backend_name == "trio":
                    assert len(channel.writes) == 1  # before any other task ran
                assert len(await read_frames(reader, 1)) == 1
                writes = len(channel.writes)
                for tx in range(2, 52):
                    connection.write(
                        frame_parts(Kind.RESULT, tx, b"x", MAX), batch=True
                    )
                assert len(channel.writes) == writes  # held back
                replies = await read_frames(reader, 50)
                tg.cancel_scope.cancel()
    assert [tx for _, tx, _ in replies] == list(range(2, 52))
    assert len(channel.writes) == writes + 1


async def test_many_large_frames_from_many_tasks_arrive_intact(
    channel_kind: str,
) -> None:
    """C15: 100 tasks each write a 1 MiB frame at once; none is interleaved."""

    def body(tx: int) -> bytes:
        return bytes([tx]) * MiB

    async def send(tx: int) -> None:
        await connection.wait_for_room()
        connection.write(frame_parts(Kind.RESULT, tx, body(tx), MAX))

    with anyio.fail_after(60):
        async with (
            connected(channel_kind) as (connection, _, reader),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(connection.run, Recorder())
            async with anyio.create_task_group() as senders:
                for tx in range(100):
                    senders.start_soon(send, tx)
                frames = await read_frames(reader, 100)
            tg.cancel_scope.cancel()
    assert sorted(tx for _, tx, _ in frames) == list(range(100))
    assert all(got == body(tx) for _, tx, got in frames)


async def test_a_write_never_waits_and_an_unstarted_frame_is_withdrawn(
    channel_kind: str,
) -> None:
    """With nobody reading, writing 6 MiB returns at once; a frame queued
    behind it can be withdrawn, the one partly written cannot and is finished,
    so the stream stays in step."""
    big = frame_parts(Kind.REQUEST, 1, bytes(6 * MiB), MAX)
    with anyio.fail_after(GUARD):
        async with (
            connected(channel_kind) as (connection, _, reader),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(connection.run, Recorder())
            started = connection.write(big)
            queued = connection.write(frame_parts(Kind.REQUEST, 2, b"x", MAX))
            assert not started.done
            assert 0 < connection.queued < 6 * MiB + 100
            assert connection.withdraw(queued)
            assert not connection.withdraw(started)
            connection.write(frame_parts(Kind.CANCEL, 1, b"", MAX))
            frames = await read_frames(reader, 2)
            tg.cancel_scope.cancel()
    assert [(k, tx, len(b)) for k, tx, b in frames] == [
        (Kind.REQUEST, 1, 6 * MiB),
        (Kind.CANCEL, 1, 0),
    ]


async def test_senders_wait_for_room_and_can_be_cancelled(channel_kind: str) -> None:
    """Over the high-water mark, wait_for_room blocks (cancellably) until the
    far end reads enough."""
    with anyio.fail_after(GUARD):
        async with (
            connected(channel_kind, high_water=MiB) as (connection, _, reader),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(connection.run, Recorder())
            connection.write(frame_parts(Kind.REQUEST, 1, bytes(4 * MiB), MAX))
            assert connection.queued >= MiB
            with anyio.move_on_after(0.1) as scope:
                await connection.wait_for_room()
            assert scope.cancelled_caught
            waited = anyio.Event()

            async def sender() -> None:
                await connection.wait_for_room()
                waited.set()

            tg.start_soon(sender)
            await anyio.wait_all_tasks_blocked()
            assert not waited.is_set()
            await read_frames(reader, 1)  # the far end drains the queue
            await waited.wait()
            assert connection.queued < MiB
            tg.cancel_scope.cancel()


async def test_writes_after_the_far_end_left_fail(channel_kind: str) -> None:
    """A failed write is remembered: later writes raise at once."""
    with anyio.fail_after(GUARD):
        async with connected(channel_kind) as (connection, far, _):
            await far.aclose()
            frame = frame_parts(Kind.REQUEST, 1, bytes(64 * 1024), MAX)
            with pytest.raises(anyio.BrokenResourceError):  # noqa: PT012
                for _ in range(100):  # a socket may take a few writes to notice
                    connection.write(frame)
            with pytest.raises(anyio.BrokenResourceError):
                connection.write(frame)
            await connection.wait_for_room()  # a failed connection never blocks


async def test_the_end_of_the_stream_ends_run(channel_kind: str) -> None:
    with anyio.fail_after(GUARD):
        async with connected(channel_kind) as (connection, far, _):
            await far.send(encode_frame(Kind.RESULT, 1, b"last", MAX))
            await far.send_eof()
            recorder = Recorder()
            with pytest.raises(anyio.EndOfStream):
                await connection.run(recorder)
            assert recorder.frames == [(Kind.RESULT, 1, b"last")]
            assert not connection.has_partial_frame


async def test_a_protocol_error_in_on_frames_ends_run(channel_kind: str) -> None:
    def refuse(frames: list[Frame]) -> None:
        raise ProtocolError("not here")

    with anyio.fail_after(GUARD):
        async with connected(channel_kind) as (connection, far, _):
            await far.send(encode_frame(Kind.HELLO, 0, b"", MAX))
            with pytest.raises(ProtocolError, match="not here"):
                await connection.run(refuse)


async def test_an_oversized_header_ends_run(channel_kind: str) -> None:
    with anyio.fail_after(GUARD):
        async with connected(channel_kind) as (connection, far, _):
            await far.send(HEADER.pack(MAX + 1, Kind.RESULT, 1))
            with pytest.raises(ProtocolError, match="exceeds max_frame_size"):
                await connection.run(Recorder())


async def test_close_from_another_task_ends_run(channel_kind: str) -> None:
    with anyio.fail_after(GUARD):
        async with connected(channel_kind) as (connection, _, _):
            async with anyio.create_task_group() as tg:
                tg.start_soon(connection.run, Recorder())
                await anyio.wait_all_tasks_blocked()
                connection.close()
            assert connection.channel.closed
            with pytest.raises(anyio.ClosedResourceError):
                connection.write(frame_parts(Kind.CANCEL, 1, b"", MAX))
