"""A worker served by a task of the host's own event loop, for fast tests.

The client is the real `WorkerClient`, and the worker the real server: only
the process is missing. The two talk over a socket pair, through the same
connection, serializer and middleware as a worker process. An `InProcess`
stands in for the process: its task is the worker, killing it cancels that
task, and its pid is the host's own, which nothing here ever signals.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, TaskGroup

from .._host._client import WorkerClient
from .._host._config import WorkerConfig
from .._host._link import FrameHandler, LostHandler, WorkerLink
from .._host._open import open_from_config
from .._registry import MessageRegistry
from .._util import json_loads, log
from .._wire._connection import Connection
from .._wire._framing import FrameParser
from .._wire._middleware import Middleware
from .._wire._streams import SocketChannel
from .._worker._api import check_handlers
from .._worker._server import Handler, Server
from .._worker._session import Session, in_process_session

__all__ = ["InProcess", "open_in_process"]

logger = logging.getLogger("isolated_workers")


class InProcess(Process):
    """The stand-in for a worker process: a task serving the connection."""

    #: Signals go to `send_signal`, never to a process group by pid.
    in_process = True

    def __init__(self, server: Server) -> None:
        self._server = server
        self._scope = anyio.CancelScope()
        self._exited = anyio.Event()
        self._returncode: int | None = None

    async def run(self) -> None:
        """Serve until the connection ends or `kill` is called; never raises."""
        token = in_process_session.set(self._server.session)
        try:
            with self._scope:
                await self._server.serve()
                self._returncode = 0
            if self._scope.cancelled_caught:
                self._returncode = -signal.SIGKILL
        except Exception:  # a crash of the stand-in, not of the host
            log(logger, logging.ERROR, "the in-process worker failed", exc_info=True)
            self._returncode = 1
        finally:
            in_process_session.reset(token)
            if self._returncode is None:  # the host's task group was cancelled
                self._returncode = -signal.SIGKILL
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def terminate(self) -> None:
        self.kill()

    def kill(self) -> None:
        self._scope.cancel()

    def send_signal(self, signal: int) -> None:
        self.kill()

    async def aclose(self) -> None:
        await self.wait()

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdin(self) -> ByteSendStream | None:
        return None

    @property
    def stdout(self) -> ByteReceiveStream | None:
        return None

    @property
    def stderr(self) -> ByteReceiveStream | None:
        return None


@attrs.frozen
class _InProcessSpawner:
    config: WorkerConfig
    handlers: Mapping[type, Handler]
    worker_middleware: tuple[Middleware, ...]

    async def spawn_link(
        self, task_group: TaskGroup, on_frame: FrameHandler, on_lost: LostHandler
    ) -> WorkerLink:
        host_end, worker_end = socket.socketpair()
        session = Session(-1, worker_end, json_loads(self.config.hello), True)
        server = Server(
            session,
            self.config.messages,
            self.handlers,
            self.config.serializer,
            self.config.max_frame_size,
            self.worker_middleware,
        )
        process = InProcess(server)
        task_group.start_soon(process.run)
        link = WorkerLink(
            process=process,
            connection=Connection(
                SocketChannel(host_end), FrameParser(self.config.max_frame_size)
            ),
            pipe_fd=None,
            pumps=None,
            max_frame_size=self.config.max_frame_size,
            on_frame=on_frame,
            on_lost=on_lost,
        )
        with anyio.CancelScope(shield=True):  # as for a real worker's link
            await task_group.start(link.run)
        return link


@asynccontextmanager
async def open_in_process(
    messages: MessageRegistry,
    handlers: Mapping[type, Callable[[Any], Any]],
    *,
    worker_middleware: Sequence[Middleware] = (),
    **options: Any,
) -> AsyncGenerator[WorkerClient]:
    """See `isolated_workers.testing.open_in_process_worker`."""
    config = WorkerConfig.from_options("<in-process>", messages=messages, **options)
    mismatch = check_handlers(messages, handlers)
    if mismatch is not None:
        raise TypeError(mismatch)
    spawner = _InProcessSpawner(config, handlers, tuple(worker_middleware))
    async with open_from_config(config, spawner.spawn_link) as client:
        yield client
