"""Protocol and bad input across the process boundary: reliability spec (c).

C1-C13 and C15, in each direction that exists, with two kinds of raw peer:

- `raw_host` plays the host: it runs the bootstrap and handshake against a real
  worker process (the fault worker, ``tests/workers/fault_worker.py``), then
  writes frames by hand and reads the worker's replies. These tests cover all
  four host/worker backend pairings.
- ``tests/workers/bad_input_raw_worker.py`` plays the worker: the real host opens
  it (with `RawFaults`), and it answers with frames it builds by hand. It runs
  no event loop, so these tests cover both host backends only.

Covered elsewhere and not repeated: C1 at the reader level and C15 at the
writer level (test_framing.py), C11 (test_startup_failures.py and
test_serializers.py: serializer mismatch seen by host and worker), the
send-side frame limit (test_framing.py ``test_encode_frame_*``, test_host.py
``test_oversized_messages``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import anyio
import psutil
import pytest
from anyio.abc import Process

from isolated_workers import (
    ConnectionClosed,
    ProtocolError,
    Retry,
    Timeouts,
    WorkerClient,
    WorkerCrashedError,
    WorkerState,
    WorkerTimeoutError,
    open_worker,
)
from isolated_workers._util import DEFAULT_MAX_FRAME_SIZE, json_dumps
from isolated_workers._wire._bootstrap import BOOTSTRAP_ENV, write_bootstrap
from isolated_workers._wire._framing import HEADER, FrameReader, Kind
from isolated_workers._wire._handshake import host_authenticate
from isolated_workers._wire._protocol import STREAM_WINDOW, error_from_payload
from isolated_workers._wire._streams import SocketStream
from tests._util import FAULT_WORKER, GUARD, HAVE_TRIO
from tests.workers.fault_messages import (
    Act,
    Carry,
    Faults,
    Flood,
    Flush,
    Frames,
    Grow,
    Nest,
    Pair,
    RawFaults,
    Say,
    Tx,
    Typed,
    Unsendable,
)
from tests.workers.messages import Ping

pytestmark = pytest.mark.anyio

RAW_WORKER = "tests.workers.bad_input_raw_worker"
#: The absolute deadlock guard of every test, in seconds.
MiB = 1024 * 1024
#: Deep enough to exhaust the recursion limit however it is decoded.
DEEP = 100_000
#: A `Node` chain that JSON decodes within the recursion limit but that takes
#: more frames than that to structure (3 per level, against JSON's 2). Python
#: 3.12 inlines comprehensions (2 frames per level) and counts C recursion
#: apart, so it needs a deeper chain.
RECURSIVE_DEPTH = 400 if sys.version_info < (3, 12) else 620

Frame = tuple[int, int, bytes | bytearray]


def body(name: str, payload: Any) -> bytes:
    """A message body as the JSON serializer writes it: [type, payload, meta]."""
    return json.dumps([name, payload, {}], ensure_ascii=False).encode()


def frame(kind: int, tx: int, data: bytes) -> bytes:
    return HEADER.pack(len(data), kind, tx) + data


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


# --- the raw host ---------------------------------------------------------------------


class RawHost:
    """A fake host holding an authenticated connection to a real worker."""

    def __init__(self, sock: socket.socket, process: Process) -> None:
        self.sock = sock
        self.stream = SocketStream(sock)
        self.reader = FrameReader(self.stream, 2**32 - 1)
        self.process = process
        self._frames: deque[Frame] = deque()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def send_bytewise(self, data: bytes) -> None:
        """Write ``data`` one byte per ``send()`` call."""
        for i in range(len(data)):
            while True:
                try:
                    if self.sock.send(data[i : i + 1]):
                        break
                except BlockingIOError:
                    await anyio.wait_writable(self.sock)

    async def request(self, tx: int, name: str, payload: Any) -> None:
        await self.send(frame(Kind.REQUEST, tx, body(name, payload)))

    async def receive(self) -> Frame:
        while not self._frames:
            self._frames.extend(await self.reader.receive())
        return self._frames.popleft()

    async def reply(self, tx: int) -> tuple[int, str, Any]:
        """The next frame, which must answer ``tx``: ``(kind, name, payload)``."""
        kind, got_tx, data = await self.receive()
        assert got_tx == tx
        name, payload, _ = json.loads(data)
        return kind, name, payload

    async def call(self, tx: int, name: str, payload: Any) -> Any:
        """Send a request that must succeed; return its result."""
        await self.request(tx, name, payload)
        kind, got_name, result = await self.reply(tx)
        assert (kind, got_name) == (Kind.RESULT, name), result
        return result

    async def refused(self, tx: int, name: str, payload: Any) -> str:
        """Send a request the worker must refuse as a protocol error; return the
        message the host would raise as `ProtocolError`."""
        await self.request(tx, name, payload)
        return await self.refusal(tx)

    async def refusal(self, tx: int) -> str:
        kind, _, payload = await self.reply(tx)
        assert kind == Kind.ERROR, payload
        error = error_from_payload(payload, "?")
        assert type(error) is ProtocolError, payload
        return str(error)

    async def assert_serving(self, tx: int) -> None:
        assert await self.call(tx, "Say", {"text": f"still here {tx}"}) == (
            f"still here {tx}"
        )

    async def hang_up(self) -> int:
        """Close our side; return the worker's exit code."""
        await self.stream.send_eof()
        return await self.process.wait()

    async def closed_by_worker(self) -> int:
        """Wait for the worker to close the connection; return its exit code."""
        while True:
            try:
                await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
        return await self.process.wait()

    async def stderr(self) -> str:
        """Everything the worker wrote to stderr (call once it has exited)."""
        assert self.process.stderr is not None
        data = b""
        async for chunk in self.process.stderr:
            data += chunk
        return data.decode(errors="replace")


@asynccontextmanager
async def raw_host(
    worker_backend: str, startup_data: Any = None
) -> AsyncGenerator[RawHost]:
    """Start the fault worker as the library's host would and authenticate it.

    Yields once the worker has answered READY; on exit closes everything and
    reaps the worker (killing it if it still runs).
    """
    directory = tempfile.mkdtemp(prefix="iwt-raw-host-", dir="/tmp")
    path = os.path.join(directory, "s")
    secret = os.urandom(32)
    hello = json_dumps(
        {
            "serializer": "json",
            "messages": Faults.fingerprint,
            "backend": worker_backend,
            "startup_data": startup_data,
        }
    )
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    read_fd, write_fd = os.pipe()
    process: Process | None = None
    try:
        listener.bind(path)
        listener.listen(1)
        listener.setblocking(False)
        write_bootstrap(
            write_fd,
            {
                "socket": path,
                "secret": secret.hex(),
                "connect_timeout": 10,
                "hello_size": len(hello),
            },
        )
        process = await anyio.open_process(
            [sys.executable, "-m", FAULT_WORKER],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, BOOTSTRAP_ENV: str(read_fd)},
            pass_fds=[read_fd],
            start_new_session=True,
        )
        os.close(read_fd)
        read_fd = -1
        await anyio.wait_readable(listener)
        conn, _ = listener.accept()
        host = RawHost(conn, process)
        async with host.stream:
            await host_authenticate(host.stream, secret)
            await host.send(frame(Kind.HELLO, 0, hello))
            kind, _, ready = await host.receive()
            assert kind == Kind.READY
            assert json.loads(ready) == {"ok": True}
            yield host
    finally:
        with anyio.CancelScope(shield=True):
            if process is not None:
                if process.returncode is None:
                    process.kill()
                await process.aclose()
        listener.close()
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)


# --- the raw worker, and real ones ----------------------------------------------------


def raw_worker(**options: Any) -> AbstractAsyncContextManager[WorkerClient]:
    """`open_worker` on the fake worker that answers with hand-made frames."""
    return open_worker(RAW_WORKER, messages=RawFaults, **options)


def real_worker(
    worker_backend: str, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    return open_worker(FAULT_WORKER, messages=Faults, backend=worker_backend, **options)


async def assert_raw_serving(client: WorkerClient, pid: int) -> None:
    """The fake worker ``pid`` still answers on the same connection."""
    assert client.state is WorkerState.READY
    assert client.pid == pid
    assert await client.send(Act("echo", "fine")) == "fine"


async def reaped(pid: int) -> None:
    """Poll until the process ``pid`` is gone, zombie included (the caller's
    `fail_after` bounds it)."""
    while psutil.pid_exists(pid):
        await anyio.sleep(0.01)


async def received_frames(client: WorkerClient, count: int) -> None:
    """Poll until the fake worker has received ``count`` frames besides the polls."""
    polls = 0
    while True:
        polls += 1
        if await client.send(Frames()) >= count + polls:
            return


# --- C1 fragmentation -----------------------------------------------------------------

EUROS = "€" * 100_000


async def test_c1_request_written_bytewise_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C1: a raw host writes a 300 kB UTF-8 request one byte per send(); the worker
    answers it exactly."""
    data = frame(Kind.REQUEST, 1, body("Say", {"text": EUROS}))
    assert len(data) > 3 * len(EUROS)
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send_bytewise(data)
            assert await host.reply(1) == (Kind.RESULT, "Say", EUROS)
            assert await host.hang_up() == 0


async def test_c1_result_written_bytewise_to_the_host(anyio_backend: object) -> None:
    """C1: a raw worker writes a 300 kB UTF-8 result one byte per send(); the host
    returns it exactly."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            assert await client.send(Act("bytewise", EUROS)) == EUROS
            await assert_raw_serving(client, client.pid)


# --- C2 oversized headers -------------------------------------------------------------

OVERSIZED = {
    "u32-max": HEADER.pack(2**32 - 1, Kind.REQUEST, 1),
    # A peer with 64-bit length prefixes: the u32 length reads as 2**31.
    "u64-2**63": struct.pack("!QQ", 2**63, 1)[: HEADER.size],
}


@pytest.mark.parametrize("action", ["oversized", "oversized_u64"])
async def test_c2_oversized_header_from_a_worker(
    anyio_backend: object, action: str
) -> None:
    """C2: a result header announcing 4 GiB (or 2 GiB) fails every pending request
    with ProtocolError, reading < 1 MiB; no retry; the worker is killed, reaped."""
    failures: list[ProtocolError] = []

    async def pending(message: Act) -> None:
        with pytest.raises(ProtocolError) as info:
            await client.send(message)
        failures.append(info.value)

    peak = -1
    with anyio.fail_after(GUARD):
        async with raw_worker(unexpected_shutdown=Retry(attempts=3)) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(pending, Act("hold"))
                await received_frames(client, 3)
                tracemalloc.start()
                try:
                    await pending(Act(action))
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
            assert len(failures) == 4
            assert all("exceeds max_frame_size" in str(e) for e in failures)
            assert 0 < peak < MiB
            assert client.state is WorkerState.CRASHED
            assert client.respawns == 0  # the peer broke the protocol: no retry
            with pytest.raises(WorkerCrashedError):
                await client.send(Act("echo"))
            await reaped(pid)


@pytest.mark.parametrize("header", list(OVERSIZED.values()), ids=list(OVERSIZED))
async def test_c2_oversized_header_from_a_host(
    anyio_backend: object, worker_backend: str, header: bytes
) -> None:
    """C2: a worker refuses a request header over its limit before the body: it
    hangs up and exits 0, saying why, with no traceback."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(header + bytes(64 * 1024))
            assert await host.closed_by_worker() == 0
            stderr = await host.stderr()
    size = HEADER.unpack(header)[0]
    assert (
        f"the host sent a bad frame (incoming frame of {size} bytes exceeds "
        f"max_frame_size ({DEFAULT_MAX_FRAME_SIZE}))"
    ) in stderr
    assert "Traceback" not in stderr


async def test_c2_frame_limit_boundary_on_the_host(anyio_backend: object) -> None:
    """C2: a result of exactly max_frame_size bytes is accepted, one more byte is
    refused with ProtocolError."""
    limit = 4096
    with anyio.fail_after(GUARD):
        async with raw_worker(max_frame_size=limit) as client:
            text = await client.send(Act("exact", size=limit))
            assert len(body("Act", text)) == limit
            with pytest.raises(ProtocolError, match=f"{limit + 1} bytes exceeds"):
                await client.send(Act("exact", size=limit + 1))
            assert client.state is WorkerState.CRASHED


async def test_c2_frame_limit_boundary_on_the_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C2: a request of exactly the worker's max_frame_size is served, one more
    byte makes the worker hang up."""
    limit = 4096
    overhead = len(body("Say", {"text": ""}))
    with anyio.fail_after(GUARD):
        async with raw_host(
            worker_backend, startup_data={"worker_max_frame_size": limit}
        ) as host:
            text = "x" * (limit - overhead)
            assert len(body("Say", {"text": text})) == limit
            assert await host.call(1, "Say", {"text": text}) == text
            await host.request(2, "Say", {"text": text + "x"})
            assert await host.closed_by_worker() == 0
            stderr = await host.stderr()
    assert f"incoming frame of {limit + 1} bytes exceeds" in stderr


# --- C3 truncated frames --------------------------------------------------------------


async def test_c3_truncated_frame_from_a_worker(anyio_backend: object) -> None:
    """C3: a worker that sends half a frame and hangs up fails every pending
    request with WorkerCrashedError(ConnectionClosed)."""
    errors: list[WorkerCrashedError] = []

    async def pending(message: Act) -> None:
        with pytest.raises(WorkerCrashedError) as info:
            await client.send(message)
        errors.append(info.value)

    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                tg.start_soon(pending, Act("hold"))
                await received_frames(client, 1)
                await pending(Act("truncated"))
            assert client.state is WorkerState.CRASHED
            await reaped(pid)
    assert len(errors) == 2
    assert all(isinstance(e.reason, ConnectionClosed) for e in errors)


async def test_c3_truncated_frame_from_a_host(
    anyio_backend: object, worker_backend: str
) -> None:
    """C3: a host that sends half a frame and hangs up: the worker exits 0, quietly."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(HEADER.pack(100, Kind.REQUEST, 1) + b"x" * 50)
            assert await host.hang_up() == 0
            assert await host.stderr() == ""


# --- C4 zero-length frames, garbage ---------------------------------------------------


async def test_c4_zero_length_frames_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C4: empty request, notification and cancel frames: the request is refused
    with a protocol error, the rest dropped; the worker serves on."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(frame(Kind.NOTIFICATION, 0, b""))
            await host.send(frame(Kind.CANCEL, 7, b""))
            await host.send(frame(Kind.REQUEST, 1, b""))
            assert "undecodable message" in await host.refusal(1)
            await host.assert_serving(2)
            assert await host.hang_up() == 0
            stderr = await host.stderr()
    assert "dropping a notification: undecodable message" in stderr
    assert "Traceback" not in stderr


async def test_c4_zero_length_result_to_the_host(anyio_backend: object) -> None:
    """C4: an empty result fails that request with ProtocolError; the connection
    lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            with pytest.raises(ProtocolError, match="undecodable message"):
                await client.send(Act("empty"))
            await assert_raw_serving(client, client.pid)


async def test_c4_garbage_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C4: 4096 random bytes after the handshake: the worker stops cleanly (exit
    0, no traceback), without hanging."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(os.urandom(4096))
            await host.stream.send_eof()
            assert await host.closed_by_worker() == 0
            assert "Traceback" not in await host.stderr()


async def test_c4_garbage_to_the_host(anyio_backend: object) -> None:
    """C4: 4096 random bytes from a worker: the pending request fails (ProtocolError
    for an oversized header, else WorkerCrashedError at EOF); no hang."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            pid = client.pid
            with pytest.raises((ProtocolError, WorkerCrashedError)):
                await client.send(Act("garbage"))
            assert client.state is WorkerState.CRASHED
            await reaped(pid)


# --- C5 undecodable bodies ------------------------------------------------------------


async def test_c5_invalid_json_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C5: a well-framed request that is not JSON (or not [type, payload, meta]) is
    refused for its tx; a notification is dropped and logged; the worker serves."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(frame(Kind.REQUEST, 1, b'["Say", {"text": '))
            assert "undecodable message (JSONDecodeError" in await host.refusal(1)
            await host.send(frame(Kind.REQUEST, 2, b'{"type": "Say"}'))
            assert "malformed message" in await host.refusal(2)
            await host.send(frame(Kind.NOTIFICATION, 0, b"not json"))
            await host.assert_serving(3)
            assert await host.hang_up() == 0
            stderr = await host.stderr()
    assert "dropping a notification: undecodable message" in stderr


async def test_c5_invalid_json_to_the_host(anyio_backend: object) -> None:
    """C5: a result that is not JSON fails that request with ProtocolError; the
    connection lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            with pytest.raises(ProtocolError, match="undecodable message"):
                await client.send(Act("invalid_json"))
            await assert_raw_serving(client, client.pid)


# --- C6 duplicate tx ids --------------------------------------------------------------


async def test_c6_duplicate_tx_is_refused(
    anyio_backend: object, worker_backend: str
) -> None:
    """C6: a second request with the tx of one still running is refused with
    ProtocolError("duplicate tx"); the first completes."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.request(7, "Hold", {"value": 1, "key": "k"})
            assert await host.refused(7, "Hold", {"key": "k"}) == "duplicate tx 7"
            await host.send(frame(Kind.NOTIFICATION, 0, body("Release", {"key": "k"})))
            assert await host.reply(7) == (Kind.RESULT, "Hold", 1)
            await host.assert_serving(7)  # a finished tx may be used again
            assert await host.hang_up() == 0


# asyncio's debug mode makes 10 000 tasks take seconds; the tx logic is the same.
@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {"debug": False}), id="asyncio"),
        pytest.param(
            "trio",
            id="trio",
            marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed"),
        ),
    ],
)
async def test_c6_concurrent_sends_get_unique_tx_ids(anyio_backend: object) -> None:
    """C6: 10 000 concurrent sends carry 10 000 distinct tx ids on the wire."""
    ids: list[int] = []

    async def send_one() -> None:
        ids.append(await client.send(Tx()))

    with anyio.fail_after(GUARD):
        async with raw_worker() as client, anyio.create_task_group() as tg:
            for _ in range(10_000):
                tg.start_soon(send_one)
    assert len(set(ids)) == len(ids) == 10_000


# --- C7 late and unknown replies ------------------------------------------------------


async def test_c7_late_and_stray_replies_are_dropped(anyio_backend: object) -> None:
    """C7: A times out (0.1 s) and its reply comes just before B's: B gets its own
    result, A's is dropped and counted; replies to unknown or answered txs too;
    tx ids are never reused on the connection."""
    timeouts = Timeouts(per_message={Act: 0.1})
    with anyio.fail_after(GUARD):
        async with raw_worker(timeouts=timeouts) as client:
            pid = client.pid
            with pytest.raises(WorkerTimeoutError):
                await client.send(Act("hold"))
            report = json.loads(await client.send(Flush()))
            assert client.late_replies == 1
            (late_tx,) = report["held"]
            assert report["cancelled"] == [late_tx]  # the host withdrew A
            assert report["tx"] > late_tx

            assert await client.send(Act("unknown_tx", "mine")) == "mine"
            assert client.late_replies == 2
            assert await client.send(Act("twice", "first")) == "first"
            first = await client.send(Tx())  # the second answer came before this
            assert client.late_replies == 3
            ids = [late_tx, report["tx"], first]
            ids += [await client.send(Tx()) for _ in range(5)]
            assert ids == sorted(set(ids))  # increasing: never reused
            await assert_raw_serving(client, pid)


async def test_c17_a_stream_past_its_window_fails_and_the_worker_serves_on(
    anyio_backend: object,
) -> None:
    """C17 (flow control; beyond the specification's list): a worker that
    sends a stream's items without waiting for credit gets no more of the
    host's memory than the window. The stream yields the items the window
    allowed, then fails with ProtocolError; the worker is told to stop; the
    rest counts as late; the connection serves on."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            pid = client.pid
            async with client.stream(Flood(STREAM_WINDOW + 5)) as items:
                for expected in range(STREAM_WINDOW):
                    assert await anext(items) == expected
                with pytest.raises(ProtocolError, match="past its window"):
                    await anext(items)
            await assert_raw_serving(client, pid)
            assert (
                client.late_replies == 4 + 1
            )  # the items after the one refused, the end
            report = json.loads(await client.send(Flush()))
            assert len(report["cancelled"]) == 1  # the host withdrew the stream


# --- C8 unknown message types ---------------------------------------------------------


async def test_c8_unknown_message_types_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C8: requests of unknown type are refused with ProtocolError("unknown ...
    message type"); an unknown notification is logged and dropped; the worker
    serves on."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            message = await host.refused(1, "NoSuchMessage", {})
            assert message == "unknown request message type 'NoSuchMessage'"
            message = await host.refused(2, "Release", {"key": "k"})
            assert message == "unknown request message type 'Release'"
            await host.send(frame(Kind.NOTIFICATION, 0, body("Say", {"text": "x"})))
            await host.assert_serving(5)
            assert await host.hang_up() == 0
            stderr = await host.stderr()
    assert "dropping a notification: unknown notification message type 'Say'" in (
        stderr
    )


@pytest.mark.parametrize("kind", [99, Kind.RESULT, Kind.HELLO])
async def test_c8_a_frame_no_worker_receives_ends_the_connection(
    anyio_backend: object, worker_backend: str, kind: int
) -> None:
    """C8 (API.md 8): a frame of a kind the protocol does not allow at this point
    (unknown, a reply, a handshake frame after the handshake) means the stream
    can no longer be trusted: the worker says why, hangs up and exits."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.assert_serving(1)
            await host.send(frame(kind, 2, body("Say", "x")))
            assert await host.closed_by_worker() == 0
            stderr = await host.stderr()
    assert (
        f"stopping: the host sent a bad frame (a frame of kind {kind:d}, "
        "which a worker never receives)"
    ) in stderr


@pytest.mark.parametrize(
    ("action", "kind"), [("unknown_kind", 99), ("request_kind", 1)]
)
async def test_c8_a_frame_no_host_receives_ends_the_connection(
    anyio_backend: object, action: str, kind: int
) -> None:
    """C8 (API.md 8): a frame of unknown kind, or a request, from a worker is a
    protocol violation: every pending call fails with ProtocolError at once
    (never retried), and the worker is killed and reaped."""
    errors: list[BaseException] = []

    async def call(message: Act) -> None:
        try:
            await client.send(message)
        except ProtocolError as exc:
            errors.append(exc)

    with anyio.fail_after(GUARD):
        async with (
            raw_worker(unexpected_shutdown=Retry(attempts=3)) as client,
            anyio.create_task_group() as tg,
        ):
            pid = client.pid
            tg.start_soon(call, Act("hold", "held"))
            await received_frames(client, 1)
            await call(Act(action, "after"))
            assert client.state is WorkerState.CRASHED
        await reaped(pid)
    assert len(errors) == 2
    assert all(
        str(exc)
        == f"the worker sent a frame of kind {kind}, which a host never receives"
        for exc in errors
    )


# --- C9 non-UTF-8 ---------------------------------------------------------------------


async def test_c9_non_utf8_request_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C9: a JSON request holding bytes that are not UTF-8 is refused with a
    protocol error; the worker serves on."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(frame(Kind.REQUEST, 1, b'["Say",{"text":"\xff\xfe"},{}]'))
            assert "undecodable message (UnicodeDecodeError" in await host.refusal(1)
            await host.assert_serving(2)
            assert await host.hang_up() == 0


async def test_c9_non_utf8_result_to_the_host(anyio_backend: object) -> None:
    """C9: a result holding bytes that are not UTF-8 fails that request with
    ProtocolError; the connection lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            with pytest.raises(ProtocolError, match="UnicodeDecodeError"):
                await client.send(Act("non_utf8"))
            await assert_raw_serving(client, client.pid)


# --- C10 deep nesting -----------------------------------------------------------------


async def test_c10_deep_request_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C10: a request nested 100 000 deep (in its payload, or as a whole) is
    refused with a protocol error; the worker serves on."""
    deep = b"[" * DEEP + b"]" * DEEP
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            await host.send(
                frame(Kind.REQUEST, 1, b'["Carry",{"payload":' + deep + b"},{}]")
            )
            assert "nested too deeply" in await host.refusal(1)
            await host.send(frame(Kind.REQUEST, 2, deep))
            assert "nested too deeply" in await host.refusal(2)
            await host.assert_serving(3)
            assert await host.hang_up() == 0


async def test_c10_deep_result_to_the_host(anyio_backend: object) -> None:
    """C10: a result nested 100 000 deep fails that request with ProtocolError; the
    connection lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            with pytest.raises(ProtocolError, match="nested too deeply"):
                await client.send(Act("deep"))
            await assert_raw_serving(client, client.pid)


async def test_c10_deep_values_are_refused_by_the_sender(
    anyio_backend: object, worker_backend: str
) -> None:
    """C10: the host's send() of a 100 000-deep payload raises ProtocolError, and so
    does a 100 000-deep result in the worker; both sides serve on."""
    with anyio.fail_after(GUARD):
        async with real_worker(worker_backend) as client:
            pid = client.pid
            with pytest.raises(ProtocolError, match="cannot serialize 'Carry'"):
                await client.send(Carry(deep_list(DEEP)))
            with pytest.raises(ProtocolError, match="result of 'Nest'"):
                await client.send(Nest(DEEP))
            assert await client.send(Carry([1, 2])) == 2
            assert await client.send(Ping()) == pid


def node_chain(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"children": []}
    for _ in range(depth - 1):
        node = {"children": [node]}
    return node


async def test_c10_deep_recursive_type_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C10: a `Node` chain that JSON decodes but that is too deep to structure is
    refused with a protocol error; the worker serves on."""
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            root = node_chain(RECURSIVE_DEPTH)
            message = await host.refused(1, "Tree", {"root": root})
            assert message == "'Tree' message nested too deeply"
            await host.assert_serving(2)
            assert await host.hang_up() == 0


async def test_c10_deep_recursive_result_to_the_host(anyio_backend: object) -> None:
    """C10: a `Node` result too deep to structure fails that request with
    ProtocolError; the connection lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            with pytest.raises(
                ProtocolError, match="the result of 'Grow' is nested too deeply"
            ):
                await client.send(Grow(RECURSIVE_DEPTH))
            await assert_raw_serving(client, client.pid)


# --- C12 schema violations ------------------------------------------------------------


async def test_c12_schema_violations_from_the_host(
    anyio_backend: object, worker_backend: str
) -> None:
    """C12: request fields of the wrong type, results not matching the declared
    type, or with extra fields: that request fails naming the field; the
    connection lives."""
    with anyio.fail_after(GUARD):
        async with real_worker(worker_backend) as client:
            pid = client.pid
            with pytest.raises(
                ProtocolError,
                match=r"invalid 'Typed' message: x: expected int, got str",
            ):
                await client.send(Typed(cast(Any, "1"), "a"))
            with pytest.raises(
                ProtocolError,
                match=r"does not match its declared type: x: expected int, got str",
            ):
                await client.send(Typed(1, "a", mode="wrong"))
            with pytest.raises(
                ProtocolError, match=r"unexpected field\(s\) \['z'\] for Pair"
            ):
                await client.send(Typed(1, "a", mode="extra"))
            assert await client.send(Typed(1, "a")) == Pair(1, "a")
            assert await client.send(Ping()) == pid


async def test_c12_schema_violations_to_a_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """C12: requests with extra, missing or mistyped fields, or a payload of the
    wrong shape, are refused naming the field; the worker serves on."""
    refusals = {
        "unexpected field(s) ['z'] for Typed": {"x": 1, "y": "a", "z": 0},
        "missing field 'y' of Typed": {"x": 1},
        "x: expected int, got bool": {"x": True, "y": "a"},
        "y: expected str, got NoneType": {"x": 1, "y": None},
        "Typed: expected a Typed object, got list": [1, "a"],
    }
    with anyio.fail_after(GUARD):
        async with raw_host(worker_backend) as host:
            for tx, (expected, payload) in enumerate(refusals.items(), 1):
                message = await host.refused(tx, "Typed", payload)
                assert message == f"invalid 'Typed' message: {expected}"
            assert await host.call(9, "Typed", {"x": 1, "y": "a"}) == {
                "x": 1,
                "y": "a",
            }
            assert await host.hang_up() == 0


# --- C13 unserialisable payloads and results ------------------------------------------


@pytest.mark.parametrize(
    "text", [object(), {1, 2}, 1j], ids=["object", "set", "complex"]
)
async def test_c13_unserialisable_payload_is_not_written(
    anyio_backend: object, text: object
) -> None:
    """C13: send() of a payload the serializer cannot carry raises ProtocolError
    and writes nothing; the connection lives."""
    with anyio.fail_after(GUARD):
        async with raw_worker() as client:
            before = await client.send(Frames())
            with pytest.raises(ProtocolError, match="cannot serialize 'Act'"):
                await client.send(Act("echo", cast(Any, text)))
            assert await client.send(Frames()) == before + 1  # nothing in between
            await assert_raw_serving(client, client.pid)


async def test_c13_unserialisable_result(
    anyio_backend: object, worker_backend: str
) -> None:
    """C13: a result the worker cannot serialize fails that request with
    ProtocolError; the worker lives."""
    with anyio.fail_after(GUARD):
        async with real_worker(worker_backend) as client:
            pid = client.pid
            with pytest.raises(
                ProtocolError,
                match="result of 'Unsendable': cannot serialize 'Unsendable': "
                "Object of type set is not JSON serializable",
            ):
                await client.send(Unsendable())
            assert await client.send(Ping()) == pid


# --- C15 concurrent writers -----------------------------------------------------------


async def test_c15_concurrent_large_sends(
    anyio_backend: object, worker_backend: str
) -> None:
    """C15: 100 tasks each send 1 MiB at once, and the worker answers them at once:
    no frame is interleaved, every result is the request's own."""
    results: dict[int, bool] = {}

    def text(i: int) -> str:
        return f"{i:03d}" + chr(ord("a") + i % 26) * (MiB - 3)

    async def send_one(i: int) -> None:
        results[i] = await client.send(Say(text(i))) == text(i)

    with anyio.fail_after(GUARD):
        async with real_worker(worker_backend) as client:
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(send_one, i)
            assert await client.send(Say("after")) == "after"
    assert results == dict.fromkeys(range(100), True)
