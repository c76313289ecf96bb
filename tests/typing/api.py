"""Static checks of the public API; type-checked by mypy and pyright, never run.

``pytest`` does not collect this file (its name does not start with ``test_``);
``tests/test_typing.py`` runs mypy on it.
"""

from __future__ import annotations

import functools
from typing import ClassVar, assert_type

import anyio
import attrs

from isolated_workers import (
    MessageRegistry,
    Notification,
    Request,
    StreamRequest,
    Timeouts,
    WorkerClient,
    WorkerPool,
    WorkerStats,
    define_messages,
    get_startup_data,
    open_worker,
    open_worker_pool,
    start_worker,
)


@attrs.frozen
class Resized:
    width: int
    height: int
    data: bytes


@attrs.frozen
class Resize(Request[Resized]):
    data: bytes
    width: int


@attrs.frozen
class SetQuality(Notification):
    quality: int


@attrs.frozen
class Ping(Request["Pong"]):  # a forward reference to a later class
    message_type: ClassVar[str] = "ping"
    text: str


@attrs.frozen
class Pong:
    text: str


@attrs.frozen
class Count(Request[list[int]]):
    n: int


@attrs.frozen
class Lookup(Request[dict[str, Resized] | None]):
    key: str


@attrs.frozen
class Config:
    quality: int


Messages = define_messages(Resize, SetQuality, Ping, Count, Lookup)
assert_type(Messages, MessageRegistry)


def worker_side() -> None:
    assert_type(get_startup_data(Config), Config)
    config = get_startup_data(Config)
    assert_type(config.quality, int)


async def host_side() -> None:
    async with open_worker(
        "myapp.worker",
        messages=Messages,
        startup_data={"quality": 90},
        timeouts=Timeouts(message=60, per_message={Resize: 120}),
    ) as worker:
        assert_type(worker, WorkerClient)
        assert_type(await worker.send(Resize(data=b"", width=640)), Resized)
        assert_type(await worker.send(SetQuality(quality=80)), None)
        assert_type(await worker.send(Ping("hi")), Pong)
        assert_type(await worker.send(Count(3)), list[int])
        assert_type(await worker.send(Lookup("k")), dict[str, Resized] | None)
        assert_type(worker.pid, int)
        assert_type(worker.is_active, bool)
        await worker.aclose()

    async with open_worker("myapp.worker", messages=Messages, timeouts=30) as worker:
        assert_type(worker, WorkerClient)

    async with anyio.create_task_group() as tg:
        # anyio's TaskGroup.start takes no keyword arguments for the task and is
        # annotated to return Any: bind the options with functools.partial and
        # annotate the variable.
        client: WorkerClient = await tg.start(
            functools.partial(start_worker, messages=Messages), "myapp.worker"
        )
        assert_type(client, WorkerClient)
        assert_type(await client.send(Resize(data=b"", width=1)), Resized)
        tg.cancel_scope.cancel()


def resize(data: bytes, width: int) -> Resized:
    return Resized(width, width, data)


async def pools() -> None:
    async with open_worker_pool("myapp.worker", messages=Messages, size=2) as pool:
        assert_type(pool, WorkerPool)
        assert_type(await pool.send(Resize(data=b"", width=640)), Resized)
        assert_type(await pool.broadcast(Count(3)), list[list[int]])
        assert_type(pool.stats, list[WorkerStats])
    async with open_worker_pool(size=4) as pool:
        assert_type(await pool.run_sync(resize, b"", 640), Resized)
        assert_type(await pool.run_sync(resize, b"", 640, kill_on_cancel=True), Resized)
        await pool.run_sync(resize, b"", "640")  # type: ignore[arg-type]
    async with open_worker("myapp.worker", messages=Messages) as worker:
        assert_type(await worker.run_sync(resize, b"", 1), Resized)
        assert_type(worker.stats, WorkerStats)


@attrs.frozen
class Lines(StreamRequest[str]):
    path: str


async def streams(worker: WorkerClient) -> None:
    async with worker.stream(Lines("x")) as lines:
        async for line in lines:
            assert_type(line, str)
    await worker.send(Lines("x"))  # type: ignore[call-overload]
