"""Benchmark isolated-workers against its peers in one run; print a table and ratios.

    python bench/bench.py                       # S1-S5, every available system
    python bench/bench.py --pinned              # plus S2 pinned to core 0
    python bench/bench.py --quick               # small counts: a smoke run
    python bench/bench.py --scenarios S2 --systems iw-asyncio,anyio-asyncio
    python bench/bench.py --scenarios S5        # pools only
    python bench/bench.py --pinned --serializer msgpack --rounds 2 \
        --report docs/_static/perf              # the Performance page's files

S1-S4 use one worker per system; S5 uses a pool of four: ``open_worker_pool``
and ``pool.send`` for the iw systems, ``pool.run_sync`` of a plain function for
the iw-run_sync ones, and the peers' own pools (anyio.to_process, trio-parallel,
concurrent.futures.ProcessPoolExecutor) running the same function. Systems that
only make sense as a pool (iw-run_sync-*, process-pool) measure S5 alone and
are left out of runs without it.

Each system is measured in a fresh child process of this script (the parent
only spawns, collects JSON and reports), so no system inherits another's
imports, event loop or worker processes. ``--pinned`` runs the S2 children
under ``taskset -c 0``; their worker processes inherit the affinity.

A benchmark, never a test: absolute numbers vary from machine to machine and run
to run; compare the ratios printed, which are taken within one run.

This module is imported again, as ``__mp_main__``, by every anyio.to_process
worker (anyio re-imports the host's main module there), so its top level
imports only small standard modules that such a worker has already loaded:
anything heavier would be charged to anyio.to_process's start time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Iterator, Sequence
    from concurrent.futures import Future
    from contextlib import AbstractAsyncContextManager
    from multiprocessing.connection import Connection

    from isolated_workers import PipeTransport, UnixSocketTransport

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_SCRIPT = os.path.join(HERE, "echo_worker.py")
RESULTS_DIR = os.path.join(HERE, "results")
MIB = 1024 * 1024
SCENARIOS = ("S1", "S2", "S3", "S4", "S5")

Result = dict[str, Any]

#: isolated-workers systems: (host backend, worker backend).
IW_SYSTEMS = {
    "iw-asyncio": ("asyncio", "asyncio"),
    "iw-trio": ("trio", "trio"),
    "iw-uvloop": ("uvloop", "uvloop"),
    "iw-asyncio-trio": ("asyncio", "trio"),
    "iw-trio-asyncio": ("trio", "asyncio"),
}
#: isolated-workers ``WorkerPool.run_sync`` on a pool's built-in worker (S5 only):
#: host and worker backend.
IW_RUN_SYNC_SYSTEMS = {"iw-run_sync-asyncio": "asyncio", "iw-run_sync-trio": "trio"}
ANYIO_SYSTEMS = {"anyio-asyncio": "asyncio", "anyio-trio": "trio"}
#: The minimal anyio design (bench/minimal.py), on each backend.
MINIMAL_SYSTEMS = {"minimal-asyncio": "asyncio", "minimal-trio": "trio"}
MIXED = ("iw-asyncio-trio", "iw-trio-asyncio")
#: Systems that are pools and nothing else: they measure S5 alone.
S5_ONLY = (*IW_RUN_SYNC_SYSTEMS, "process-pool")
ALL_SYSTEMS = (
    *IW_SYSTEMS,
    *IW_RUN_SYNC_SYSTEMS,
    *ANYIO_SYSTEMS,
    *MINIMAL_SYSTEMS,
    "trio-parallel",
    "mp-pipe",
    "process-pool",
)
DESCRIPTIONS = {
    "iw-asyncio": "isolated-workers, host asyncio x worker asyncio",
    "iw-trio": "isolated-workers, host trio x worker trio",
    "iw-uvloop": "isolated-workers, host and worker asyncio on uvloop",
    "iw-asyncio-trio": "isolated-workers, host asyncio x worker trio",
    "iw-trio-asyncio": "isolated-workers, host trio x worker asyncio",
    "iw-run_sync-asyncio": "isolated-workers pool.run_sync, built-in worker, asyncio",
    "iw-run_sync-trio": "isolated-workers pool.run_sync, built-in worker, trio",
    "anyio-asyncio": "anyio.to_process.run_sync on asyncio",
    "anyio-trio": "anyio.to_process.run_sync on trio",
    "minimal-asyncio": "the minimal anyio design (bench/minimal.py) on asyncio",
    "minimal-trio": "the minimal anyio design (bench/minimal.py) on trio",
    "trio-parallel": "trio_parallel (WorkerContext.run_sync)",
    "mp-pipe": "floor: multiprocessing.Pipe to a forked child, blocking",
    "process-pool": "concurrent.futures.ProcessPoolExecutor (fork), blocking",
}
#: (isolated-workers system, its baseline) pairs of the ratio table.
RATIO_PAIRS = (
    ("iw-asyncio", "anyio-asyncio"),
    ("iw-trio", "anyio-trio"),
    ("iw-uvloop", "anyio-asyncio"),
    ("iw-asyncio-trio", "anyio-asyncio"),
    ("iw-trio-asyncio", "anyio-trio"),
    ("iw-asyncio", "minimal-asyncio"),
    ("iw-trio", "minimal-trio"),
    ("iw-uvloop", "minimal-asyncio"),
    ("iw-asyncio", "mp-pipe"),
    ("iw-trio", "mp-pipe"),
    ("iw-uvloop", "mp-pipe"),
    ("iw-run_sync-asyncio", "anyio-asyncio"),
    ("iw-run_sync-trio", "anyio-trio"),
    ("iw-trio", "trio-parallel"),
    ("iw-asyncio", "process-pool"),
)

DEFAULT_COUNTS: dict[str, int] = {
    "s1_n": 20,
    "s2_warmup": 500,
    "s2_calls": 5000,
    "s3_total": 20_000,
    "s3_inflight": 100,
    "s4_calls": 200,
    "s4_warmup": 5,
    "s4_size": MIB,
    "s5_total": 20_000,
    "s5_inflight": 100,
    "s5_workers": 4,
}
QUICK_COUNTS: dict[str, int] = {
    "s1_n": 3,
    "s2_warmup": 100,
    "s2_calls": 1000,
    "s3_total": 2000,
    "s3_inflight": 100,
    "s4_calls": 10,
    "s4_warmup": 2,
    "s4_size": MIB,
    "s5_total": 2000,
    "s5_inflight": 100,
    "s5_workers": 4,
}

ns = time.perf_counter_ns


class BenchError(RuntimeError):
    """A system returned a wrong answer or could not be measured."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BenchError(what)


# ====================================================================== statistics


def _percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of sorted samples."""
    import math

    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _latency_summary(samples_ns: list[int]) -> Result:
    import statistics

    ordered = sorted(samples_ns)
    return {
        "calls": len(ordered),
        "median_us": statistics.median(ordered) / 1000,
        "p99_us": _percentile(ordered, 0.99) / 1000,
        "p90_us": _percentile(ordered, 0.90) / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "min_us": ordered[0] / 1000,
    }


def _start_summary(starts_ns: list[int], closes_ns: list[int]) -> Result:
    import statistics

    return {
        "n": len(starts_ns),
        "start_ms": statistics.median(starts_ns) / 1e6,
        "start_min_ms": min(starts_ns) / 1e6,
        "start_max_ms": max(starts_ns) / 1e6,
        "close_ms": statistics.median(closes_ns) / 1e6,
    }


def _throughput(count: int, elapsed_ns: int, unit: str) -> Result:
    return {
        "count": count,
        "elapsed_s": elapsed_ns / 1e9,
        unit: count / elapsed_ns * 1e9,
    }


class _Profiler:
    """cProfile around the measured loops of S2 and S4 when ``--profile`` is given."""

    def __init__(self, enabled: bool, system: str) -> None:
        self.enabled = enabled
        self.system = system

    @contextlib.contextmanager
    def section(self, scenario: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        import cProfile
        import io
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            for key in ("tottime", "cumulative"):
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats(key).print_stats(25)
                print(
                    f"\n===== profile of {self.system} {scenario}, by {key} =====",
                    file=sys.stderr,
                )
                print(text.getvalue(), file=sys.stderr)


# ====================================================================== generic loops


async def _s1_async(
    launch: Callable[[], AbstractAsyncContextManager[Any]],
    first: Callable[[Any], Awaitable[int]],
    counts: dict[str, int],
) -> Result:
    """Open with ``launch``, make the ``first`` round trip, close; ``s1_n`` times."""
    from contextlib import AsyncExitStack

    starts: list[int] = []
    closes: list[int] = []
    for _ in range(counts["s1_n"]):
        async with AsyncExitStack() as stack:
            t0 = ns()
            handle = await stack.enter_async_context(launch())
            result = await first(handle)
            t1 = ns()
            await stack.aclose()
            t2 = ns()
        _check(result == 1, "S1: wrong echo")
        starts.append(t1 - t0)
        closes.append(t2 - t1)
    return _start_summary(starts, closes)


async def _s2_to_s4(
    echo: Callable[[int], Awaitable[int]],
    echo_bytes: Callable[[bytes], Awaitable[bytes]],
    scenarios: Sequence[str],
    counts: dict[str, int],
    profile: _Profiler,
) -> Result:
    """The steady-state scenarios, on one open worker."""
    out: Result = {}
    if "S2" in scenarios:
        out["S2"] = await _s2_async(echo, counts, profile)
    if "S3" in scenarios:
        out["S3"] = await _s3_async(echo, counts)
    if "S4" in scenarios:
        out["S4"] = await _s4_async(echo_bytes, counts, profile)
    return out


async def _s2_async(
    call: Callable[[int], Awaitable[int]], counts: dict[str, int], profile: _Profiler
) -> Result:
    for i in range(counts["s2_warmup"]):
        _check(await call(i) == i, "S2 warm-up: wrong echo")
    samples = [0] * counts["s2_calls"]
    with profile.section("S2"):
        for i in range(counts["s2_calls"]):
            t0 = ns()
            result = await call(i)
            samples[i] = ns() - t0
            if result != i:
                raise BenchError("S2: wrong echo")
    return _latency_summary(samples)


def _s2_sync(
    call: Callable[[int], int], counts: dict[str, int], profile: _Profiler
) -> Result:
    for i in range(counts["s2_warmup"]):
        _check(call(i) == i, "S2 warm-up: wrong echo")
    samples = [0] * counts["s2_calls"]
    with profile.section("S2"):
        for i in range(counts["s2_calls"]):
            t0 = ns()
            result = call(i)
            samples[i] = ns() - t0
            if result != i:
                raise BenchError("S2: wrong echo")
    return _latency_summary(samples)


async def _s3_async(
    call: Callable[[int], Awaitable[int]], counts: dict[str, int]
) -> Result:
    inflight = counts["s3_inflight"]
    rate = await _inflight_async(call, counts["s3_total"], inflight, "S3")
    return {**rate, "inflight": inflight}


async def _s5_async(
    call: Callable[[int], Awaitable[int]], counts: dict[str, int]
) -> Result:
    """S5 on a pool that ``call`` sends to; the caller opened it with
    ``s5_workers`` workers."""
    inflight = counts["s5_inflight"]
    rate = await _inflight_async(
        call, counts["s5_total"], inflight, "S5", unit="tasks_per_s"
    )
    return {**rate, "inflight": inflight, "workers": counts["s5_workers"]}


async def _inflight_async(
    call: Callable[[int], Awaitable[int]],
    total: int,
    inflight: int,
    scenario: str,
    unit: str = "msgs_per_s",
) -> Result:
    """Throughput of ``total`` calls kept ``inflight`` at a time, after a warm-up."""
    import anyio

    async def burst(count: int) -> None:
        remaining = count

        # A fixed set of tasks taking the next number each: no task per call,
        # whose start-up cost would be charged to the system measured.
        async def runner() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                i = remaining
                if await call(i) != i:
                    raise BenchError(f"{scenario}: wrong echo")

        async with anyio.create_task_group() as tg:
            for _ in range(inflight):
                tg.start_soon(runner)

    # The warm-up also starts whatever a pool starts lazily (anyio.to_process
    # and trio-parallel spawn workers on demand), outside the timed part.
    await burst(max(inflight * 5, total // 10))
    t0 = ns()
    await burst(total)
    return _throughput(total, ns() - t0, unit)


async def _s4_async(
    call: Callable[[bytes], Awaitable[bytes]],
    counts: dict[str, int],
    profile: _Profiler,
) -> Result:
    size, calls = counts["s4_size"], counts["s4_calls"]
    payload = os.urandom(size)
    _check(await call(payload) == payload, "S4: payload changed on the way")
    for _ in range(counts["s4_warmup"] - 1):
        await call(payload)
    with profile.section("S4"):
        t0 = ns()
        for _ in range(calls):
            if len(await call(payload)) != size:
                raise BenchError("S4: wrong echo")
        elapsed = ns() - t0
    return {
        "calls": calls,
        "size": size,
        "elapsed_s": elapsed / 1e9,
        "ms_per_call": elapsed / calls / 1e6,
        "mib_per_s": calls * size / MIB / (elapsed / 1e9),
    }


# ====================================================================== systems


async def _measure_isolated_workers(
    worker_backend: str,
    scenarios: Sequence[str],
    counts: dict[str, int],
    handler: str,
    profile: _Profiler,
) -> Result:

    from bench_messages import Echo, EchoBytes, Messages, make_serializer

    from isolated_workers import WorkerClient, open_worker, open_worker_pool

    args = ["--async"] if handler == "async" else []
    backend: Any = worker_backend

    def launch() -> Any:
        return open_worker(
            WORKER_SCRIPT,
            messages=Messages,
            backend=backend,
            args=args,
            serializer=make_serializer(),
            transport=_iw_transport(),
        )

    out: Result = {}
    if "S1" in scenarios:

        async def first(worker: WorkerClient) -> int:
            return await worker.send(Echo(1))

        out["S1"] = await _s1_async(launch, first, counts)
    if any(s in scenarios for s in ("S2", "S3", "S4")):
        async with launch() as opened:
            worker: WorkerClient = opened

            def echo(i: int) -> Awaitable[int]:
                return worker.send(Echo(i))

            async def echo_bytes(data: bytes) -> bytes:
                return await worker.send(EchoBytes(data))

            out.update(await _s2_to_s4(echo, echo_bytes, scenarios, counts, profile))
    if "S5" in scenarios:
        # The same worker and options as above, s5_workers of them behind the
        # pool's least-busy dispatch.
        async with open_worker_pool(
            WORKER_SCRIPT,
            messages=Messages,
            size=counts["s5_workers"],
            backend=backend,
            args=args,
            serializer=make_serializer(),
            transport=_iw_transport(),
        ) as pool:

            def send(i: int) -> Awaitable[int]:
                return pool.send(Echo(i))

            out["S5"] = await _s5_async(send, counts)
    return out


async def _measure_iw_run_sync(
    worker_backend: str, scenarios: Sequence[str], counts: dict[str, int]
) -> Result:
    """S5 through ``WorkerPool.run_sync`` on a pool opened without a target."""
    from bench_plain import echo_int

    from isolated_workers import open_worker_pool

    out: Result = _na_but_s5(scenarios)
    if "S5" in scenarios:
        # No serializer: the built-in worker speaks only the default (JSON), so
        # --serializer does not apply here. It imports bench_plain through the
        # host's sys.path, which the pool hands it, and this script's directory
        # is on that path.
        async with open_worker_pool(
            size=counts["s5_workers"],
            backend=worker_backend,
            transport=_iw_transport(),
        ) as pool:

            def call(i: int) -> Awaitable[int]:
                return pool.run_sync(echo_int, i)

            out["S5"] = await _s5_async(call, counts)
    return out


def _iw_transport() -> PipeTransport | UnixSocketTransport:
    """The isolated-workers transport named by ``BENCH_TRANSPORT``."""
    import isolated_workers

    if os.environ["BENCH_TRANSPORT"] == "pipe":
        return isolated_workers.PipeTransport()
    return isolated_workers.UnixSocketTransport()


def _na_but_s5(scenarios: Sequence[str]) -> Result:
    """The entries of a pool-only system for the scenarios other than S5."""
    return {s: {"na": "a pool: S5 only"} for s in scenarios if s != "S5"}


def _measure_anyio_to_process(
    backend: str, scenarios: Sequence[str], counts: dict[str, int], profile: _Profiler
) -> Result:
    import anyio
    import anyio.to_process
    from bench_plain import echo_bytes, echo_int

    out: Result = {}
    if "S1" in scenarios:
        # anyio's process pool lives in a RunVar: every anyio.run() starts
        # with an empty pool and kills its workers when it ends, so the first
        # run_sync of each run spawns a worker and is the start time.
        async def first_call() -> tuple[int, int]:
            t0 = ns()
            result = await anyio.to_process.run_sync(echo_int, 1)
            t1 = ns()
            _check(result == 1, "S1: wrong echo")
            return t1 - t0, t1

        starts: list[int] = []
        closes: list[int] = []
        for _ in range(counts["s1_n"]):
            start, t1 = anyio.run(first_call, backend=backend)
            starts.append(start)
            closes.append(ns() - t1)  # loop exit, which kills the pool
        out["S1"] = {
            **_start_summary(starts, closes),
            "close_note": "event loop exit, which kills the process pool",
        }

    async def steady() -> None:
        def echo(i: int) -> Awaitable[int]:
            return anyio.to_process.run_sync(echo_int, i)

        def echo_payload(data: bytes) -> Awaitable[bytes]:
            return anyio.to_process.run_sync(echo_bytes, data)

        if "S2" in scenarios:
            out["S2"] = await _s2_async(echo, counts, profile)
        if "S4" in scenarios:
            out["S4"] = await _s4_async(echo_payload, counts, profile)

    # A run of its own, so a process pool of its own (see S1): the limiter lets
    # at most s5_workers calls through at once, and anyio spawns a process
    # only when none is idle, so the pool grows to s5_workers processes.
    async def pool() -> Result:
        limiter = anyio.CapacityLimiter(counts["s5_workers"])

        def call(i: int) -> Awaitable[int]:
            return anyio.to_process.run_sync(echo_int, i, limiter=limiter)

        return await _s5_async(call, counts)

    if any(s in scenarios for s in ("S2", "S4")):
        anyio.run(steady, backend=backend)
    if "S3" in scenarios:
        out["S3"] = {"na": "one call at a time per worker process"}
    if "S5" in scenarios:
        out["S5"] = anyio.run(pool, backend=backend)
    return out


def _measure_trio_parallel(
    scenarios: Sequence[str], counts: dict[str, int], profile: _Profiler
) -> Result:
    import trio
    import trio_parallel  # type: ignore[import-not-found, import-untyped, unused-ignore]
    from bench_plain import echo_bytes, echo_int

    out: Result = {}
    if "S1" in scenarios:

        async def first_call() -> tuple[int, int]:
            t0 = ns()
            async with trio_parallel.open_worker_context() as ctx:
                result = await ctx.run_sync(echo_int, 1)
                t1 = ns()
            t2 = ns()
            _check(result == 1, "S1: wrong echo")
            return t1 - t0, t2 - t1

        starts: list[int] = []
        closes: list[int] = []
        for _ in range(counts["s1_n"]):
            start, close = trio.run(first_call)
            starts.append(start)
            closes.append(close)
        out["S1"] = _start_summary(starts, closes)

    async def steady() -> None:
        async with trio_parallel.open_worker_context() as ctx:

            def echo(i: int) -> Awaitable[int]:
                result: Awaitable[int] = ctx.run_sync(echo_int, i)
                return result

            def echo_payload(data: bytes) -> Awaitable[bytes]:
                result: Awaitable[bytes] = ctx.run_sync(echo_bytes, data)
                return result

            if "S2" in scenarios:
                out["S2"] = await _s2_async(echo, counts, profile)
            if "S4" in scenarios:
                out["S4"] = await _s4_async(echo_payload, counts, profile)

    # A context of its own, closed with its workers before the run ends; as
    # with anyio, the limiter bounds the workers it spawns.
    async def pool() -> Result:
        limiter = trio.CapacityLimiter(counts["s5_workers"])
        async with trio_parallel.open_worker_context() as ctx:

            def call(i: int) -> Awaitable[int]:
                result: Awaitable[int] = ctx.run_sync(echo_int, i, limiter=limiter)
                return result

            return await _s5_async(call, counts)

    if any(s in scenarios for s in ("S2", "S4")):
        trio.run(steady)
    if "S3" in scenarios:
        out["S3"] = {"na": "one call at a time per worker process"}
    if "S5" in scenarios:
        out["S5"] = trio.run(pool)
    return out


def _pipe_child(parent_end: Connection, conn: Connection) -> None:
    """The forked child: echo every message, as raw bytes, until EOF."""
    parent_end.close()
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass
    finally:
        conn.close()


class _PipeWorker:
    """A forked child echoing over a `multiprocessing.Pipe`."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self.conn, child_end = context.Pipe()
        self.process = context.Process(
            target=_pipe_child, args=(self.conn, child_end), daemon=True
        )
        self.process.start()
        child_end.close()

    def echo(self, i: int) -> int:
        self.conn.send(i)
        result: int = self.conn.recv()
        return result

    def close(self) -> None:
        self.conn.close()  # the child sees EOF and exits
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.process.close()


def _measure_pipe(
    scenarios: Sequence[str], counts: dict[str, int], profile: _Profiler
) -> Result:
    out: Result = {}
    if "S1" in scenarios:
        starts: list[int] = []
        closes: list[int] = []
        for _ in range(counts["s1_n"]):
            t0 = ns()
            pipe = _PipeWorker()
            try:
                first = pipe.echo(1)
                t1 = ns()
            finally:
                pipe.close()
            t2 = ns()
            _check(first == 1, "S1: wrong echo")
            starts.append(t1 - t0)
            closes.append(t2 - t1)
        out["S1"] = _start_summary(starts, closes)
    if "S5" in scenarios:
        out["S5"] = {"na": "one worker, not a pool; see process-pool"}
    if not any(s in scenarios for s in ("S2", "S3", "S4")):
        return out
    pipe = _PipeWorker()
    try:
        if "S2" in scenarios:
            out["S2"] = _s2_sync(pipe.echo, counts, profile)
        if "S3" in scenarios:
            out["S3"] = _pipe_s3(pipe.conn, counts)
        if "S4" in scenarios:
            out["S4"] = _pipe_s4(pipe.conn, counts, profile)
    finally:
        pipe.close()
    return out


def _pipe_s3(conn: Connection, counts: dict[str, int]) -> Result:
    """Keep ``inflight`` requests written ahead of the replies read."""
    inflight = counts["s3_inflight"]

    def burst(total: int) -> None:
        sent = received = 0
        while sent < min(inflight, total):
            conn.send(sent)
            sent += 1
        while received < total:
            if conn.recv() != received:
                raise BenchError("S3: wrong echo")
            received += 1
            if sent < total:
                conn.send(sent)
                sent += 1

    total = counts["s3_total"]
    burst(max(inflight * 5, total // 10))
    t0 = ns()
    burst(total)
    return {**_throughput(total, ns() - t0, "msgs_per_s"), "inflight": inflight}


def _pipe_s4(conn: Connection, counts: dict[str, int], profile: _Profiler) -> Result:
    size, calls = counts["s4_size"], counts["s4_calls"]
    payload = os.urandom(size)
    conn.send_bytes(payload)
    _check(conn.recv_bytes() == payload, "S4: payload changed on the way")
    for _ in range(counts["s4_warmup"] - 1):
        conn.send_bytes(payload)
        conn.recv_bytes()
    with profile.section("S4"):
        t0 = ns()
        for _ in range(calls):
            conn.send_bytes(payload)
            if len(conn.recv_bytes()) != size:
                raise BenchError("S4: wrong echo")
        elapsed = ns() - t0
    return {
        "calls": calls,
        "size": size,
        "elapsed_s": elapsed / 1e9,
        "ms_per_call": elapsed / calls / 1e6,
        "mib_per_s": calls * size / MIB / (elapsed / 1e9),
    }


def _measure_process_pool(scenarios: Sequence[str], counts: dict[str, int]) -> Result:
    """S5 on a `concurrent.futures.ProcessPoolExecutor`, driven from blocking code."""
    import collections
    import concurrent.futures
    import multiprocessing

    from bench_plain import echo_int

    out = _na_but_s5(scenarios)
    if "S5" not in scenarios:
        return out
    inflight, total = counts["s5_inflight"], counts["s5_total"]

    def burst(pool: concurrent.futures.Executor, count: int) -> None:
        # A window of futures in the order submitted: wait for the oldest,
        # then submit the next. The pool answers about in that order (one
        # call queue), so the window stays full without a wait() on them all.
        window: collections.deque[tuple[int, Future[int]]] = collections.deque()

        def settle_oldest() -> None:
            expected, future = window.popleft()
            if future.result() != expected:
                raise BenchError("S5: wrong echo")

        for i in range(count):
            if len(window) >= inflight:
                settle_oldest()
            window.append((i, pool.submit(echo_int, i)))
        while window:
            settle_oldest()

    with concurrent.futures.ProcessPoolExecutor(
        counts["s5_workers"], mp_context=multiprocessing.get_context("fork")
    ) as pool:
        burst(pool, max(inflight * 5, total // 10))  # warm-up: forks the workers
        t0 = ns()
        burst(pool, total)
        elapsed = ns() - t0
    out["S5"] = {
        **_throughput(total, elapsed, "tasks_per_s"),
        "inflight": inflight,
        "workers": counts["s5_workers"],
    }
    return out


def measure(
    system: str,
    scenarios: Sequence[str],
    counts: dict[str, int],
    handler: str,
    profile: bool,
) -> Result:
    """Measure one system in this process; the child's whole job."""
    profiler = _Profiler(profile, system)
    if system in IW_SYSTEMS:
        import anyio

        host, worker = IW_SYSTEMS[system]
        return anyio.run(
            _measure_isolated_workers,
            worker,
            scenarios,
            counts,
            handler,
            profiler,
            backend="trio" if host == "trio" else "asyncio",
            backend_options={"use_uvloop": True} if host == "uvloop" else {},
        )
    if system in IW_RUN_SYNC_SYSTEMS:
        import anyio

        backend = IW_RUN_SYNC_SYSTEMS[system]
        return anyio.run(
            _measure_iw_run_sync, backend, scenarios, counts, backend=backend
        )
    if system in MINIMAL_SYSTEMS:
        import anyio

        backend = MINIMAL_SYSTEMS[system]
        return anyio.run(
            _measure_minimal, backend, scenarios, counts, profiler, backend=backend
        )
    if system in ANYIO_SYSTEMS:
        return _measure_anyio_to_process(
            ANYIO_SYSTEMS[system], scenarios, counts, profiler
        )
    if system == "trio-parallel":
        return _measure_trio_parallel(scenarios, counts, profiler)
    if system == "mp-pipe":
        return _measure_pipe(scenarios, counts, profiler)
    if system == "process-pool":
        return _measure_process_pool(scenarios, counts)
    raise ValueError(f"unknown system {system!r}")


async def _measure_minimal(
    backend: str,
    scenarios: Sequence[str],
    counts: dict[str, int],
    profile: _Profiler,
) -> Result:
    from minimal import open_minimal

    out: Result = {}
    if "S1" in scenarios:

        async def first(handle: tuple[Callable[[int], Awaitable[int]], int]) -> int:
            return await handle[0](1)

        out["S1"] = await _s1_async(lambda: open_minimal(backend), first, counts)
    if any(s in scenarios for s in ("S2", "S3", "S4")):
        async with open_minimal(backend) as (call, _):
            out.update(await _s2_to_s4(call, call, scenarios, counts, profile))
    if "S5" in scenarios:
        out["S5"] = {"na": "one worker, not a pool"}
    return out


# ====================================================================== parent side


def _run_child(
    system: str,
    scenarios: Sequence[str],
    options: argparse.Namespace,
    counts: dict[str, int],
    *,
    pinned: bool,
) -> Result:
    """Measure ``system`` in a child process (under ``taskset -c 0`` if pinned)."""
    import json
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="iw-bench-") as directory:
        out_path = os.path.join(directory, "result.json")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            system,
            "--scenarios",
            ",".join(scenarios),
            "--counts-json",
            json.dumps(counts),
            "--handler",
            options.handler,
            "--child-out",
            out_path,
        ]
        if options.profile:
            command.append("--profile")
        if pinned:
            taskset = shutil.which("taskset")
            if taskset is not None:
                command = [taskset, "-c", "0", *command]
            else:
                command.append("--pin-self")
        t0 = time.monotonic()
        try:
            completed = subprocess.run(
                command, stdin=subprocess.DEVNULL, timeout=options.child_timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {options.child_timeout:g} s"}
        if completed.returncode != 0 or not os.path.exists(out_path):
            return {"error": f"child exited with code {completed.returncode}"}
        with open(out_path) as file:
            result: Result = json.load(file)
        result["wall_s"] = time.monotonic() - t0
        return result


def _median_of_rounds(rounds: list[Result]) -> Result:
    """Per scenario, the median over rounds of every numeric field."""
    import statistics

    merged: Result = {}
    for scenario in SCENARIOS:
        values = [r[scenario] for r in rounds if scenario in r]
        if not values:
            continue
        if any("na" in v for v in values):
            merged[scenario] = values[0]
            continue
        entry: Result = {}
        for key, value in values[0].items():
            numbers = [v[key] for v in values if isinstance(v.get(key), int | float)]
            if isinstance(value, int | float) and numbers:
                entry[key] = statistics.median(numbers)
            else:
                entry[key] = value
        merged[scenario] = entry
    return merged


def _machine_info() -> Result:
    import importlib.metadata
    import platform

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu_model = None
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "git": _git_info(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "cpu_model": cpu_model,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "versions": {
            name: version(name)
            for name in ("isolated-workers", "anyio", "trio", "trio-parallel", "attrs")
        },
    }


def _git_info() -> Result | None:
    """The commit measured, and whether src/ had changes not committed."""
    import subprocess

    root = os.path.dirname(HERE)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "src_dirty": bool(git("status", "--porcelain", "--", "src")),
        }
    except (OSError, subprocess.CalledProcessError):
        return None


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if kind == "rate":
        return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


#: Table columns: (header, source, field, format, higher is better).
COLUMNS = (
    ("S1 start ms", "S1", "start_ms", "num", False),
    ("S1 close ms", "S1", "close_ms", "num", False),
    ("S2 med us", "S2", "median_us", "num", False),
    ("S2 p99 us", "S2", "p99_us", "num", False),
    ("S2pin med us", "S2pin", "median_us", "num", False),
    ("S2pin p99 us", "S2pin", "p99_us", "num", False),
    ("S3 msg/s", "S3", "msgs_per_s", "rate", True),
    ("S4 MiB/s", "S4", "mib_per_s", "num", True),
    ("S5 tasks/s", "S5", "tasks_per_s", "rate", True),
)


def _cell(entry: Result | None, field: str) -> Any:
    if entry is None:
        return None
    if "na" in entry:
        return "n/a"
    return entry.get(field)


def _render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
    return "\n".join(lines)


def _ratio(iw: Any, base: Any, higher_is_better: bool) -> float | None:
    if not isinstance(iw, int | float) or not isinstance(base, int | float):
        return None
    if iw <= 0 or base <= 0:
        return None
    return float(iw / base if higher_is_better else base / iw)


def report(summary: Result) -> str:
    """The readable table and the ratios."""
    systems: dict[str, Result] = summary["systems"]
    wanted = [*summary["scenarios"], *(["S2pin"] if summary["pinned"] else [])]
    columns = [c for c in COLUMNS if c[1] in wanted]
    lines = ["Legend:"]
    width = max(map(len, systems), default=0)
    for name, entry in systems.items():
        note = ""
        if "error" in entry or "skipped" in entry:
            kind = "error" if "error" in entry else "skipped"
            note = f" [{kind}: {entry[kind]}]"
        lines.append(f"  {name:<{width}} {DESCRIPTIONS[name]}{note}")
    headers = ["system", *(c[0] for c in columns)]
    rows: list[list[str]] = []
    for name, entry in systems.items():
        if "error" in entry or "skipped" in entry:
            why = "error" if "error" in entry else "skipped"
            rows.append([name, why, *(["-"] * (len(columns) - 1))])
            continue
        rows.append(
            [name]
            + [
                _fmt(_cell(entry.get(src), field), kind)
                for _, src, field, kind, _ in columns
            ]
        )
    lines += ["", _render_table(headers, rows)]

    ratio_rows: list[list[str]] = []
    for iw, base in RATIO_PAIRS:
        if iw not in systems or base not in systems:
            continue
        a, b = systems[iw], systems[base]
        if "error" in a or "error" in b or "skipped" in a or "skipped" in b:
            continue
        cells = []
        for _, src, field, _, higher in columns:
            value = _ratio(_cell(a.get(src), field), _cell(b.get(src), field), higher)
            cells.append(_fmt(value, "ratio") if value is not None else "n/a")
        # A pair with nothing to compare in these scenarios (S5 of a one-worker
        # baseline, say) is noise.
        if any(cell != "n/a" for cell in cells):
            ratio_rows.append([f"{iw} vs {base}", *cells])
    if ratio_rows:
        lines += [
            "",
            "Ratios: above 1.00x isolated-workers is better (faster, or more "
            "throughput) than the baseline, below 1.00x it is worse.",
            _render_table(["pair", *(c[0] for c in columns)], ratio_rows),
        ]
    return "\n".join(lines)


def _targets(summary: Result) -> list[str]:
    """The ratio targets of the performance spec that this run can check (the
    same checks as the Performance page's, from bench_report.py)."""
    import bench_report

    lines: list[str] = []
    found = bench_report.checks(summary)
    pool = bench_report.best_pool(summary)
    if pool is not None and any(
        c.target.baseline == bench_report.BEST_POOL for c in found
    ):
        lines.append(
            f"  (S5 best Python pool peer in this run: {pool[0]}, "
            f"{_fmt(pool[1], 'rate')} tasks/s)"
        )
    for check in found:
        target = check.target
        verdict = "met" if check.met else "NOT met"
        lines.append(
            f"  {target.scenario} {target.system} at least {target.goal:.1f}x "
            f"{check.baseline}: {check.ratio:.2f}x ({verdict})"
        )
    return lines


def _parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SystemExit(
            f"unknown {what}: {', '.join(unknown)}; known: {', '.join(allowed)}"
        )
    return items


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(
        description="Benchmark isolated-workers and its peers in one run.",
        epilog="Systems: " + ", ".join(f"{k} ({v})" for k, v in DESCRIPTIONS.items()),
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--systems",
        default=None,
        help="comma-separated (default: every system but the mixed pairings, "
        "and but the pool-only ones when S5 is not run)",
    )
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="add the mixed pairings iw-asyncio-trio and iw-trio-asyncio",
    )
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="also run S2 with host and workers pinned to core 0 (taskset -c 0)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a smoke run"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every system this many times, interleaved; report medians",
    )
    parser.add_argument(
        "--handler",
        choices=("sync", "async"),
        default="sync",
        help="isolated-workers handler kind in the worker (default: %(default)s)",
    )
    parser.add_argument(
        "--serializer",
        choices=("json", "msgpack", "pickle"),
        default="json",
        help="isolated-workers serializer (default: %(default)s)",
    )
    parser.add_argument(
        "--transport",
        choices=("socket", "pipe"),
        default="socket",
        help="isolated-workers transport (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=N",
        help="override a count: " + ", ".join(DEFAULT_COUNTS),
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile each child's S2 loop (host side) and print its top functions "
        "to stderr; distorts the timings",
    )
    parser.add_argument(
        "--output", default=None, help="JSON result path (default: bench/results/...)"
    )
    parser.add_argument(
        "--report",
        default=None,
        metavar="PREFIX",
        help="also write PREFIX.csv (the table), PREFIX-targets.csv, PREFIX-run.txt "
        "and PREFIX.png (the plot; needs matplotlib), as the docs show them, "
        "e.g. docs/_static/perf",
    )
    parser.add_argument(
        "--child-timeout", type=float, default=600.0, help=argparse.SUPPRESS
    )
    # Internal: the child process that measures one system.
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--counts-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pin-self", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _child_main(options: argparse.Namespace) -> int:
    import json

    if options.pin_self:
        os.sched_setaffinity(0, {0})
    counts = json.loads(options.counts_json)
    scenarios = _parse_list(options.scenarios, SCENARIOS, "scenario")
    results = measure(
        options.child, scenarios, counts, options.handler, options.profile
    )
    payload = {
        "system": options.child,
        "results": results,
        "affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
    }
    with open(options.child_out, "w") as file:
        json.dump(payload, file)
    return 0


def _parent_main(options: argparse.Namespace) -> int:
    import datetime
    import importlib.util
    import json

    scenarios = _parse_list(options.scenarios, SCENARIOS, "scenario")
    if options.report and importlib.util.find_spec("matplotlib") is None:
        # Said before the run, not after minutes of measuring.
        raise SystemExit("--report draws its plot with matplotlib: pip install it")
    if options.systems is not None:
        systems = _parse_list(options.systems, ALL_SYSTEMS, "system")
    else:
        systems = [
            s
            for s in ALL_SYSTEMS
            if (s not in MIXED or options.mixed)
            and (s not in S5_ONLY or "S5" in scenarios)
        ]
    counts = dict(QUICK_COUNTS if options.quick else DEFAULT_COUNTS)
    for item in options.set:
        key, _, value = item.partition("=")
        if key not in counts or not value.isdigit():
            raise SystemExit(
                f"--set {item!r}: expected KEY=N with KEY in {list(counts)}"
            )
        counts[key] = int(value)

    skipped: dict[str, str] = {}
    if "S5" not in scenarios:
        skipped.update((s, "measures S5 only") for s in systems if s in S5_ONLY)
    if "trio-parallel" in systems and importlib.util.find_spec("trio_parallel") is None:
        skipped["trio-parallel"] = "not installed"
    if importlib.util.find_spec("trio") is None:
        skipped.update((s, "trio not installed") for s in systems if "trio" in s)
    if importlib.util.find_spec("uvloop") is None:
        skipped.update((s, "uvloop not installed") for s in systems if "uvloop" in s)
    runnable = [s for s in systems if s not in skipped]

    started = time.monotonic()
    print(
        f"isolated-workers benchmark: scenarios {','.join(scenarios)}"
        f"{' + S2 pinned' if options.pinned else ''}; systems {', '.join(runnable)}; "
        f"{options.rounds} round(s); counts {counts}",
        file=sys.stderr,
    )
    rounds: dict[str, list[Result]] = {s: [] for s in runnable}
    pinned_rounds: dict[str, list[Result]] = {s: [] for s in runnable}
    errors: dict[str, str] = {}
    for round_no in range(options.rounds):
        jobs: list[tuple[str, list[str], bool]] = [
            (s, scenarios, False) for s in runnable
        ]
        if options.pinned:
            jobs += [(s, ["S2"], True) for s in runnable if s not in S5_ONLY]
        for system, job_scenarios, pinned in jobs:
            label = f"{system}{' pinned' if pinned else ''}"
            print(
                f"[{time.monotonic() - started:6.1f} s] round {round_no + 1}: {label} "
                f"{','.join(job_scenarios)}",
                file=sys.stderr,
                flush=True,
            )
            result = _run_child(system, job_scenarios, options, counts, pinned=pinned)
            if "error" in result:
                errors[label] = result["error"]
                print(f"    {label}: {result['error']}", file=sys.stderr)
                continue
            if pinned and result.get("affinity") not in ([0], None):
                errors[label] = f"not pinned (affinity {result.get('affinity')})"
            (pinned_rounds if pinned else rounds)[system].append(result["results"])

    merged: dict[str, Result] = {}
    for system in systems:
        if system in skipped:
            merged[system] = {"skipped": skipped[system]}
            continue
        if system in errors and not rounds[system]:
            merged[system] = {"error": errors[system]}
            continue
        entry = _median_of_rounds(rounds[system])
        if pinned_rounds[system]:
            entry["S2pin"] = _median_of_rounds(pinned_rounds[system]).get("S2")
        merged[system] = entry

    summary: Result = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "machine": _machine_info(),
        "scenarios": scenarios,
        "pinned": options.pinned,
        "rounds": options.rounds,
        "handler": options.handler,
        "serializer": options.serializer,
        "transport": options.transport,
        "quick": options.quick,
        "profiled": options.profile,
        "counts": counts,
        "errors": errors,
        "systems": merged,
        "per_round": {"normal": rounds, "pinned": pinned_rounds},
        "elapsed_s": time.monotonic() - started,
    }
    text = report(summary)
    targets = _targets(summary)
    machine = summary["machine"]
    print()
    print(
        f"Machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
        f"Python {sys.version.split()[0]}, "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    )
    if machine["git"]:
        dirty = " + uncommitted changes in src/" if machine["git"]["src_dirty"] else ""
        print(f"Measured: commit {machine['git']['commit'][:12]}{dirty}")
    print(
        f"Counts: S1 median of {counts['s1_n']}; S2 {counts['s2_calls']} calls after "
        f"{counts['s2_warmup']}; S3 {counts['s3_total']} with {counts['s3_inflight']} "
        f"in flight; S4 {counts['s4_calls']} x {counts['s4_size']} bytes; "
        f"S5 {counts['s5_total']} on {counts['s5_workers']} workers with "
        f"{counts['s5_inflight']} in flight; "
        f"handler {options.handler}; serializer {options.serializer}; "
        f"transport {options.transport}{'; PROFILED' if options.profile else ''}"
    )
    print(text)
    if targets:
        print("\nSpec targets (performance.md) checked in this run:")
        print("\n".join(targets))
    if errors:
        print("\nErrors: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    print(
        "\nAbsolute numbers vary between machines and runs; compare ratios taken "
        "within one run."
    )
    if options.output:
        path = options.output
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    else:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(RESULTS_DIR, f"bench-{stamp}.json")
    with open(path, "w") as file:
        json.dump(summary, file, indent=2)
    print(f"Results: {path} ({summary['elapsed_s']:.0f} s)")
    if options.report:
        import bench_report

        written = bench_report.write_report(summary, options.report)
        print(f"Report: {', '.join(written)}")
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_args(argv)
    # Children and their workers inherit these (see echo_worker.py).
    os.environ.setdefault("BENCH_SERIALIZER", options.serializer)
    os.environ.setdefault("BENCH_TRANSPORT", options.transport)
    if options.child is not None:
        return _child_main(options)
    return _parent_main(options)


if __name__ == "__main__":
    sys.exit(main())
