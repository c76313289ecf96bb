"""`Connection`: frames in and out of one authenticated channel.

The stream is shared by every caller, so the connection owns it: nobody else
reads or writes it once the handshake is done.

- Reading: a registration that persists for the connection's life (on
  asyncio a reader callback, no task; on Trio one reader task) reads into the
  parser's buffer and hands every frame a read completed to ``on_frames`` at
  once. ``on_frames`` is synchronous; raising `ProtocolError` there ends the
  connection. The list is its to consume: nothing else holds the frames, so
  a body it drops is freed at once.
- Writing: `Connection.write` never waits. What the kernel takes at once costs
  nothing more; the rest stays queued and is written when the channel is
  writable (asyncio: a writer callback; Trio: a writer task), so a caller's
  timeout never waits on a peer that does not read, and a frame is never left
  half written. Frames written while ``on_frames`` runs go out together after
  it. A frame none of which was written can be withdrawn. Senders that can
  wait call `Connection.wait_for_room` first, which keeps the queue under a
  high-water mark.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Sequence

import anyio

from .._errors import ProtocolError
from .._util import current_backend
from ._framing import Frame, FrameParser
from ._streams import Buffer, Channel

__all__ = ["HIGH_WATER", "Connection", "Outgoing"]

#: Senders wait while this many bytes are queued for the peer.
HIGH_WATER = 1024 * 1024
# Buffers handed to one gather write.
_GATHER = 64

FramesHandler = Callable[[list[Frame]], None]


class Outgoing:
    """A frame handed to `Connection.write`."""

    __slots__ = ("done", "parts", "size")

    def __init__(self, parts: Sequence[Buffer]) -> None:
        self.parts = parts
        self.size = sum(map(len, parts))
        self.done = False  # all of it was written


class Connection:
    """Frames in and out of one channel; see the module's docstring.

    ``run`` reads until the peer closes the channel (`anyio.EndOfStream`), it
    fails (`anyio.BrokenResourceError`), the framing or ``on_frames`` raises
    `ProtocolError`, or `close` is called (it then returns).
    """

    def __init__(
        self, channel: Channel, parser: FrameParser, *, high_water: int = HIGH_WATER
    ) -> None:
        self.channel = channel
        self._parser = parser
        self._high_water = high_water
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._queued = 0  # bytes not yet written
        self._offset = 0  # bytes of the first queued frame already written
        self._corked = False
        self._write_error: BaseException | None = None
        self._room: anyio.Event | None = None
        self._on_frames: FramesHandler = _no_handler
        self._driver: _Driver | None = None
        self.closed = False

    # --- writing ----------------------------------------------------------

    @property
    def queued(self) -> int:
        """Bytes queued and not yet written."""
        return self._queued

    def write(self, parts: Sequence[Buffer], *, batch: bool = False) -> Outgoing:
        """Queue a frame (its header and body as buffers) and write what the
        kernel takes now; never waits. With ``batch`` (the caller expects
        more frames soon), Trio too holds it back to go out with the others
        written before its writer task runs; asyncio always does, until the
        end of the loop's pass.

        Raises:
            anyio.ClosedResourceError: The connection was closed.
            anyio.BrokenResourceError: An earlier write failed.
        """
        self._check_writable()
        frame = Outgoing(parts)
        self._queue.append(frame)
        self._queued += frame.size
        if not self._corked:
            driver = self._driver
            if driver is not None and (batch or driver.batches_writes):
                self._corked = True  # until the driver flushes: one write
                driver.flush_soon()
            else:
                self._flush()
        return frame

    def withdraw(self, frame: Outgoing) -> bool:
        """Take back a frame none of which was written yet.

        Returns `False` when some of it was written: it will be finished,
        so the stream stays in step.
        """
        if frame.done or (self._offset and self._queue and self._queue[0] is frame):
            return False
        try:
            self._queue.remove(frame)
        except ValueError:  # written, or dropped when the connection failed
            return False
        self._queued -= frame.size
        self._wake_senders()
        return True

    async def wait_for_room(self) -> None:
        """Wait while the queue is over the high-water mark (cancellable)."""
        while self._queued >= self._high_water and self._write_error is None:
            if self.closed:
                raise anyio.ClosedResourceError
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    def shutdown_write(self) -> None:
        """Drop what is queued and tell the peer that nothing more will come:
        for a peer that is to stop."""
        self._drop_queue()
        with contextlib.suppress(OSError):
            self.channel.shutdown_write()

    def _check_writable(self) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        if self._write_error is not None:
            raise anyio.BrokenResourceError(
                "the connection failed"
            ) from self._write_error

    def _flush(self) -> None:
        """Write what the kernel takes now; leave the rest for the driver."""
        queue = self._queue
        while queue:
            try:
                sent = self.channel.send(self._gather())
            except BlockingIOError:
                break
            except OSError as exc:
                self._write_error = exc
                self._drop_queue()
                return
            self._consume(sent)
        if queue and self._driver is not None:
            self._driver.want_writable()
        self._wake_senders()

    def _gather(self) -> list[Buffer]:
        buffers: list[Buffer] = []
        skip = self._offset
        for frame in self._queue:
            for part in frame.parts:
                if skip:
                    if skip >= len(part):
                        skip -= len(part)
                        continue
                    part = memoryview(part)[skip:]
                    skip = 0
                buffers.append(part)
                if len(buffers) == _GATHER:
                    return buffers
        return buffers

    def _consume(self, sent: int) -> None:
        self._queued -= sent
        offset = self._offset + sent
        queue = self._queue
        while queue and offset >= queue[0].size:
            frame = queue.popleft()
            offset -= frame.size
            frame.done = True
            frame.parts = ()  # its buffers may be large: let them go
        self._offset = offset

    def _drop_queue(self) -> None:
        self._queue.clear()
        self._queued = 0
        self._offset = 0
        self._wake_senders()

    def _wake_senders(self) -> None:
        room = self._room
        if room is not None and (
            self._queued < self._high_water or self._write_error or self.closed
        ):
            self._room = None
            room.set()

    # --- reading ----------------------------------------------------------

    @property
    def has_partial_frame(self) -> bool:
        return self._parser.has_partial_frame

    def unread_bytes(self) -> int:
        """How many received bytes wait in the kernel for a read."""
        return self.channel.unread_bytes()

    async def run(self, on_frames: FramesHandler) -> None:
        """Read and write until the connection ends; see the class docstring."""
        if self._driver is not None:
            raise RuntimeError("the connection is running already")
        self._on_frames = on_frames
        driver: _Driver
        if current_backend() == "asyncio":
            driver = _CallbackDriver(self)
        else:
            driver = _TaskDriver(self)
        self._driver = driver
        await driver.run()

    def _read_once(self) -> bool:
        """One read, its frames handled; whether it filled the buffer (more
        may be waiting).

        Raises:
            anyio.EndOfStream, anyio.BrokenResourceError, ProtocolError: the
                connection ends.
        """
        view = self._parser.buffer()
        room = len(view)
        try:
            count = self.channel.recv_into(view)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc
        finally:
            view.release()
        if not count:
            raise anyio.EndOfStream
        frames = self._parser.feed(count)
        if frames:
            self._corked = True  # replies made meanwhile go out in one write
            try:
                self._on_frames(frames)
            finally:
                self._corked = False
                if self._queue and self._write_error is None and not self.closed:
                    self._flush()
        return count == room

    # --- closing ----------------------------------------------------------

    def close(self) -> None:
        """Close the channel; `run` returns. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._drop_queue()
        if self._driver is not None:
            self._driver.stop()
        else:
            self.channel.close()


def _no_handler(frames: list[Frame]) -> None:
    raise ProtocolError("a frame arrived before the connection was running")


class _Driver:
    """Waits for readiness on the connection's behalf, one way per backend."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.channel = connection.channel

    async def run(self) -> None:
        raise NotImplementedError

    #: Whether writes made in one pass of the event loop go out together.
    batches_writes = False

    def want_writable(self) -> None:
        raise NotImplementedError

    def flush_soon(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class _CallbackDriver(_Driver):
    """asyncio: reader and writer callbacks registered for the connection's
    life, as the event loop's own transports do; no task is woken per read.
    Frames written in one pass of the loop go out in one write, after it."""

    _writing = False
    batches_writes = True

    async def run(self) -> None:
        import asyncio  # here: a Trio worker never imports asyncio

        loop = self.loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.channel.read_fd, self._readable)
        if self.connection.queued:
            self.want_writable()
        try:
            await self.ended
        finally:
            self._unregister()
            if self.connection.closed:
                self.channel.close()

    def _readable(self) -> None:
        try:
            self.connection._read_once()  # pyright: ignore[reportPrivateUsage]
        except Exception as exc:
            self._unregister()
            if not self.ended.done():
                self.ended.set_exception(exc)

    def flush_soon(self) -> None:
        self.loop.call_soon(self._flush_batch)

    def _flush_batch(self) -> None:
        connection = self.connection
        connection._corked = False  # pyright: ignore[reportPrivateUsage]
        if connection.queued and not connection.closed:
            connection._flush()  # pyright: ignore[reportPrivateUsage]

    def want_writable(self) -> None:
        if not self._writing and not self.connection.closed:
            self._writing = True
            self.loop.add_writer(self.channel.write_fd, self._writable)

    def _writable(self) -> None:
        connection = self.connection
        connection._flush()  # pyright: ignore[reportPrivateUsage]
        if not connection.queued or connection.closed:
            self._writing = False
            self.loop.remove_writer(self.channel.write_fd)

    def stop(self) -> None:
        self._unregister()
        self.channel.close()
        if not self.ended.done():
            self.ended.set_result(None)

    def _unregister(self) -> None:
        if not self.channel.closed:
            self.loop.remove_reader(self.channel.read_fd)
            if self._writing:
                self._writing = False
                self.loop.remove_writer(self.channel.write_fd)


class _TaskDriver(_Driver):
    """Trio (or any AnyIO backend): a reader task and a writer task.

    Writes go out at once unless the writer asks to batch them: waking the
    writer task costs a lone request more than the write call it saves, and
    saves many requests in flight a write call each.
    """

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._wanted = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._done = False

    async def run(self) -> None:
        read = self.connection._read_once  # pyright: ignore[reportPrivateUsage]
        ended: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self.connection.closed:
                    tg.cancel_scope.cancel()
                if self.connection.queued:
                    self.want_writable()
                tg.start_soon(self._write_loop)
                try:
                    while True:
                        await anyio.wait_readable(self.channel.read_fd)
                        while read():
                            pass
                except Exception as exc:  # kept out of the task group's group
                    ended = exc
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._done = True
            if self.connection.closed:
                self.channel.close()
        if ended is not None:
            raise ended

    async def _write_loop(self) -> None:
        connection = self.connection
        while True:
            await self._wanted.wait()
            self._wanted = anyio.Event()
            connection._corked = False  # pyright: ignore[reportPrivateUsage]
            while connection.queued and not connection.closed:
                connection._flush()  # pyright: ignore[reportPrivateUsage]
                if connection.queued:
                    await anyio.wait_writable(self.channel.write_fd)

    def want_writable(self) -> None:
        self._wanted.set()

    def flush_soon(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        if self._done:
            self.channel.close()
        elif self._scope is not None:
            # The channel closes when the tasks are done with it: a task
            # waiting on a descriptor must not see it closed from under it.
            self._scope.cancel()
