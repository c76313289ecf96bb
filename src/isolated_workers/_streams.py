"""A byte stream over a connected socket that awaits only when it must.

AnyIO's socket streams pass through the event loop on every call (a
checkpoint), which costs more than the I/O of a small frame. Here a read or
write that the kernel can serve at once returns without waiting; only a
would-block waits for readiness.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

import anyio
from anyio.abc import ByteStream

__all__ = ["SocketStream"]

# A write to a worker that just died must fail with EPIPE, not kill the host
# with SIGPIPE, even in a host that restored SIGPIPE's default action.
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)


class SocketStream(ByteStream):
    """Owns a connected socket; readers and writers may use it concurrently."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Write what the kernel takes right now; return the number of bytes."""
        try:
            return self._sock.send(data, _NO_SIGPIPE)
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
                await anyio.wait_writable(self._sock)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                self._check_open()
                await anyio.wait_readable(self._sock)
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
            answer = fcntl.ioctl(self._sock, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", answer)[0]
        return count

    async def send_eof(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            anyio.notify_closing(self._sock)
            self._sock.close()
        await anyio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError

    def _error(self, exc: OSError) -> Exception:
        if self._closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(str(exc))
