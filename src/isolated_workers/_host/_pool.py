"""`open_worker_pool`: a fixed number of workers, each taking many requests."""

from __future__ import annotations

import collections
import logging
import os
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, Unpack, final, overload

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from .._calls import BUILTIN_SERIALIZERS, GENERIC_WORKER, PATH_ENV, CallFunction
from .._errors import WorkerClosedError, WorkerStartupError, WorkerTimeoutError
from .._messages import Notification, Request
from .._registry import MessageRegistry, define_messages, wire_name
from .._util import log, raise_single
from ._client import WorkerClient, WorkerState, WorkerStats
from ._config import WorkerConfig
from ._open import WorkerOptions, open_from_config

__all__ = ["WorkerPool", "open_worker_pool"]

logger = logging.getLogger("isolated_workers")

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

#: How long a slot whose worker cannot be started waits before trying again,
#: at first and at most.
_BACKOFF = (0.1, 5.0)


@attrs.define(eq=False)
class _Slot:
    """One place in the pool, and the worker that holds it now."""

    client: WorkerClient | None = None
    in_flight: int = 0
    #: Requests sent to the current worker, for ``max_requests_per_worker``.
    sent: int = 0
    retiring: bool = False
    replacements: int = 0
    #: Counts of the workers this slot had before the current one.
    completed: int = 0
    failed: int = 0
    respawns: int = 0
    #: Set when the slot's task should look at its worker again.
    wake: anyio.Event = attrs.field(factory=anyio.Event)
    #: The slot's task: cancelled to close the slot, and set once it ended.
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    ended: anyio.Event = attrs.field(factory=anyio.Event)

    def stats(self) -> WorkerStats:
        now = self.client.stats if self.client is not None else None
        return WorkerStats(
            pid=now.pid if now is not None else None,
            in_flight=self.in_flight,
            completed=self.completed + (now.completed if now else 0),
            failed=self.failed + (now.failed if now else 0),
            respawns=self.respawns + (now.respawns if now else 0),
            replacements=self.replacements,
        )


@attrs.define(eq=False)
class _Turn:
    """A sender waiting in line for a worker."""

    wake: anyio.Event = attrs.field(factory=anyio.Event)


@final
class WorkerPool:
    """Workers of one kind, made by `open_worker_pool`; requests go to the least
    busy one."""

    def __init__(
        self,
        config: WorkerConfig,
        size: int,
        max_requests_per_worker: int | None,
        task_group: TaskGroup,
    ) -> None:
        self._config = config
        self._slots = [_Slot() for _ in range(size)]
        self._max_requests = max_requests_per_worker
        self._task_group = task_group
        self._line: collections.deque[_Turn] = collections.deque()  # waiting senders
        self._closed = False

    @property
    def workers(self) -> list[WorkerClient]:
        """The clients of the workers the pool holds now."""
        return [slot.client for slot in self._slots if slot.client is not None]

    @property
    def size(self) -> int:
        """How many workers the pool keeps."""
        return len(self._slots)

    @property
    def stats(self) -> list[WorkerStats]:
        """A snapshot of each worker's counters, one per place in the pool."""
        return [slot.stats() for slot in self._slots]

    @overload
    async def send(self, message: Request[R]) -> R: ...
    @overload
    async def send(self, message: Notification) -> None: ...
    async def send(self, message: Request[Any] | Notification) -> Any:
        """Send a message to the least busy worker; see `WorkerClient.send`.

        While every worker is being replaced, the request waits for one, within
        its timeout.

        Raises:
            WorkerClosedError: The pool was closed.
            Exception: Whatever `WorkerClient.send` raises.
        """
        return await self._on_least_busy(type(message), lambda c: c.send(message))

    async def run_sync(
        self,
        function: Callable[[*Ts], R],
        *args: *Ts,
        kill_on_cancel: bool = False,
    ) -> R:
        """Call ``function(*args)`` in the least busy worker; see
        `WorkerClient.run_sync`."""
        return await self._on_least_busy(
            CallFunction,
            lambda c: c.run_sync(function, *args, kill_on_cancel=kill_on_cancel),
        )

    async def _on_least_busy(
        self, cls: type[Any], call: Callable[[WorkerClient], Awaitable[R]]
    ) -> R:
        slot = self._pick() if not self._line else None
        waited = 0.0
        if slot is None:
            started = anyio.current_time()
            slot = await self._wait_in_line(cls)
            waited = anyio.current_time() - started
        assert slot.client is not None
        client = slot.client
        slot.in_flight += 1
        slot.sent += 1
        if self._max_requests is not None and slot.sent >= self._max_requests:
            slot.retiring = True  # no more requests; replaced once drained
        try:
            if not waited:
                return await call(client)
            # The time spent in line counts against the request's limit.
            timeout = self._config.timeouts.for_message(cls)
            with anyio.move_on_after(timeout - waited):
                return await call(client)
            raise WorkerTimeoutError(
                f"{wire_name(cls)!r} did not complete within {timeout:g} s"
            )
        finally:
            slot.in_flight -= 1
            if slot.retiring and not slot.in_flight:
                slot.wake.set()

    async def broadcast(self, message: Request[R]) -> list[R]:
        """Send ``message`` to every worker at once; return their results in
        the order of `workers`.

        Raises:
            Exception: The first error, in that order, of a worker that failed,
                after every worker has answered.
        """
        clients = self.workers
        results: list[Any] = [None] * len(clients)
        errors: list[BaseException | None] = [None] * len(clients)

        async def one(index: int, client: WorkerClient) -> None:
            try:
                results[index] = await client.send(message)
            except Exception as exc:
                errors[index] = exc

        async with anyio.create_task_group() as tg:
            for index, client in enumerate(clients):
                tg.start_soon(one, index, client)
        for error in errors:
            if error is not None:
                raise error
        return results

    async def aclose(self) -> None:
        """Close every worker, concurrently; pending requests fail with
        `WorkerClosedError`, and new ones are refused. Idempotent."""
        self._closed = True
        self._notify()
        for slot in self._slots:
            slot.scope.cancel()  # its task closes its worker, shielded
        with anyio.CancelScope(shield=True):
            for slot in self._slots:
                await slot.ended.wait()

    def __repr__(self) -> str:
        return f"<WorkerPool size={self.size} workers={len(self.workers)}>"

    # --- dispatch ---------------------------------------------------------

    async def _wait_in_line(self, cls: type[Any]) -> _Slot:
        """Wait for a ready slot behind the senders that came first."""
        name = wire_name(cls)
        timeout = self._config.timeouts.for_message(cls)
        turn = _Turn()
        self._line.append(turn)
        try:
            with anyio.move_on_after(timeout):
                while True:
                    if self._closed:
                        raise WorkerClosedError(
                            f"the pool is closed; cannot send {name!r}"
                        )
                    if self._line[0] is turn and (slot := self._pick()) is not None:
                        return slot
                    await turn.wake.wait()
                    turn.wake = anyio.Event()
        finally:
            self._line.remove(turn)
            self._notify()  # the next in line looks for itself
        raise WorkerTimeoutError(
            f"no worker of the pool was ready for {name!r} within {timeout:g} s"
        )

    def _pick(self) -> _Slot | None:
        """The least busy slot whose worker is ready, else the least busy one
        whose worker is being respawned (its requests wait for it), else
        `None`. Among equally busy workers, the one sent the fewest requests:
        idle workers take turns."""
        ready: _Slot | None = None
        respawning: _Slot | None = None
        for slot in self._slots:
            client = slot.client
            if client is None or slot.retiring:
                continue
            if client.state is WorkerState.READY:
                if ready is None or _less_busy(slot, ready):
                    ready = slot
            elif client.state is WorkerState.STARTING and (
                respawning is None or _less_busy(slot, respawning)
            ):
                respawning = slot
        return ready if ready is not None else respawning

    def _notify(self) -> None:
        """Something changed: the first sender in line (every one, once the
        pool is closed) looks again."""
        if self._closed:
            for turn in self._line:
                turn.wake.set()
        elif self._line:
            self._line[0].wake.set()

    # --- each slot's life -------------------------------------------------

    async def _run_slot(self, slot: _Slot, *, task_status: TaskStatus[None]) -> None:
        """Keep a worker in ``slot``: start one, and start another whenever it
        crashes for good or is to be recycled. The first start's failure is
        raised; later ones are logged and tried again."""
        first = True
        backoff = _BACKOFF[0]
        try:
            with slot.scope:
                while not self._closed:
                    try:
                        async with open_from_config(self._config) as client:
                            slot.client, slot.sent, slot.retiring = client, 0, False
                            backoff = _BACKOFF[0]
                            self._notify()
                            if first:
                                first = False
                                task_status.started()
                            try:
                                await self._until_replaced(slot, client)
                            finally:
                                slot.client = None
                                self._notify()
                                slot.completed += client.stats.completed
                                slot.failed += client.stats.failed
                                slot.respawns += client.respawns
                            slot.replacements += 1
                    except Exception as exc:  # WorkerStartupError, an OSError
                        if first:
                            raise
                        log(
                            logger, logging.ERROR, "could not replace a worker: %s", exc
                        )
                        await anyio.sleep(backoff)
                        backoff = min(backoff * 2, _BACKOFF[1])
        finally:
            slot.ended.set()

    async def _until_replaced(self, slot: _Slot, client: WorkerClient) -> None:
        """Wait until ``client`` crashed for good, or was retired and drained."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(_wake_on_crash, client, slot)
            while client.state is not WorkerState.CRASHED and not (
                slot.retiring and not slot.in_flight
            ):
                await slot.wake.wait()
                slot.wake = anyio.Event()
            tg.cancel_scope.cancel()


def _less_busy(slot: _Slot, than: _Slot) -> bool:
    return slot.in_flight < than.in_flight or (
        slot.in_flight == than.in_flight and slot.sent < than.sent
    )


async def _wake_on_crash(client: WorkerClient, slot: _Slot) -> None:
    await client._wait_supervised()  # pyright: ignore[reportPrivateUsage]
    slot.wake.set()


@asynccontextmanager
async def open_worker_pool(
    target: str | os.PathLike[str] | None = None,
    *,
    messages: MessageRegistry | None = None,
    size: int | None = None,
    max_requests_per_worker: int | None = None,
    **options: Unpack[WorkerOptions],
) -> AsyncGenerator[WorkerPool]:
    """Start ``size`` workers and yield a `WorkerPool`; close them all on exit.

    Args:
        target: The worker, as for `open_worker`. Without one, the pool runs
            a built-in worker that serves `WorkerPool.run_sync` only, with the
            host's import path.
        messages: The registry shared with the workers (none without a
            target).
        size: How many workers (default: the number of CPUs).
        max_requests_per_worker: Replace a worker once it was sent this many
            requests, after the last of them is answered (default: never).
        **options: The other options of `open_worker`, for every worker.

    Raises:
        WorkerStartupError: A worker could not be started; none is left
            behind.
        ValueError: ``size`` or ``max_requests_per_worker`` is not a positive
            int, or ``messages`` is given without a target or missing with one.
    """
    if size is None:
        size = os.cpu_count() or 1
    for name, value in [
        ("size", size),
        ("max_requests_per_worker", max_requests_per_worker),
    ]:
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    if target is None:
        if messages is not None:
            raise ValueError("messages need the target worker that handles them")
        serializer = options.get("serializer")
        # By class: the built-in worker makes its own from the name.
        builtin = BUILTIN_SERIALIZERS.values()
        if serializer is not None and type(serializer) not in builtin:
            raise ValueError(
                f"a pool without a target takes the library's serializers "
                f"({', '.join(BUILTIN_SERIALIZERS)}), not {serializer!r}"
            )
        target, messages = GENERIC_WORKER, define_messages()
        path = os.pathsep.join(sys.path)
        options["env"] = {**(options.get("env") or {}), PATH_ENV: path}
    elif messages is None:
        raise ValueError(f"the worker {target!r} needs its messages")
    config = WorkerConfig.from_options(target, messages=messages, **options)
    try:
        async with anyio.create_task_group() as tg:
            pool = WorkerPool(config, size, max_requests_per_worker, tg)
            await _start_all(pool, tg)
            try:
                yield pool
            finally:
                await pool.aclose()
    except BaseExceptionGroup as group:
        raise_single(group)


async def _start_all(pool: WorkerPool, tg: TaskGroup) -> None:
    """Start every slot's first worker at once; if one cannot start, raise its
    `WorkerStartupError` (the others' are attached as notes)."""
    slots: Sequence[_Slot] = pool._slots  # pyright: ignore[reportPrivateUsage]
    try:
        async with anyio.create_task_group() as starting:
            for slot in slots:
                starting.start_soon(
                    tg.start,
                    pool._run_slot,  # pyright: ignore[reportPrivateUsage]
                    slot,
                )
    except BaseExceptionGroup as group:
        startup, other = group.split(WorkerStartupError)
        if startup is None or other is not None:
            raise
        first, *rest = startup.exceptions
        for error in rest:
            first.add_note(f"Another worker could not start either: {error}")
        raise first from None
