"""Security of the transport: modes, authentication, secret, env and fd hygiene.

Reliability spec, group (d): D1 (modes), D2 (another uid, as root only), D4/D5
(peers without the secret), D6 (replay), D7 (impostor worker), D8 (secret
hygiene), D11 (environment) and D12 (inherited fds). D3 is in
``test_startup_failures.py``.

The mode and rogue-peer tests hold a worker back before it connects
(``tests/workers/sec_blocked.py``), so the host is STARTING with its socket
directory in place; the test inspects or attacks it, then releases the worker.
Those tests point `tempfile.tempdir` at a private base directory so that the
socket directory found is this test's own, even with other suites running.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import hmac
import os
import pickle
import re
import shutil
import socket
import stat
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import isolated_workers._host._open as host_module
import isolated_workers._host._transport as transport_module
import isolated_workers._wire._handshake as handshake
from isolated_workers import (
    JsonSerializer,
    PickleSerializer,
    Timeouts,
    WorkerClient,
    WorkerStartupError,
    open_worker,
)
from isolated_workers._wire._bootstrap import (
    ALLOCATOR_ENV,
    BOOTSTRAP_ENV,
    write_bootstrap,
)
from isolated_workers._wire._framing import HEADER, Kind, encode_frame
from isolated_workers._wire._handshake import (
    HOST_GREETING_SIZE,
    MAGIC,
    WORKER_REPLY_SIZE,
    AuthenticationError,
    host_authenticate,
    worker_authenticate,
)
from isolated_workers._wire._protocol import encode_body
from tests._util import Beacon, RecordingStream, socket_dirs
from tests.workers.messages import (
    Echo,
    Echoed,
    Guarded,
    Look,
    Messages,
    Recall,
    View,
)

pytestmark = pytest.mark.anyio

#: A string that travels only as startup data: it must reach no one else.
MARKER = "startup-marker-6f1c0d2e"
#: Anything that looks like a hex-encoded 32-byte secret.
HEX64 = re.compile(rb"[0-9a-fA-F]{64}")
DIR_NAME = re.compile(r"isolated-workers-[a-z0-9_]{8}")


# ------------------------------------------------------------------ helpers


@pytest.fixture
def sock_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private, short `tempfile.tempdir` for this test's socket directories.

    It takes ``tmp_path`` so that pytest's own temporary directories are made
    before `tempfile.tempdir` changes.
    """
    base = Path(tempfile.mkdtemp(prefix="iwt-sec-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    try:
        yield base
        deadline = time.monotonic() + 5
        while socket_dirs(base) and time.monotonic() < deadline:
            time.sleep(0.01)  # teardown: poll an OS fact, bounded
        assert socket_dirs(base) == [], "socket directories left behind"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def host_peers(monkeypatch: pytest.MonkeyPatch) -> list[RecordingStream]:
    """Record what the host reads from and writes to each peer before it is trusted."""
    peers: list[RecordingStream] = []

    async def recording_authenticate(
        stream: anyio.abc.ByteStream, secret: bytes
    ) -> None:
        recorder = RecordingStream(stream)
        peers.append(recorder)
        try:
            await host_authenticate(recorder, secret)
        except BaseException as exc:
            recorder.outcome = type(exc).__name__
            raise
        recorder.outcome = "ok"

    monkeypatch.setattr(transport_module, "host_authenticate", recording_authenticate)
    return peers


class Blocked:
    """A `sec_blocked` worker being opened while the test looks at its host."""

    def __init__(self, release: Path) -> None:
        self.release_file = release
        self.directory = Path()

    @property
    def socket_path(self) -> Path:
        return self.directory / "s"

    def release(self) -> None:
        self.release_file.write_text("go")


@asynccontextmanager
async def blocked_worker(
    base: Path,
    tmp_path: Path,
    during_startup: Callable[[Blocked], Awaitable[None]],
    **options: Any,
) -> AsyncIterator[WorkerClient]:
    """Open a held-back echo worker; run ``during_startup`` while it is STARTING.

    ``during_startup`` must release the worker (`Blocked.release`). It runs once
    the worker process runs and the host's socket directory exists.
    """
    blocked = Blocked(tmp_path / "release")
    started = Beacon(tmp_path / "release.started")
    started.path.unlink(missing_ok=True)  # from an earlier worker of the test

    async def probe() -> None:
        await started.wait_for_text()  # the host listens before it spawns
        (directory,) = socket_dirs(base)
        blocked.directory = directory
        try:
            await during_startup(blocked)
        finally:
            blocked.release()

    options.setdefault("timeouts", Timeouts(startup=20))
    options.setdefault("startup_data", {"marker": MARKER})
    options.setdefault("messages", Messages)
    module = options.pop("module", "tests.workers.echo")
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        async with open_worker(
            "tests.workers.sec_blocked",
            args=[str(blocked.release_file), module],
            **options,
        ) as client:
            yield client


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the peer sends until it closes (EOF or reset)."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


# ------------------------------------------------------------------- D1 modes


@pytest.mark.parametrize("umask", [None, 0], ids=["default-umask", "umask-0"])
async def test_socket_dir_and_socket_modes(
    umask: int | None, sock_base: Path, tmp_path: Path, worker_backend: str
) -> None:
    """While STARTING: our 0700 dir and a 0600 socket, whatever the umask (D1)."""
    seen: dict[str, Any] = {}

    async def inspect(blocked: Blocked) -> None:
        seen["dir"] = os.lstat(blocked.directory)
        seen["socket"] = os.lstat(blocked.socket_path)
        seen["entries"] = sorted(os.listdir(blocked.directory))
        blocked.release()

    old_umask = os.umask(umask) if umask is not None else None
    try:
        with anyio.fail_after(30):
            async with blocked_worker(
                sock_base, tmp_path, inspect, backend=worker_backend
            ) as worker:
                assert socket_dirs(sock_base) == []  # READY: the dir is gone
                assert await worker.send(Echo(1)) == Echoed(1)
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    dir_stat, sock_stat = seen["dir"], seen["socket"]
    assert seen["entries"] == ["s"]
    assert stat.S_ISDIR(dir_stat.st_mode)
    assert stat.S_IMODE(dir_stat.st_mode) == 0o700
    assert dir_stat.st_uid == os.geteuid()
    assert stat.S_ISSOCK(sock_stat.st_mode)
    assert stat.S_IMODE(sock_stat.st_mode) == 0o600
    assert sock_stat.st_uid == os.geteuid()
    assert socket_dirs(sock_base) == []  # and after close


async def test_socket_dir_name_is_random(sock_base: Path, tmp_path: Path) -> None:
    """The socket directory is a fresh random name in the temp dir (D1)."""
    names: list[str] = []

    async def inspect(blocked: Blocked) -> None:
        names.append(blocked.directory.name)
        assert blocked.directory.parent == sock_base
        blocked.release()

    with anyio.fail_after(30):
        for attempt in range(2):
            (tmp_path / "release").unlink(missing_ok=True)
            async with blocked_worker(sock_base, tmp_path, inspect) as worker:
                assert await worker.send(Echo(attempt)) == Echoed(attempt)
    assert all(DIR_NAME.fullmatch(name) for name in names), names
    assert names[0] != names[1]


# ------------------------------------------------------------ D2 other user

#: A user that is not us, and an interpreter it may run (ours may sit under /root).
OTHER_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
CONNECT_AS_OTHER = """
import os, socket, sys
path = sys.argv[1]
print(os.access(os.path.dirname(os.path.dirname(path)), os.X_OK))
with socket.socket(socket.AF_UNIX) as sock:
    try:
        sock.connect(path)
    except OSError as exc:
        print(type(exc).__name__)
    else:
        print("connected")
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root, to run a helper as another user, and a system python",
)
async def test_other_user_cannot_connect(sock_base: Path, tmp_path: Path) -> None:
    """A process of another uid, without our groups, gets PermissionError from
    connect() though it can reach the socket directory's parent (D2)."""
    outcome: list[str] = []

    async def connect_as_other(blocked: Blocked) -> None:
        result = await anyio.run_process(
            [SYSTEM_PYTHON, "-I", "-c", CONNECT_AS_OTHER, str(blocked.socket_path)],
            user=OTHER_UID,
            group=OTHER_UID,
            extra_groups=[],
            cwd="/",
        )
        outcome.extend(result.stdout.decode().split())
        blocked.release()

    sock_base.chmod(0o755)  # so that only the library's own modes stand in the way
    with anyio.fail_after(30):
        async with blocked_worker(sock_base, tmp_path, connect_as_other) as worker:
            assert await worker.send(Echo(2)) == Echoed(2)
    assert outcome == ["True", "PermissionError"]


# ------------------------------------------------------ D4/D5 peers without secret


def _notification_frames() -> bytes:
    body = encode_body(JsonSerializer(), "Remember", {"value": 666})
    return encode_frame(Kind.NOTIFICATION, 0, body, 2**32 - 1) * 4


ROGUE_PAYLOADS = {
    "garbage": os.urandom(4096),
    "huge-header": (HEADER.pack(2**32 - 1, Kind.READY, 2**63) + b"\xff" * 64)[:64],
    "huge-u64-header": (struct.pack("!Q", 2**63) * 8),
    "wrong-reply": os.urandom(WORKER_REPLY_SIZE),
    "well-formed-frames": _notification_frames(),
}


@pytest.mark.parametrize("payload", list(ROGUE_PAYLOADS), ids=list(ROGUE_PAYLOADS))
async def test_rogue_peer_is_refused(
    payload: str,
    sock_base: Path,
    tmp_path: Path,
    host_peers: list[RecordingStream],
) -> None:
    """A peer without the secret is closed after ≤ 64 bytes; the worker starts (D4)."""
    rogue_got: list[bytes] = []

    async def attack(blocked: Blocked) -> None:
        async with await anyio.connect_unix(blocked.socket_path) as rogue:
            await rogue.send(ROGUE_PAYLOADS[payload])
            with anyio.fail_after(5):  # closed by the host, before the worker comes
                rogue_got.append(await read_until_closed(rogue))
        blocked.release()

    with anyio.fail_after(30):
        async with blocked_worker(sock_base, tmp_path, attack) as worker:
            assert await worker.send(Echo(3)) == Echoed(3)
            assert await worker.send(Recall()) == []  # no rogue frame was handled

    (greeting,) = rogue_got
    assert len(greeting) == HOST_GREETING_SIZE == 36
    assert greeting.startswith(MAGIC)
    assert MARKER.encode() not in greeting
    rogue, real = host_peers
    assert rogue.outcome == "AuthenticationError"
    assert len(rogue.received) <= WORKER_REPLY_SIZE == 64
    assert rogue.reads == [WORKER_REPLY_SIZE]  # one pre-auth read, bounded
    assert bytes(rogue.sent) == greeting  # the host told the rogue nothing more
    assert real.outcome == "ok"
    assert len(real.received) == WORKER_REPLY_SIZE


class _Canary:
    """Unpickling this creates the file it names."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


async def test_pickle_from_a_rogue_is_never_unpickled(
    sock_base: Path, tmp_path: Path, host_peers: list[RecordingStream]
) -> None:
    """D4 with PickleSerializer: a rogue's pickle, raw and in a well-formed
    frame, runs nothing; the real worker starts and serves."""
    canary = tmp_path / "canary"
    evil = pickle.dumps(_Canary(canary))
    frame = encode_frame(Kind.NOTIFICATION, 0, evil, 2**32 - 1)

    async def attack(blocked: Blocked) -> None:
        for payload in (evil, frame, os.urandom(64) + frame):
            async with await anyio.connect_unix(blocked.socket_path) as rogue:
                await rogue.send(payload)
                with anyio.fail_after(5):
                    await read_until_closed(rogue)
        blocked.release()

    with anyio.fail_after(30):
        async with blocked_worker(
            sock_base,
            tmp_path,
            attack,
            module="tests.workers.ext_worker",
            startup_data={"serializer": "pickle"},
            serializer=PickleSerializer(),
        ) as worker:
            assert await worker.send(Guarded(2)) == 2
    assert [peer.outcome for peer in host_peers] == ["AuthenticationError"] * 3 + ["ok"]
    assert not canary.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="silent"),
        pytest.param(HEADER.pack(2**32 - 1, 1, 1), id="partial"),
    ],
)
async def test_stalling_rogues_do_not_block_the_worker(
    payload: bytes,
    sock_base: Path,
    tmp_path: Path,
    host_peers: list[RecordingStream],
    worker_backend: str,
) -> None:
    """Ten rogues stalling (silent or half a reply) cannot hold up startup (D4)."""
    rogues: list[anyio.abc.SocketStream] = []

    async def attack(blocked: Blocked) -> None:
        for _ in range(10):  # more than the listen backlog
            rogue = await anyio.connect_unix(blocked.socket_path)
            rogues.append(rogue)
            if payload:
                await rogue.send(payload)
        blocked.release()

    try:
        with anyio.fail_after(30):
            async with blocked_worker(
                sock_base, tmp_path, attack, backend=worker_backend
            ) as worker:
                assert await worker.send(Echo(4)) == Echoed(4)
                with anyio.fail_after(5):  # the host dropped every rogue
                    received = [await read_until_closed(rogue) for rogue in rogues]
    finally:
        for rogue in rogues:
            await rogue.aclose()
    assert len(received) == 10
    for data in received:
        assert len(data) == HOST_GREETING_SIZE
        assert data.startswith(MAGIC)
    assert len({data[len(MAGIC) :] for data in received}) == 10  # fresh nonces
    assert [peer.outcome for peer in host_peers].count("ok") == 1
    assert all(len(peer.received) <= WORKER_REPLY_SIZE for peer in host_peers)


async def test_rogue_with_the_worker_bootstrap_format_is_refused(
    sock_base: Path, tmp_path: Path, host_peers: list[RecordingStream]
) -> None:
    """A rogue running the worker's handshake with a guessed secret fails (D5)."""
    errors: list[BaseException] = []

    async def attack(blocked: Blocked) -> None:
        def rogue_handshake() -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(str(blocked.socket_path))
                try:
                    worker_authenticate(sock, os.urandom(32))
                except (AuthenticationError, OSError) as exc:
                    errors.append(exc)

        await anyio.to_thread.run_sync(rogue_handshake)
        blocked.release()

    with anyio.fail_after(30):
        async with blocked_worker(sock_base, tmp_path, attack) as worker:
            assert await worker.send(Echo(5)) == Echoed(5)
    (error,) = errors
    # The host hangs up instead of proving itself: the rogue learns nothing.
    assert isinstance(error, ConnectionError)
    assert host_peers[0].outcome == "AuthenticationError"
    assert len(host_peers[0].sent) == HOST_GREETING_SIZE


def test_macs_are_compared_in_constant_time() -> None:
    """The handshake compares MACs with `hmac.compare_digest`, never ``==`` (D5)."""
    source = Path(handshake.__file__).read_text()
    tree = ast.parse(source)
    digests = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
    ]
    assert len(digests) >= 2  # host and worker side
    secret_words = re.compile(r"mac|proof|digest|secret|reply|hmac", re.IGNORECASE)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot | ast.In | ast.NotIn)
            for op in node.ops
        ):
            text = ast.get_source_segment(source, node) or ""
            assert not secret_words.search(text), f"non-constant-time compare: {text}"


# --------------------------------------------------- D6 handshake, unit level


def _mac(secret: bytes, *parts: bytes) -> bytes:
    """The MAC of the documented protocol, computed independently of the library."""
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


@asynccontextmanager
async def socket_pair() -> AsyncIterator[tuple[anyio.abc.SocketStream, socket.socket]]:
    """A connected pair: async stream (host end), blocking socket (worker end)."""
    host_sock, worker_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    worker_sock.settimeout(5)
    with worker_sock:
        host_sock.setblocking(False)
        try:
            stream = await anyio.abc.UNIXSocketStream.from_socket(host_sock)
        except BaseException:
            host_sock.close()
            raise
        async with stream:
            yield stream, worker_sock


@asynccontextmanager
async def stream_pair() -> AsyncIterator[
    tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]
]:
    """A connected pair of async streams."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    streams: list[anyio.abc.SocketStream] = []
    try:
        for sock in (a, b):
            sock.setblocking(False)
            streams.append(await anyio.abc.UNIXSocketStream.from_socket(sock))
    except BaseException:
        a.close()
        b.close()
        raise
    async with streams[0], streams[1]:
        yield streams[0], streams[1]


async def run_worker_side(sock: socket.socket, secret: bytes) -> BaseException | None:
    """`worker_authenticate` in a thread; its error, or `None` on success."""

    def run() -> BaseException | None:
        try:
            worker_authenticate(sock, secret)
        except (AuthenticationError, OSError) as exc:
            return exc
        return None

    return await anyio.to_thread.run_sync(run)


async def recorded_handshake(
    secret: bytes,
) -> tuple[RecordingStream, BaseException | None]:
    """A handshake between a host and a worker both holding ``secret``: the
    host's stream, recorded, and the worker side's error (`None` on success)."""
    async with socket_pair() as (stream, worker_sock):
        recorder = RecordingStream(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(host_authenticate, recorder, secret)
            worker_error = await run_worker_side(worker_sock, secret)
    return recorder, worker_error


async def test_handshake_succeeds_with_the_secret() -> None:
    """Control: host and worker sharing the secret both authenticate."""
    secret = os.urandom(32)
    with anyio.fail_after(10):
        recorder, worker_error = await recorded_handshake(secret)
    assert worker_error is None
    assert len(recorder.sent) == HOST_GREETING_SIZE + 32
    assert len(recorder.received) == WORKER_REPLY_SIZE


async def test_replayed_worker_reply_is_rejected() -> None:
    """A worker reply recorded in one handshake fails against a fresh challenge (D6)."""
    secret = os.urandom(32)
    with anyio.fail_after(10):
        first, worker_error = await recorded_handshake(secret)
        assert worker_error is None
        recorded_reply = bytes(first.received)
        assert len(recorded_reply) == WORKER_REPLY_SIZE

        async with stream_pair() as (host_end, attacker):
            second = RecordingStream(host_end)

            async def attack() -> None:
                greeting = await handshake.receive_exactly(attacker, HOST_GREETING_SIZE)
                assert greeting != bytes(first.sent[:HOST_GREETING_SIZE])  # fresh nonce
                await attacker.send(recorded_reply)

            async with anyio.create_task_group() as tg:
                tg.start_soon(attack)
                with pytest.raises(AuthenticationError):
                    await host_authenticate(second, secret)
    assert len(second.sent) == HOST_GREETING_SIZE  # no proof for the replayer


async def test_replayed_host_proof_is_rejected_by_worker() -> None:
    """A fake host replaying a recorded greeting and proof is refused (D6)."""
    secret = os.urandom(32)
    with anyio.fail_after(10):
        first, worker_error = await recorded_handshake(secret)
        assert worker_error is None
        greeting = bytes(first.sent[:HOST_GREETING_SIZE])
        proof = bytes(first.sent[HOST_GREETING_SIZE:])
        first_worker_nonce = bytes(first.received[32:])

        async with socket_pair() as (fake_host, worker_sock):
            replies: list[bytes] = []

            async def replay() -> None:
                await fake_host.send(greeting)
                replies.append(
                    await handshake.receive_exactly(fake_host, WORKER_REPLY_SIZE)
                )
                await fake_host.send(proof)

            async with anyio.create_task_group() as tg:
                tg.start_soon(replay)
                error = await run_worker_side(worker_sock, secret)
    assert isinstance(error, AuthenticationError)
    assert replies[0][32:] != first_worker_nonce


async def test_worker_with_wrong_secret_is_rejected_by_host() -> None:
    """A worker with another secret is refused; the host proves nothing (D5)."""
    with anyio.fail_after(10):
        async with socket_pair() as (stream, worker_sock):
            recorder = RecordingStream(stream)

            async def host_side() -> None:
                with pytest.raises(AuthenticationError):
                    await host_authenticate(recorder, os.urandom(32))
                await stream.aclose()  # as the library does

            async with anyio.create_task_group() as tg:
                tg.start_soon(host_side)
                error = await run_worker_side(worker_sock, os.urandom(32))
    assert isinstance(error, ConnectionError)
    assert len(recorder.sent) == HOST_GREETING_SIZE


@pytest.mark.parametrize("proof_kind", ["wrong-secret", "random", "reflected", "short"])
async def test_host_without_the_secret_is_rejected_by_worker(proof_kind: str) -> None:
    """A fake host whose proof is wrong, random, reflected or short is refused."""
    secret = os.urandom(32)
    other = os.urandom(32)
    with anyio.fail_after(10):
        async with socket_pair() as (fake_host, worker_sock):

            async def host_side() -> None:
                nonce = os.urandom(32)
                await fake_host.send(MAGIC + nonce)
                reply = await handshake.receive_exactly(fake_host, WORKER_REPLY_SIZE)
                worker_mac, worker_nonce = reply[:32], reply[32:]
                if proof_kind == "wrong-secret":
                    await fake_host.send(_mac(other, b"host", worker_nonce, nonce))
                elif proof_kind == "random":
                    await fake_host.send(os.urandom(32))
                elif proof_kind == "reflected":
                    await fake_host.send(worker_mac)
                else:
                    await fake_host.send(
                        _mac(secret, b"host", worker_nonce, nonce)[:16]
                    )
                    await fake_host.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(host_side)
                error = await run_worker_side(worker_sock, secret)
    if proof_kind == "short":
        assert isinstance(error, ConnectionError)
    else:
        assert isinstance(error, AuthenticationError)


async def test_worker_answers_only_a_real_greeting() -> None:
    """A peer without the protocol magic gets no MAC from the worker."""
    with anyio.fail_after(10):
        async with socket_pair() as (fake_host, worker_sock):
            got: list[bytes] = []

            async def host_side() -> None:
                await fake_host.send(b"HTTP" + os.urandom(32))
                got.append(await read_until_closed(fake_host))

            async with anyio.create_task_group() as tg:
                tg.start_soon(host_side)
                error = await run_worker_side(worker_sock, os.urandom(32))
                worker_sock.close()
    assert isinstance(error, AuthenticationError)
    assert got == [b""]


async def test_impostor_worker_random_reply_is_rejected() -> None:
    """An impostor answering the challenge with random bytes is refused (D7, unit)."""
    with anyio.fail_after(10):
        async with stream_pair() as (host_end, impostor):
            recorder = RecordingStream(host_end)

            async def impostor_side() -> None:
                await handshake.receive_exactly(impostor, HOST_GREETING_SIZE)
                await impostor.send(os.urandom(WORKER_REPLY_SIZE))

            async with anyio.create_task_group() as tg:
                tg.start_soon(impostor_side)
                with pytest.raises(AuthenticationError):
                    await host_authenticate(recorder, os.urandom(32))
    assert len(recorder.sent) == HOST_GREETING_SIZE


# ------------------------------------------------------ D7 impostor process


async def test_impostor_worker_process_gets_no_startup_data(
    tmp_path: Path, host_peers: list[RecordingStream]
) -> None:
    """A worker answering with noise fails startup and never sees HELLO (D7)."""
    received = tmp_path / "received"
    with anyio.fail_after(30):
        with pytest.raises(WorkerStartupError):
            async with open_worker(
                "tests.workers.sec_impostor",
                messages=Messages,
                args=[str(received)],
                startup_data={"marker": MARKER},
                timeouts=Timeouts(startup=1),
            ):
                pytest.fail("the impostor was accepted")
    data = received.read_bytes()
    assert MARKER.encode() not in data
    assert len(data) == HOST_GREETING_SIZE
    assert data.startswith(MAGIC)
    assert [peer.outcome for peer in host_peers] == ["AuthenticationError"]


# ---------------------------------------------- D8, D11, D12: the worker's view


async def introspect(client: WorkerClient) -> View:
    return await client.send(Look())


@pytest.fixture
def captured_secrets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hex secrets the host writes into bootstrap pipes."""
    secrets: list[str] = []
    original = write_bootstrap

    def recording_write(fd: int, info: dict[str, Any]) -> None:
        secrets.append(info["secret"])
        original(fd, info)

    monkeypatch.setattr(host_module, "write_bootstrap", recording_write)
    return secrets


async def test_secret_and_startup_data_stay_off_cmdline_and_environ(
    captured_secrets: list[str], worker_backend: str
) -> None:
    """Secret and startup data are in neither cmdline nor environ (D8)."""
    with anyio.fail_after(30):
        async with open_worker(
            "tests.workers.echo",
            messages=Messages,
            startup_data={"marker": MARKER},
            backend=worker_backend,
        ) as worker:
            seen = await introspect(worker)
            from_host = _read_proc(worker.pid)
    (secret,) = captured_secrets
    assert MARKER in seen.startup_data  # it did arrive, by the handshake
    views = {
        "cmdline": seen.cmdline,
        "/proc/self/environ": seen.proc_environ,
        "os.environ": repr(sorted(seen.environ.items())).encode(),
        "host's /proc/pid/cmdline": from_host["cmdline"],
        "host's /proc/pid/environ": from_host["environ"],
    }
    for where, blob in views.items():
        assert MARKER.encode() not in blob, where
        assert secret.encode() not in blob.lower(), where
        assert bytes.fromhex(secret) not in blob, where
    assert not HEX64.search(seen.cmdline)
    # The library adds one variable, holding a small fd number, besides the
    # allocator's settings (numbers too), and the worker removes them all from
    # os.environ once started.
    added = dict(
        set(_environ_entries(seen.proc_environ)) - set(_environ_entries(_own_environ()))
    )
    assert added.keys() - ALLOCATOR_ENV.keys() == {BOOTSTRAP_ENV}
    assert all(value.isdigit() for value in added.values())
    assert not added.keys() & seen.environ.keys()


def _read_proc(pid: int) -> dict[str, bytes]:
    """``/proc/<pid>/cmdline`` and ``environ``, as the host (same uid) sees them."""
    return {
        name: Path(f"/proc/{pid}/{name}").read_bytes()
        for name in ("cmdline", "environ")
    }


def _own_environ() -> bytes:
    return b"\0".join(f"{k}={v}".encode() for k, v in os.environ.items())


def _environ_entries(blob: bytes) -> list[tuple[str, str]]:
    entries = []
    for item in blob.split(b"\0"):
        if item:
            key, _, value = item.decode(errors="replace").partition("=")
            entries.append((key, value))
    return entries


#: Variables Python itself may add: PEP 538 sets LC_CTYPE when coercing the C locale.
PYTHON_ADDED = {"LC_CTYPE"}


async def test_env_allowlist(
    monkeypatch: pytest.MonkeyPatch, worker_backend: str
) -> None:
    """With ``inherit_env=False`` the worker sees only ``env`` (D11)."""
    monkeypatch.setenv("SECRET_TOKEN", "x")
    with anyio.fail_after(30):
        async with open_worker(
            "tests.workers.echo",
            messages=Messages,
            inherit_env=False,
            env={"PATH": os.environ["PATH"]},
            backend=worker_backend,
        ) as worker:
            seen = await introspect(worker)
    assert set(seen.environ) - PYTHON_ADDED == {"PATH"}
    assert seen.environ["PATH"] == os.environ["PATH"]
    if "LC_CTYPE" in seen.environ:  # only ever the locale coercion's value
        assert seen.environ["LC_CTYPE"].endswith(("UTF-8", "utf8"))
    assert {key for key, _ in _environ_entries(seen.proc_environ)} == {
        "PATH",
        BOOTSTRAP_ENV,
        *ALLOCATOR_ENV,
    }


@pytest.mark.parametrize("user_value", [None, "1048576"], ids=["default", "user"])
async def test_allocator_settings_reach_only_the_worker(
    monkeypatch: pytest.MonkeyPatch, user_value: str | None
) -> None:
    """The worker starts with glibc's large-message settings, then drops them
    from its environment so its own children start with the defaults; a value
    the user set is theirs, and stays."""
    for name in ALLOCATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    if user_value is not None:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", user_value)
    with anyio.fail_after(30):
        async with open_worker("tests.workers.echo", messages=Messages) as worker:
            seen = await introspect(worker)
    started_with = dict(_environ_entries(seen.proc_environ))
    assert started_with["MALLOC_MMAP_THRESHOLD_"] == str(64 * 1024 * 1024)
    assert "MALLOC_MMAP_THRESHOLD_" not in seen.environ
    if user_value is None:
        assert started_with["MALLOC_TRIM_THRESHOLD_"] == str(64 * 1024 * 1024)
        assert "MALLOC_TRIM_THRESHOLD_" not in seen.environ
    else:
        assert started_with["MALLOC_TRIM_THRESHOLD_"] == user_value
        assert seen.environ["MALLOC_TRIM_THRESHOLD_"] == user_value


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(None, {"SECRET_TOKEN": "x"}, id="inherited"),
        pytest.param({"EXTRA": "1"}, {"SECRET_TOKEN": "x", "EXTRA": "1"}, id="added"),
        pytest.param({"SECRET_TOKEN": "y"}, {"SECRET_TOKEN": "y"}, id="overridden"),
    ],
)
async def test_env_inherited(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None,
    expected: dict[str, str],
) -> None:
    """By default the host's environment is inherited; ``env`` is added on top (D11)."""
    monkeypatch.setenv("SECRET_TOKEN", "x")
    with anyio.fail_after(30):
        async with open_worker(
            "tests.workers.echo", messages=Messages, env=env
        ) as worker:
            seen = await introspect(worker)
    for key, value in expected.items():
        assert seen.environ[key] == value
    assert seen.environ["PATH"] == os.environ["PATH"]
    assert set(os.environ) - set(seen.environ) == set()  # nothing dropped


def _fd_targets() -> dict[int, str]:
    targets = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the fd listdir used
            targets[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return targets


@pytest.fixture
def host_extra_fds(tmp_path: Path) -> Iterator[list[int]]:
    """Inheritable fds of the host (a file, a socketpair, a pipe) open meanwhile."""
    with (
        open(tmp_path / "host-only", "w") as host_file,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unbound,
    ):
        a, b = socket.socketpair()
        read_fd, write_fd = os.pipe()
        with a, b:
            try:
                fds = [host_file.fileno(), unbound.fileno(), a.fileno(), b.fileno()]
                fds += [read_fd, write_fd]
                for fd in fds:  # inheritable too: still nothing may reach a worker
                    os.set_inheritable(fd, True)
                yield fds
            finally:
                os.close(read_fd)
                os.close(write_fd)


async def test_worker_inherits_no_host_fds(
    host_extra_fds: list[int], worker_backend: str
) -> None:
    """A worker holds 0-2, its socket and pipe, and its loop's own fds (D12)."""
    with anyio.fail_after(30):
        async with (
            open_worker(
                "tests.workers.echo",
                messages=Messages,
                backend=worker_backend,
            ) as sibling,
            open_worker(
                "tests.workers.echo",
                messages=Messages,
                backend=worker_backend,
            ) as worker,
        ):
            seen = await introspect(worker)
            sibling_seen = await introspect(sibling)
            host_fds = _fd_targets()
            link = worker._link
            assert link is not None
            assert link.pipe_fd is not None
            pipe_target = host_fds[link.pipe_fd]  # the host's end of the pipe
    fds = {int(fd): target for fd, target in seen.fds.items()}
    assert seen.transport == "socket"
    (socket_fd,) = seen.channel_fds
    assert {0, 1, 2, socket_fd, seen.pipe_fd} <= set(fds)
    assert fds[socket_fd].startswith("socket:")
    assert fds[seen.pipe_fd] == pipe_target  # its own bootstrap pipe, nobody else's
    assert fds[0] == "/dev/null"
    extra_targets = {host_fds[fd] for fd in host_extra_fds}
    assert not extra_targets & set(fds.values())
    # Beyond 0-2 and the bootstrap pipe, compare what identifies an open file
    # (socket and pipe inodes, paths); "anon_inode:[eventpoll]" names every epoll.
    own = {fd: t for fd, t in fds.items() if fd not in (0, 1, 2, seen.pipe_fd)}
    own_ids = {t for t in own.values() if not t.startswith("anon_inode:")}
    assert not own_ids & set(host_fds.values()), own  # nothing from the host
    assert not own_ids & set(sibling_seen.fds.values()), own  # nor from the sibling
    # What remains is the worker's socket and its event loop's own epoll/wakeup fds.
    for fd, target in own.items():
        assert target.startswith(("socket:", "anon_inode:")), (fd, target)
