"""Byte streams over a connected socket or a pair of pipes, awaiting only when
they must.

AnyIO's streams pass through the event loop on every call (a checkpoint),
which costs more than the I/O of a small frame. Here a read or write that the
kernel can serve at once returns without waiting; only a would-block waits for
readiness.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import termios
from typing import Protocol

import anyio
from anyio.abc import ByteStream

__all__ = [
    "BlockingChannel",
    "BlockingPipe",
    "NowaitStream",
    "PipeStream",
    "SocketStream",
]

# A write to a worker that just died must fail with EPIPE, not kill the host
# with SIGPIPE, even in a host that restored SIGPIPE's default action.
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)


class NowaitStream(ByteStream):
    """A stream whose writes can be tried without awaiting (`send_nowait`).

    Readers and writers may use it concurrently.
    """

    _closed = False

    def _read(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    def _write(self, data: bytes | memoryview) -> int:
        raise NotImplementedError

    def _readable(self) -> int | socket.socket:
        raise NotImplementedError

    def _writable(self) -> int | socket.socket:
        raise NotImplementedError

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Write what the kernel takes right now; return the number of bytes."""
        try:
            return self._write(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise self._error(exc) from exc

    async def send(self, item: bytes | memoryview) -> None:
        view = memoryview(item)
        while view:
            sent = self.send_nowait(view)
            view = view[sent:]
            if view:
                self._check_open()
                await anyio.wait_writable(self._writable())

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            try:
                data = self._read(max_bytes)
            except BlockingIOError:
                self._check_open()
                await anyio.wait_readable(self._readable())
                continue
            except OSError as exc:
                raise self._error(exc) from exc
            if not data:
                raise anyio.EndOfStream
            return data

    def unread_bytes(self) -> int:
        """How many received bytes wait in the kernel for a read."""
        if self._closed:
            return 0
        try:
            answer = fcntl.ioctl(self._readable(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", answer)[0]
        return count

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError

    def _error(self, exc: OSError) -> Exception:
        if self._closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(str(exc))


class SocketStream(NowaitStream):
    """Owns a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock

    def _read(self, max_bytes: int) -> bytes:
        return self._sock.recv(max_bytes)

    def _write(self, data: bytes | memoryview) -> int:
        return self._sock.send(data, _NO_SIGPIPE)

    def _readable(self) -> socket.socket:
        return self._sock

    _writable = _readable

    async def send_eof(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            anyio.notify_closing(self._sock)
            self._sock.close()
        await anyio.lowlevel.checkpoint()


class PipeStream(NowaitStream):
    """Owns the read end of one pipe and the write end of another."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd = read_fd
        self._write_fd: int | None = write_fd

    def _read(self, max_bytes: int) -> bytes:
        return os.read(self._read_fd, max_bytes)

    def _write(self, data: bytes | memoryview) -> int:
        if self._write_fd is None:
            raise anyio.ClosedResourceError
        return write_without_sigpipe(self._write_fd, data)

    def _readable(self) -> int:
        return self._read_fd

    def _writable(self) -> int:
        if self._write_fd is None:
            raise anyio.ClosedResourceError
        return self._write_fd

    async def send_eof(self) -> None:
        self._close_write_end()

    def _close_write_end(self) -> None:
        if self._write_fd is not None:
            fd, self._write_fd = self._write_fd, None
            anyio.notify_closing(fd)
            os.close(fd)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_write_end()
            anyio.notify_closing(self._read_fd)
            os.close(self._read_fd)
        await anyio.lowlevel.checkpoint()


def write_without_sigpipe(fd: int, data: bytes | memoryview) -> int:
    """`os.write`, but a reader that is gone raises EPIPE even in a process
    that restored SIGPIPE's default action, which would kill it."""
    if signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN:
        return os.write(fd, data)  # Python's default: nothing to guard
    # A write's SIGPIPE goes to the writing thread: hold it there, and take
    # it back if it came.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        return os.write(fd, data)
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
            view = view[write_without_sigpipe(self.write_fd, view) :]
