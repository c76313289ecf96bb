"""Transports: how the host and a worker reach each other.

Each spawn makes an endpoint. It says what the worker needs to find the host
(the bootstrap) and which of its pipes become the worker's stdin and stdout,
then yields the authenticated stream once the worker is running.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import tempfile
from typing import Any

import anyio
import attrs

from .._errors import WorkerStartupError
from .._wire._handshake import AuthenticationError, host_authenticate
from .._wire._streams import NowaitStream, PipeStream, SocketStream

__all__ = [
    "Endpoint",
    "PipeTransport",
    "Transport",
    "UnixSocketTransport",
    "default_transport",
]

# AF_UNIX socket paths are limited to 108 bytes on Linux, 104 on macOS.
_MAX_SOCKET_PATH = 104 if sys.platform == "darwin" else 108
_PEER_ERRORS = (
    AuthenticationError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    OSError,
)


@attrs.frozen
class UnixSocketTransport:
    """A Unix domain socket: the default on POSIX.

    The host listens on a socket, mode 0600, in a fresh directory of mode 0700
    with a random name, and removes both as soon as its worker has connected
    and authenticated.

    Args:
        directory: Where to make that fresh directory (default: the system's
            temporary directory, or ``/tmp`` when its path is too long for a
            socket). It must be a real directory, not a symlink, owned by
            this user and writable by nobody else; otherwise `open_worker`
            raises `WorkerStartupError`. Nothing already in it is touched.
    """

    directory: str | os.PathLike[str] | None = None


@attrs.frozen
class PipeTransport:
    """The worker's stdin and stdout: the portable choice.

    The worker is started through a small launcher that moves the pipes out of
    the way before any of the worker's own code runs. The worker's
    ``sys.stdin`` then reads nothing and whatever it writes to stdout, with
    `print` or from C code, goes to its stderr.
    """


Transport = UnixSocketTransport | PipeTransport


def default_transport() -> Transport:
    """Named pipes on Windows, Unix sockets elsewhere."""
    return PipeTransport() if sys.platform == "win32" else UnixSocketTransport()


class Endpoint:
    """The host's side of one worker's transport, for one spawn."""

    #: What the worker reads from the bootstrap pipe to reach the host.
    bootstrap: dict[str, Any]
    #: The worker's stdin and stdout, where the transport uses them.
    child_stdin: int | None = None
    child_stdout: int | None = None
    #: Whether the worker must be started through the launcher.
    uses_stdio = False

    @staticmethod
    def make(transport: Transport) -> Endpoint:
        if isinstance(transport, PipeTransport):
            return _PipeEndpoint()
        return _SocketEndpoint(transport.directory)

    def spawned(self) -> None:
        """The worker runs: drop what only the worker needed."""

    async def connect(self, secret: bytes) -> NowaitStream:
        """Return the stream of the worker that proves it knows ``secret``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what `connect` did not hand over."""


class _SocketEndpoint(Endpoint):
    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self._directory, self._listener = _listen(directory)
        self.bootstrap = {"socket": self._listener.getsockname()}

    async def connect(self, secret: bytes) -> NowaitStream:
        return await _accept_authenticated(self._listener, secret)

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)


class _PipeEndpoint(Endpoint):
    uses_stdio = True

    def __init__(self) -> None:
        self.bootstrap = {"pipe": True}
        self._fds: list[int] = []
        try:
            self.child_stdin, self._host_write = self._pipe()
            self._host_read, self.child_stdout = self._pipe()
        except OSError as exc:
            self.close()
            raise WorkerStartupError(f"cannot make the worker's pipes: {exc}") from exc

    def _pipe(self) -> tuple[int, int]:
        read_fd, write_fd = os.pipe()
        self._fds += (read_fd, write_fd)
        return read_fd, write_fd

    def spawned(self) -> None:
        for fd in (self.child_stdin, self.child_stdout):
            if fd is not None:
                self._close_fd(fd)

    async def connect(self, secret: bytes) -> NowaitStream:
        stream = PipeStream(self._host_read, self._host_write)
        self._fds.clear()  # the stream owns them now
        try:
            try:
                await host_authenticate(stream, secret)
            except AuthenticationError as exc:
                raise WorkerStartupError(
                    f"the worker failed the handshake on its pipes: {exc}"
                ) from None
            except _PEER_ERRORS:
                # It hung up: its exit, or the startup timeout, ends the wait.
                await anyio.sleep_forever()
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        return stream

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)

    def close(self) -> None:
        for fd in list(self._fds):
            self._close_fd(fd)


def _check_directory(directory: str) -> None:
    """Refuse a socket directory that others could tamper with."""
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise WorkerStartupError(f"cannot use socket directory: {exc}") from exc
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symlink"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by uid {info.st_uid}, not by this user"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem is not None:
        raise WorkerStartupError(f"socket directory {directory!r} {problem}")


def _listen(directory: str | os.PathLike[str] | None) -> tuple[str, socket.socket]:
    """A listening Unix socket, alone in a fresh 0700 directory; the socket is 0600."""
    if directory is not None:
        base = os.path.abspath(directory)  # the worker may run elsewhere
        _check_directory(base)
    else:
        base = tempfile.gettempdir()
        # mkdtemp names are 8 random characters; "/s" names the socket.
        probe = os.path.join(base, "isolated-workers-xxxxxxxx", "s")
        if len(probe.encode()) >= _MAX_SOCKET_PATH:
            base = "/tmp"
    try:
        private = tempfile.mkdtemp(prefix="isolated-workers-", dir=base)
    except OSError as exc:
        raise WorkerStartupError(f"cannot create a socket directory: {exc}") from exc
    path = os.path.join(private, "s")
    if len(path.encode()) >= _MAX_SOCKET_PATH:
        os.rmdir(private)
        raise WorkerStartupError(
            f"the socket path {path!r} exceeds the AF_UNIX limit of "
            f"{_MAX_SOCKET_PATH - 1} bytes; use a shorter directory (TMPDIR, "
            "or UnixSocketTransport(directory=...))"
        )
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(8)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        shutil.rmtree(private, ignore_errors=True)
        raise
    return private, listener


async def _accept_authenticated(listener: socket.socket, secret: bytes) -> NowaitStream:
    """Accept connections until one proves it knows ``secret``.

    Each peer is authenticated in a task of its own, so a silent one cannot
    hold up the real worker. Every other connection is closed on the way out,
    including those whose task never got to run.
    """
    peers: list[socket.socket] = []
    winner: list[socket.socket] = []

    async def authenticate(conn: socket.socket) -> None:
        try:
            await host_authenticate(SocketStream(conn), secret)
        except _PEER_ERRORS:
            conn.close()  # at once: a refused peer learns it straight away
            return
        if not winner:
            winner.append(conn)
            tasks.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tasks:
            while True:
                await anyio.wait_readable(listener)
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                peers.append(conn)
                tasks.start_soon(authenticate, conn)
    except BaseException:
        for conn in peers:  # the winner too: nobody will use it now
            conn.close()
        raise
    for conn in peers:
        if conn is not winner[0]:
            conn.close()
    return SocketStream(winner[0])
