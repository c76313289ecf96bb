"""The worker's session with its host: connect, authenticate, read the greeting.

One per process, made by the first call that needs it (`get_startup_data` at
module level, or `run_worker`).
"""

from __future__ import annotations

import os
import socket
import threading
from contextvars import ContextVar
from typing import Any

import attrs

from .._errors import ProtocolError
from .._util import json_dumps, json_loads
from .._wire import _bootstrap, _framing
from .._wire._bootstrap import read_bootstrap
from .._wire._connection import Connection
from .._wire._framing import FrameParser, Kind, encode_frame
from .._wire._handshake import recv_exactly, worker_authenticate
from .._wire._streams import BlockingPipe, Channel, PipeChannel, SocketChannel
from ._watchdog import enable_crash_reports, exit_if_host_gone, watch_host


@attrs.define(eq=False)
class Session:
    """The authenticated connection to the host and what it sent at the handshake."""

    #: The read end of the bootstrap pipe, whose end of file means the host died.
    pipe_fd: int
    channel: socket.socket | BlockingPipe
    hello: dict[str, Any]
    ready_sent: bool = False

    def send_ready(self, **fields: Any) -> None:
        body = json_dumps(fields)
        frame = encode_frame(Kind.READY, 0, body, _framing.MAX_FRAME_LIMIT)
        self.channel.sendall(frame)
        self.ready_sent = True

    def open_connection(self, max_frame_size: int) -> Connection:
        """The connection for the event loop; it owns the channel from now on."""
        channel: Channel
        if isinstance(self.channel, socket.socket):
            channel = SocketChannel(self.channel)
        else:
            channel = PipeChannel(self.channel.read_fd, self.channel.write_fd)
        return Connection(channel, FrameParser(max_frame_size))


def _handshake() -> Session:
    """Connect to the host, authenticate, and read its greeting."""
    info = read_bootstrap()
    if info is None:
        raise RuntimeError(
            "not in a worker process: this function works only in a process "
            "started by isolated_workers.open_worker()"
        )
    enable_crash_reports()
    pipe_fd: int = info["pipe_fd"]
    socket_path: str | None = info.get("socket")
    watch_host(pipe_fd, socket_path)
    exit_if_host_gone(pipe_fd, socket_path)
    channel: socket.socket | BlockingPipe
    if socket_path is None:
        if _bootstrap.stdio_channel is None:
            raise RuntimeError("a pipe worker must be started by its launcher")
        channel = BlockingPipe(*_bootstrap.stdio_channel, info["connect_timeout"])
    else:
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.settimeout(info["connect_timeout"])
    try:
        if isinstance(channel, socket.socket) and socket_path is not None:
            channel.connect(socket_path)
        worker_authenticate(channel, bytes.fromhex(info["secret"]))
        size, kind, _ = _framing.HEADER.unpack(
            recv_exactly(channel, _framing.HEADER.size)
        )
        if kind != Kind.HELLO or size != info["hello_size"]:
            raise ProtocolError("the host's greeting is malformed")
        hello = json_loads(recv_exactly(channel, size))
    except BaseException as exc:
        if isinstance(channel, socket.socket):
            channel.close()
        else:
            os.close(channel.read_fd)
            os.close(channel.write_fd)
        if isinstance(exc, OSError):  # a host that died meanwhile, perhaps
            exit_if_host_gone(pipe_fd, socket_path)
        raise
    return Session(pipe_fd, channel, hello)


_session: Session | None = None
_session_lock = threading.Lock()
#: The session of a worker served in the host's own process, in its tasks
#: (`isolated_workers.testing`).
in_process_session: ContextVar[Session | None] = ContextVar(
    "isolated_workers_in_process_session", default=None
)


def connect() -> Session:
    """The session, made by the first call."""
    global _session
    session = in_process_session.get()
    if session is not None:
        return session
    with _session_lock:
        if _session is None:
            _session = _handshake()
        return _session


def current() -> Session | None:
    """The session, if one was made."""
    return in_process_session.get() or _session
