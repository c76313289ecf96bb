"""`open_worker` and `start_worker`: spawning a worker and handing out its client."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict, Unpack, cast

import anyio
import attrs
from anyio.abc import Process, TaskGroup, TaskStatus

from .._errors import ProtocolError, SerializerMismatchError, WorkerStartupError
from .._policies import ShutdownPolicy, Strategy
from .._registry import MessageRegistry
from .._timeouts import Timeouts
from .._util import (
    DEFAULT_MAX_FRAME_SIZE,
    json_loads,
    raise_single,
)
from .._wire._bootstrap import BOOTSTRAP_ENV, write_bootstrap
from .._wire._connection import Connection
from .._wire._framing import MAX_FRAME_LIMIT, FrameReader, Kind, encode_frame
from .._wire._middleware import Middleware
from .._wire._serializers import Serializer
from .._wire._streams import NowaitStream
from ._client import Spawner, WorkerClient, open_client
from ._config import WorkerConfig
from ._link import FrameHandler, LostHandler, OutputPumps, WorkerLink
from ._output import OutputMode, OutputSink
from ._process import kill_and_reap, spawn
from ._transport import (
    Endpoint,
    Transport,
)

__all__ = ["WorkerOptions", "open_from_config", "open_worker", "start_worker"]


class WorkerOptions(TypedDict, total=False):
    """The keyword options of `open_worker`, for `start_worker`'s ``**options``."""

    args: Sequence[str]
    python: str | os.PathLike[str] | None
    env: Mapping[str, str] | None
    inherit_env: bool
    cwd: str | os.PathLike[str] | None
    startup_data: Any
    timeouts: Timeouts | float | None
    unexpected_shutdown: ShutdownPolicy | Strategy | None
    middleware: Sequence[Middleware]
    serializer: Serializer | None
    backend: str | None
    max_frame_size: int
    output: OutputMode
    tx_id_factory: Callable[[], int] | None
    transport: Transport | None
    on_event: Mapping[type, Callable[[Any], Any]] | None


@asynccontextmanager
async def open_worker(
    target: str | os.PathLike[str],
    *,
    messages: MessageRegistry,
    args: Sequence[str] = (),
    python: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    startup_data: Any = None,
    timeouts: Timeouts | float | None = None,
    unexpected_shutdown: ShutdownPolicy | Strategy | None = None,
    middleware: Sequence[Middleware] = (),
    serializer: Serializer | None = None,
    backend: str | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    output: OutputMode = "inherit",
    tx_id_factory: Callable[[], int] | None = None,
    transport: Transport | None = None,
    on_event: Mapping[type, Callable[[Any], Any]] | None = None,
) -> AsyncGenerator[WorkerClient]:
    """Start a worker process and yield its `WorkerClient`; close it on exit.

    Args:
        target: A module name, run as ``python -m target``, or the path of a
            ``.py`` script.
        messages: The registry shared with the worker.
        args: Extra command-line arguments for the worker.
        python: The interpreter (default: `sys.executable`).
        env: Variables added to the inherited environment, or the whole
            environment when ``inherit_env`` is false.
        inherit_env: Whether the worker inherits the host's environment.
        cwd: The worker's working directory (default: the host's).
        startup_data: Data the worker reads with `get_startup_data`: plain
            data or attrs instances; bytes travel as base64 text.
        timeouts: A `Timeouts`, or a number of seconds for startup, connect
            and message.
        unexpected_shutdown: What a crash does to pending requests: `Reject`
            (the default), `Retry`, or a `ShutdownPolicy` mixing them by
            message class.
        middleware: Functions run on every outgoing message and every
            incoming reply, in order (see `Middleware`).
        serializer: Message serializer; must match the worker's (default:
            `JsonSerializer`).
        backend: The worker's event loop: ``"asyncio"``, ``"trio"`` or
            ``"uvloop"`` (asyncio on uvloop, from the ``uvloop`` extra)
            (default: the host's own).
        max_frame_size: The largest message sent or accepted, in bytes.
        output: Where the worker's stdout and stderr go: ``"inherit"`` (the
            host's own), ``"log"`` (each line to the ``isolated_workers.worker``
            logger) or ``"capture"`` (kept for `WorkerClient.captured_stdout`
            and `WorkerClient.captured_stderr`). With ``"log"`` and
            ``"capture"``, crash and startup errors carry the last lines of
            stderr. Under `PipeTransport`, stdout carries the messages and
            what the worker prints goes to its stderr.
        tx_id_factory: Makes the transaction id of each request (default:
            1, 2, 3, ...). Ids must be ints from 1 to 2**64 - 1 and never
            repeat for one client: a reused id could pair a late reply with
            the wrong request.
        transport: `UnixSocketTransport` (the default on POSIX) or
            `PipeTransport` (planned as the default on Windows, which is not
            supported yet).
        on_event: A callback, sync or async, for each `Event` class the worker
            may `emit`; it gets the event. Sync callbacks run in the order the
            events came, async ones as tasks of their own. An event with no
            callback is dropped, and a callback that raises is logged.

    Raises:
        WorkerStartupError: The worker could not be started or did not become
            ready within ``Timeouts.startup``; nothing is left behind.
        SerializerMismatchError: The worker uses another serializer.
    """
    config = WorkerConfig.from_options(
        target,
        messages=messages,
        args=args,
        python=python,
        env=env,
        inherit_env=inherit_env,
        cwd=cwd,
        startup_data=startup_data,
        timeouts=timeouts,
        unexpected_shutdown=unexpected_shutdown,
        middleware=middleware,
        serializer=serializer,
        backend=backend,
        max_frame_size=max_frame_size,
        output=output,
        tx_id_factory=tx_id_factory,
        transport=transport,
        on_event=on_event,
    )
    async with open_from_config(config) as client:
        yield client


@asynccontextmanager
async def open_from_config(
    config: WorkerConfig, spawn: Spawner | None = None
) -> AsyncGenerator[WorkerClient]:
    """A client of a worker started as ``config`` says (or by ``spawn``, the
    test kit's); closed on exit."""
    output = OutputSink(config.output)
    if spawn is None:
        spawn = _Spawner(config, output).spawn_link
    try:
        async with anyio.create_task_group() as task_group:
            client = await open_client(config, spawn, output, task_group)
            try:
                yield client
            finally:
                await client.aclose()
                task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise_single(group)


async def start_worker(
    target: str | os.PathLike[str],
    *,
    messages: MessageRegistry,
    task_status: TaskStatus[WorkerClient] = anyio.TASK_STATUS_IGNORED,
    **options: Unpack[WorkerOptions],
) -> None:
    """Run a worker for as long as this task runs, for ``task_group.start``.

    ``await task_group.start(functools.partial(start_worker, target,
    messages=Messages))`` returns the worker's `WorkerClient` once it is
    ready. It takes the options of `open_worker` (``task_group.start`` passes
    no keyword arguments, hence ``functools.partial``). Cancelling the task
    closes the worker.
    """
    config = WorkerConfig.from_options(target, messages=messages, **options)
    async with open_from_config(config) as client:
        task_status.started(client)
        await anyio.sleep_forever()


@attrs.frozen
class _Spawner:
    """Starts the workers of one client, as its `WorkerConfig` says."""

    config: WorkerConfig
    output: OutputSink

    async def spawn_link(
        self, task_group: TaskGroup, on_frame: FrameHandler, on_lost: LostHandler
    ) -> WorkerLink:
        """Spawn a worker and wait until it is ready; on failure leave nothing."""
        if len(self.config.hello) > MAX_FRAME_LIMIT:
            raise WorkerStartupError("startup_data is larger than 4 GiB")
        endpoint = Endpoint.make(self.config.transport)
        try:
            read_fd, write_fd = os.pipe()
        except OSError as exc:
            endpoint.close()
            raise WorkerStartupError(f"cannot start a worker: {exc}") from exc
        process: Process | None = None
        pumps: OutputPumps | None = None
        try:
            secret = os.urandom(32)
            connect = self.config.timeouts.connect
            env = {**self.config.env, BOOTSTRAP_ENV: str(read_fd)}
            try:
                write_bootstrap(
                    write_fd,
                    {
                        **endpoint.bootstrap,
                        "secret": secret.hex(),
                        "connect_timeout": connect if math.isfinite(connect) else None,
                        # The greeting is the handshake's, not a message: the
                        # worker expects exactly this size rather than a limit.
                        "hello_size": len(self.config.hello),
                        "unset_env": self.config.unset_env,
                    },
                )
                process = await spawn(
                    self.config.argv,
                    env=env,
                    cwd=self.config.cwd,
                    pass_fds=[read_fd],
                    piped=self.output.piped,
                    stdin=endpoint.child_stdin,
                    stdout=endpoint.child_stdout,
                )
            finally:
                os.close(read_fd)
                endpoint.spawned()
            if self.output.piped:
                pumps = OutputPumps(self.output, process)
                pumps.start(task_group)
            stream, reader = await self._handshake(process, endpoint, secret)
        except BaseException as exc:
            if process is not None:
                await kill_and_reap(process)
            if pumps is not None:
                tail = await pumps.drain()
                if tail and isinstance(exc, WorkerStartupError):
                    exc.add_note(f"The worker's last lines on stderr:\n{tail}")
            os.close(write_fd)
            raise
        finally:
            endpoint.close()
        link = WorkerLink(
            process=process,
            connection=Connection(stream.channel, reader.parser),
            pipe_fd=write_fd,
            pumps=pumps,
            max_frame_size=self.config.max_frame_size,
            on_frame=on_frame,
            on_lost=on_lost,
        )
        # The link's task is shielded once started, so start it shielded too;
        # a cancellation that arrived meanwhile closes it rather than hangs.
        with anyio.CancelScope(shield=True):
            await task_group.start(link.run)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            await link.close(0)
            raise
        return link

    async def _handshake(
        self, process: Process, endpoint: Endpoint, secret: bytes
    ) -> tuple[NowaitStream, FrameReader]:
        stream: NowaitStream | None = None
        try:
            exit_code: int | None = None
            reader: FrameReader | None = None
            ready: dict[str, Any] | None = None
            with anyio.move_on_after(self.config.timeouts.startup) as deadline:
                try:
                    async with anyio.create_task_group() as race:

                        async def watch_exit() -> None:
                            nonlocal exit_code
                            exit_code = await process.wait()
                            if stream is None:  # not connected: stop waiting
                                race.cancel_scope.cancel()

                        race.start_soon(watch_exit)
                        stream = await endpoint.connect(secret)
                        race.cancel_scope.cancel()
                except BaseExceptionGroup as group:  # a failed handshake, say
                    raise_single(group)
                # Outside the task group, so that its errors are not wrapped
                # in an exception group; a worker that exits now hangs up.
                if stream is not None:
                    reader = FrameReader(stream, self.config.max_frame_size)
                    ready = await _greet(stream, reader, self.config.hello)
            if deadline.cancelled_caught:
                raise WorkerStartupError(
                    f"worker {self.config.target!r} did not become ready within "
                    f"{self.config.timeouts.startup:g} s (did it call run_worker()?)"
                )
            if stream is None or reader is None or ready is None:
                if exit_code is None:
                    with anyio.move_on_after(self.config.timeouts.shutdown):
                        exit_code = await process.wait()
                raise WorkerStartupError(
                    f"worker {self.config.target!r} exited (code {exit_code}) "
                    "before it was ready; its stderr may say why"
                )
            if not ready.get("ok"):
                # It exits on its own now: let its stderr explain the refusal.
                with anyio.move_on_after(self.config.timeouts.shutdown):
                    await process.wait()
                message = str(ready.get("message", "the worker refused to start"))
                if ready.get("error") == "SerializerMismatchError":
                    raise SerializerMismatchError(message)
                raise WorkerStartupError(message)
        except BaseException:
            if stream is not None:  # however it failed, cancellation included
                await anyio.aclose_forcefully(stream)
            raise
        return stream, reader


async def _greet(
    stream: NowaitStream, reader: FrameReader, hello: bytes
) -> dict[str, Any] | None:
    """Send the greeting and return the worker's answer, or `None` if it hung up."""
    try:
        await stream.send(encode_frame(Kind.HELLO, 0, hello, MAX_FRAME_LIMIT))
        frames = await reader.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return None
    except ProtocolError as exc:
        raise WorkerStartupError(f"the worker broke the handshake: {exc}") from None
    kind, _, body = frames[0]
    try:
        ready = (
            json_loads(bytes(body)) if kind == Kind.READY and len(frames) == 1 else None
        )
    except ValueError:
        ready = None
    if not isinstance(ready, dict):
        raise WorkerStartupError("the worker broke the handshake protocol")
    return cast("dict[str, Any]", ready)
