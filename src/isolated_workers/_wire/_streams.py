"""Channels (a connected socket, or a pair of pipes) and byte streams over them.

A `Channel` makes the raw non-blocking calls; a `Connection` owns one after the
handshake. `NowaitStream` wraps one as an AnyIO byte stream for the handshake:
AnyIO's own streams pass through the event loop on every call, which costs more
than the I/O of a small message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from collections.abc import Sequence
from typing import Protocol, TypeAlias

import anyio
from anyio.abc import ByteStream

__all__ = [
    "BlockingChannel",
    "BlockingPipe",
    "Channel",
    "NowaitStream",
    "PipeChannel",
    "PipeStream",
    "SocketChannel",
    "SocketStream",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

# A write to a worker that just died must fail with EPIPE, not kill the host
# with SIGPIPE, even in a host that restored SIGPIPE's default action.
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)
# Buffers per gather write: POSIX guarantees at least 16, Linux takes 1024.
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


class Channel:
    """A non-blocking socket, or a pair of pipe ends: the raw calls that the
    handshake's stream and a `Connection` make.

    Reads and writes raise `BlockingIOError` when the kernel has nothing to
    give or no room to take.
    """

    closed = False
    #: What to wait on for reading and for writing (`anyio.wait_readable`).
    read_fd: int
    write_fd: int

    def recv_into(self, buffer: memoryview) -> int:
        raise NotImplementedError

    def send(self, buffers: Sequence[Buffer]) -> int:
        """Write as much of ``buffers`` as the kernel takes at once, without
        joining them; return the number of bytes written."""
        raise NotImplementedError

    def shutdown_write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def unread_bytes(self) -> int:
        """How many received bytes wait in the kernel for a read."""
        if self.closed:
            return 0
        try:
            answer = fcntl.ioctl(self.read_fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", answer)[0]
        return count


class SocketChannel(Channel):
    """Owns a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.read_fd = self.write_fd = sock.fileno()

    def recv_into(self, buffer: memoryview) -> int:
        return self.sock.recv_into(buffer)

    def send(self, buffers: Sequence[Buffer]) -> int:
        if len(buffers) == 1:
            return self.sock.send(buffers[0], _NO_SIGPIPE)
        return self.sock.sendmsg(buffers[:_IOV_MAX], (), _NO_SIGPIPE)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class PipeChannel(Channel):
    """Owns the read end of one pipe and the write end of another."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._write_open = True

    def recv_into(self, buffer: memoryview) -> int:
        return os.readv(self.read_fd, [buffer])

    def send(self, buffers: Sequence[Buffer]) -> int:
        if not self._write_open:
            raise BrokenPipeError(errno.EPIPE, "the write end is closed")
        return write_without_sigpipe(self.write_fd, buffers[:_IOV_MAX])

    def shutdown_write(self) -> None:
        if self._write_open:
            self._write_open = False
            os.close(self.write_fd)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.shutdown_write()
            os.close(self.read_fd)


class NowaitStream(ByteStream):
    """An AnyIO byte stream over a `Channel`, for the handshake (and tests).

    A read or write the kernel serves at once returns without waiting; only a
    would-block waits for readiness. Readers and writers may use it
    concurrently. `channel` hands the channel over once the handshake is done.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def send(self, item: bytes | memoryview) -> None:
        view = memoryview(item)
        while view:
            try:
                view = view[self.channel.send([view]) :]
            except BlockingIOError:
                self._check_open()
                await anyio.wait_writable(self.channel.write_fd)
            except OSError as exc:
                raise self._error(exc) from exc

    async def receive(self, max_bytes: int = 65536) -> bytes:
        buffer = bytearray(min(max_bytes, 256 * 1024))
        while True:
            try:
                count = self.channel.recv_into(memoryview(buffer))
            except BlockingIOError:
                self._check_open()
                await anyio.wait_readable(self.channel.read_fd)
                continue
            except OSError as exc:
                raise self._error(exc) from exc
            if not count:
                raise anyio.EndOfStream
            return bytes(buffer[:count])

    def unread_bytes(self) -> int:
        return self.channel.unread_bytes()

    async def send_eof(self) -> None:
        try:
            self.channel.shutdown_write()
        except OSError as exc:
            raise self._error(exc) from exc

    async def aclose(self) -> None:
        channel = self.channel
        if not channel.closed:
            anyio.notify_closing(channel.read_fd)
            if channel.write_fd != channel.read_fd:
                anyio.notify_closing(channel.write_fd)
            channel.close()
        await anyio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self.channel.closed:
            raise anyio.ClosedResourceError

    def _error(self, exc: OSError) -> Exception:
        if self.channel.closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(str(exc))


class SocketStream(NowaitStream):
    """A `NowaitStream` that owns a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(SocketChannel(sock))


class PipeStream(NowaitStream):
    """A `NowaitStream` that owns a pair of pipe ends."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        super().__init__(PipeChannel(read_fd, write_fd))


def write_without_sigpipe(fd: int, buffers: Sequence[Buffer]) -> int:
    """`os.writev`, but a reader that is gone raises EPIPE even in a process
    that restored SIGPIPE's default action, which would kill it."""
    if signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN:
        return os.writev(fd, buffers)  # Python's default: nothing to guard
    # A write's SIGPIPE goes to the writing thread: hold it there, and take
    # it back if it came.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        return os.writev(fd, buffers)
    except BrokenPipeError:
        signal.sigtimedwait({signal.SIGPIPE}, 0)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class BlockingChannel(Protocol):
    """What the worker's blocking handshake reads and writes: a blocking
    socket, or a `BlockingPipe`."""

    def recv_into(self, buffer: memoryview, /) -> int: ...
    def sendall(self, data: bytes, /) -> None: ...


class BlockingPipe:
    """A pair of blocking pipe ends with the socket calls of `BlockingChannel`;
    like a socket's, each read waits at most ``timeout`` seconds."""

    def __init__(self, read_fd: int, write_fd: int, timeout: float | None) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._timeout_ms = -1 if timeout is None else max(0, round(timeout * 1000))

    def recv_into(self, buffer: memoryview, /) -> int:
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        if not poller.poll(self._timeout_ms):
            raise TimeoutError("the host did not answer in time")
        return os.readv(self.read_fd, [buffer])

    def sendall(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            view = view[write_without_sigpipe(self.write_fd, [view]) :]
