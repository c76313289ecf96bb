"""Transports (API.md 9, 12): `PipeTransport` and `UnixSocketTransport(directory=)`.

Real worker processes throughout. The pipe tests cover the four host/worker
backend pairings (the message contract over pipes is in test_host.py); the
socket-directory tests cover D1, D3, D9 and D10 for a directory the user
gives; D5, D7 and D12 are rerun over pipes, with B12 and the connect timeout
as parity checks. The worker is the plain one, launched by
``tests/workers/tr_worker.py`` (as a module, or as a script); the held-back
worker ``tests/workers/sec_blocked.py`` lets a test meddle with the socket
directory while the host is STARTING. Synchronisation is by bounded polls of
beacons (files a worker writes) and of OS facts, never by sleeps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc
import attrs
import pytest

import isolated_workers
import isolated_workers._host._open as host_module
import isolated_workers._host._process as process_module
import isolated_workers._host._transport as transport_module
from isolated_workers import (
    PipeTransport,
    Timeouts,
    UnixSocketTransport,
    WorkerClient,
    WorkerStartupError,
    open_worker,
)
from isolated_workers._host._transport import default_transport
from isolated_workers._wire._bootstrap import BOOTSTRAP_ENV, write_bootstrap
from isolated_workers._wire._handshake import (
    HOST_GREETING_SIZE,
    MAGIC,
    WORKER_REPLY_SIZE,
    host_authenticate,
)
from tests import _leaks
from tests._util import GUARD, Beacon, RecordingStream, wait_until
from tests.workers.messages import (
    IMPORT_PRINT,
    Echo,
    Echoed,
    Look,
    Messages,
    Print,
    View,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
WORKER = "tests.workers.tr_worker"
WORKERS_DIR = REPO / "tests" / "workers"
WORKER_FILE = WORKERS_DIR / "tr_worker.py"
IMPOSTOR_FILE = WORKERS_DIR / "tr_impostor.py"
MiB = 1024 * 1024
PRIVATE_DIR = re.compile(r"isolated-workers-[a-z0-9_]{8}")
#: A string that travels only as startup data.
MARKER = "startup-marker-3b9e41c7"


# --- helpers --------------------------------------------------------------------------


def pipe_worker(
    worker_backend: str, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    """``open_worker`` on tr_worker over pipes, running the given event loop."""
    return open_worker(
        WORKER,
        messages=Messages,
        backend=worker_backend,
        transport=PipeTransport(),
        **options,
    )


def fd_targets() -> dict[int, str]:
    """This process's open fds and what they point at."""
    targets: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the fd listdir used
            targets[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return targets


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Everything under ``root`` (symlinks not followed), as ``relative path ->
    (mode, inode, uid, content or link target)``."""
    found: dict[str, tuple[int, int, int, bytes]] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        elif stat.S_ISLNK(info.st_mode):
            content = os.readlink(path).encode()
        else:
            content = b""
        found[str(path.relative_to(root))] = (
            info.st_mode,
            info.st_ino,
            info.st_uid,
            content,
        )
    return found


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory (mode 0700) to give `UnixSocketTransport`."""
    path = Path(tempfile.mkdtemp(prefix="iwt-tr-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[anyio.abc.Process]:
    """Record every process `open_worker` spawns."""
    processes: list[anyio.abc.Process] = []
    original = process_module.spawn

    async def recording_spawn(*args: Any, **kwargs: Any) -> anyio.abc.Process:
        process = await original(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(host_module, "spawn", recording_spawn)
    return processes


async def run_held_back(
    directory: Path,
    tmp_path: Path,
    meddle: Callable[[Path], None],
    use: Callable[[WorkerClient], Awaitable[None]] | None = None,
) -> WorkerStartupError | None:
    """Open the held-back echo worker (``sec_blocked``) with its socket in
    ``directory``; call ``meddle(private_dir)`` while it is STARTING, release
    it, then ``use`` the client. Returns the startup error, if any."""
    release = tmp_path / "release"
    started = Beacon(tmp_path / "release.started")
    started.path.unlink(missing_ok=True)  # from an earlier worker of the test
    before = set(os.listdir(directory))

    async def probe() -> None:
        try:
            await started.wait_for_text()  # the worker runs
            (name,) = set(os.listdir(directory)) - before
            meddle(directory / name)
        finally:
            release.write_text("go")

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        try:
            async with open_worker(
                "tests.workers.sec_blocked",
                messages=Messages,
                args=[str(release)],
                transport=UnixSocketTransport(directory),
                output="capture",  # the worker's traceback, if it fails
            ) as client:
                if use is not None:
                    await use(client)
        except WorkerStartupError as error:
            return error
        finally:
            tg.cancel_scope.cancel()
    return None


# --- 1. PipeTransport: the message contract -------------------------------------------
#
# Requests, notifications, errors, cancellation, SIGKILL and a graceful close
# over pipes run in test_host.py, whose ``worker`` fixture covers both
# transports on every pairing.


# --- 2. the worker's own output and stdin ---------------------------------------------


async def test_pipe_worker_output_stays_off_the_protocol(
    anyio_backend: object, worker_backend: str
) -> None:
    """print() at import and in handlers, os.write(1): all to stderr; stdin is EOF."""
    lines = (IMPORT_PRINT, "print() in a handler", "os.write(1) in a handler")
    with anyio.fail_after(GUARD):
        async with pipe_worker(worker_backend, output="capture") as client:
            written = await client.send(Print(f"{lines[1]}\n", raw=f"{lines[2]}\n"))
            assert written == len(lines[1]) + len(lines[2]) + 2
            assert await client.send(Echo(2, b"\n\x00")) == Echoed(2, b"\n\x00")
            view = await client.send(Look())
            await wait_until(
                lambda: all(line in client.captured_stderr for line in lines),
                "the printed lines on stderr",
            )
    assert client.captured_stdout == ""  # stdout is the protocol
    assert "Traceback" not in client.captured_stderr
    assert view.transport == "pipe"
    assert view.stdin == ""
    assert view.stdin_raw == b""
    assert view.fds["0"] == "/dev/null"
    assert view.fds["1"] == view.fds["2"]  # stdout writes where stderr does


async def test_pipe_output_flood(anyio_backend: object, worker_backend: str) -> None:
    """1 MiB to stdout and 1 MiB to stderr per handler over pipes: no deadlock (C14)."""
    payload = os.urandom(256 * 1024)
    spoken: list[int] = []
    echoed: list[Echoed] = []

    async def speak(client: WorkerClient) -> None:
        spoken.extend(
            [await client.send(Print(f"flood end {i}\n", flood=MiB)) for i in range(3)]
        )

    async def echo(client: WorkerClient) -> None:
        echoed.extend([await client.send(Echo(i, payload)) for i in range(20)])

    with anyio.fail_after(GUARD):
        async with pipe_worker(worker_backend, output="capture") as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(speak, client)
                tg.start_soon(echo, client)
            await wait_until(
                lambda: "flood end 2" in client.captured_stderr, "the last flood"
            )
            tail = client.captured_stderr
    assert spoken == [2 * MiB + len("flood end 0\n")] * 3
    assert echoed == [Echoed(i, payload) for i in range(20)]
    assert tail.endswith("e" * 1023 + "\nflood end 2\n")  # stdout after stderr
    assert client.captured_stdout == ""


# --- 3. module and script targets -----------------------------------------------------

ARGS = ["one", "two words", "--flag"]


@pytest.mark.parametrize("kind", ["module", "script"])
async def test_pipe_module_and_script_targets(kind: str, anyio_backend: object) -> None:
    """Over pipes a module and a script see their argv; a script imports siblings."""
    if kind == "module":
        target, argv0, path0, sibling = WORKER, str(WORKER_FILE), str(REPO), None
        env: dict[str, str] = {}
    else:
        target = "tests/workers/tr_worker.py"
        argv0 = str(WORKER_FILE)  # the launcher runs a script by its absolute path
        path0, sibling = str(WORKERS_DIR), "tr_sibling"
        env = {"PYTHONPATH": str(REPO)}  # for tests.workers, not for tr_sibling
    with anyio.fail_after(GUARD):
        async with open_worker(
            target,
            messages=Messages,
            args=ARGS,
            env=env,
            transport=PipeTransport(),
        ) as client:
            view = await client.send(Look())
            assert await client.send(Echo(3)) == Echoed(3, b"")
    assert view.transport == "pipe"
    assert view.name == "__main__"
    assert view.argv == [argv0, *ARGS]
    assert view.path0 == path0
    assert view.sibling == sibling


def _view_as_python_sees_it(view: View) -> tuple[object, ...]:
    # argv[0]: the launcher runs a script by its absolute path, Python as typed.
    argv0 = os.path.abspath(view.argv[0])
    return (view.name, view.file, [argv0, *view.argv[1:]], view.path0, view.sibling)


@pytest.mark.parametrize(
    "kind",
    [
        "module",
        "script",
        "symlinked-script",
    ],
)
async def test_launcher_runs_targets_as_python_does(
    kind: str, anyio_backend: object, tmp_path: Path
) -> None:
    """__name__, __file__, argv, sys.path[0], sibling imports: pipes == sockets."""
    env = {"PYTHONPATH": str(REPO)}
    if kind == "module":
        target = WORKER
    elif kind == "script":
        target = "tests/workers/tr_worker.py"
    else:
        (tmp_path / "linked").mkdir()
        link = tmp_path / "linked" / "tr_worker.py"
        link.symlink_to(WORKER_FILE)
        target = str(link)
    seen: list[tuple[object, ...]] = []
    with anyio.fail_after(GUARD):
        for transport in (UnixSocketTransport(), PipeTransport()):
            async with open_worker(
                target, messages=Messages, args=ARGS, env=env, transport=transport
            ) as client:
                seen.append(_view_as_python_sees_it(await client.send(Look())))
    by_socket, by_pipe = seen
    assert by_pipe == by_socket


# --- 4. D12 over pipes ----------------------------------------------------------------


@pytest.fixture
def host_extra_fds(tmp_path: Path) -> Iterator[list[int]]:
    """Inheritable fds of the host (a file, a socketpair, a pipe) open meanwhile."""
    with open(tmp_path / "host-only", "w") as host_file:
        a, b = socket.socketpair()
        read_fd, write_fd = os.pipe()
        with a, b:
            try:
                fds = [host_file.fileno(), a.fileno(), b.fileno(), read_fd, write_fd]
                for fd in fds:
                    os.set_inheritable(fd, True)
                yield fds
            finally:
                os.close(read_fd)
                os.close(write_fd)


async def test_pipe_worker_inherits_no_host_fds(
    host_extra_fds: list[int], anyio_backend: object, worker_backend: str
) -> None:
    """Over pipes a worker holds 0-2, its two pipe ends, its bootstrap pipe (D12)."""
    with anyio.fail_after(GUARD):
        async with (
            pipe_worker(worker_backend) as sibling,
            pipe_worker(worker_backend) as worker,
        ):
            view = await worker.send(Look())
            sibling_view = await sibling.send(Look())
            host_fds = fd_targets()
    fds = {int(fd): target for fd, target in view.fds.items()}
    read_fd, write_fd = view.channel_fds
    assert fds[0] == "/dev/null"
    assert fds[1] == fds[2]
    assert view.channel_inheritable == [False, False]
    # The protocol pipes and the bootstrap pipe lead to the host, and only
    # these pipes are open beyond 0-2.
    assert {fd for fd, t in fds.items() if fd > 2 and t.startswith("pipe:")} == {
        read_fd,
        write_fd,
        view.pipe_fd,
    }
    host_targets = set(host_fds.values())
    for fd in (read_fd, write_fd, view.pipe_fd):
        assert fds[fd] in host_targets, fd
    assert not {host_fds[fd] for fd in host_extra_fds} & set(fds.values())
    # The rest is the worker event loop's own: epoll and wakeup sockets.
    rest = {
        fd: t
        for fd, t in fds.items()
        if fd not in (0, 1, 2, read_fd, write_fd, view.pipe_fd)
    }
    for fd, target in rest.items():
        assert target.startswith(("socket:", "anon_inode:")), (fd, target)
    ids = {t for t in rest.values() if not t.startswith("anon_inode:")}
    assert not ids & host_targets, rest
    assert not ids & set(sibling_view.fds.values()), rest


# --- 5. UnixSocketTransport(directory=...): D1, D9, D10 -------------------------------


async def test_socket_directory_given(
    anyio_backend: object, sock_dir: Path, tmp_path: Path
) -> None:
    """directory=: a fresh 0700 dir with a 0600 socket, gone at READY; all else kept."""
    (sock_dir / "s").write_text("a regular file named like the socket")
    (sock_dir / "worker.sock").write_text("a regular file named like a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(sock_dir / "stale.sock"))  # its listener is gone at once
    old = sock_dir / "isolated-workers-00000000"
    old.mkdir(mode=0o700)
    (old / "s").write_text("an earlier run's")
    before = tree(sock_dir)
    seen: dict[str, Any] = {}

    def inspect(private: Path) -> None:
        seen["name"] = private.name
        seen["dir"] = private.lstat()
        seen["entries"] = os.listdir(private)
        seen["socket"] = (private / "s").lstat()

    async def use(client: WorkerClient) -> None:
        assert tree(sock_dir) == before  # READY: the private dir is gone
        assert await client.send(Echo(4)) == Echoed(4)

    with anyio.fail_after(GUARD):
        assert await run_held_back(sock_dir, tmp_path, inspect, use) is None
    assert PRIVATE_DIR.fullmatch(seen["name"])
    assert stat.S_ISDIR(seen["dir"].st_mode)
    assert stat.S_IMODE(seen["dir"].st_mode) == 0o700
    assert seen["dir"].st_uid == os.geteuid()
    assert seen["entries"] == ["s"]
    assert stat.S_ISSOCK(seen["socket"].st_mode)
    assert stat.S_IMODE(seen["socket"].st_mode) == 0o600
    assert tree(sock_dir) == before


def _make_unsafe(problem: str, path: Path) -> str:
    """Make ``path`` an unsafe socket directory; return the expected complaint."""
    if problem == "symlink":
        real = path.with_name("real")
        real.mkdir(mode=0o700)
        path.symlink_to(real)
        return "is a symlink"
    if problem == "file":
        path.write_text("")
        return "is not a directory"
    if problem == "missing":
        return "No such file or directory"
    path.mkdir(mode=0o700)
    if problem == "group-writable":
        path.chmod(0o770)
        return r"writable by others \(mode 770\)"
    if problem == "world-writable-sticky":
        path.chmod(0o1777)
        return r"writable by others \(mode 1777\)"
    assert problem == "foreign-owner"
    os.chown(path, 65534, 65534)
    return "owned by uid 65534"


@pytest.mark.parametrize(
    "problem",
    [
        "symlink",
        "group-writable",
        "world-writable-sticky",
        pytest.param(
            "foreign-owner",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root"),
        ),
        "missing",
        "file",
    ],
)
async def test_unsafe_socket_directory_is_refused(
    problem: str,
    anyio_backend: object,
    sock_dir: Path,
    spawned: list[anyio.abc.Process],
) -> None:
    """A symlink, writable, foreign, missing or non-directory path is refused (D9)."""
    directory = sock_dir / "d"
    complaint = _make_unsafe(problem, directory)
    before = tree(sock_dir)
    with anyio.fail_after(GUARD), pytest.raises(WorkerStartupError) as caught:
        async with open_worker(
            WORKER,
            messages=Messages,
            transport=UnixSocketTransport(directory),
        ):
            pytest.fail("the worker started")
    assert re.search(complaint, str(caught.value))
    assert str(directory) in str(caught.value)
    assert spawned == []
    assert tree(sock_dir) == before


@pytest.mark.parametrize("swap", ["socket-to-file", "socket-to-dir", "dir-to-dir"])
async def test_symlink_swapped_in_during_startup(
    swap: str, anyio_backend: object, sock_dir: Path, tmp_path: Path
) -> None:
    """A symlink planted while STARTING: no connection, the canary untouched (D9)."""
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir()
    canary = canary_dir / "canary.txt"
    canary.write_text("canary")
    canary.chmod(0o640)
    before = tree(canary_dir)

    def plant(private: Path) -> None:
        if swap == "dir-to-dir":
            private.rename(sock_dir / "moved")  # the live socket goes along
            private.symlink_to(canary_dir)
        else:
            (private / "s").unlink()
            (private / "s").symlink_to(
                canary if swap == "socket-to-file" else canary_dir
            )

    with anyio.fail_after(GUARD):
        error = await run_held_back(sock_dir, tmp_path, plant)
    assert isinstance(error, WorkerStartupError)
    notes = "\n".join(getattr(error, "__notes__", []))
    refused = "FileNotFoundError" if swap == "dir-to-dir" else "ConnectionRefusedError"
    assert refused in notes
    assert tree(canary_dir) == before
    if swap != "dir-to-dir":  # else the host cannot know the planted links
        assert os.listdir(sock_dir) == []


async def test_relative_socket_directory_with_another_cwd(
    anyio_backend: object, sock_dir: Path, tmp_path: Path
) -> None:
    """directory= relative to the host's cwd works for a worker with another cwd."""
    relative = os.path.relpath(sock_dir)
    with anyio.fail_after(GUARD):
        async with open_worker(
            WORKER,
            messages=Messages,
            cwd=tmp_path,
            env={"PYTHONPATH": str(REPO)},
            transport=UnixSocketTransport(relative),
            output="capture",
        ) as client:
            assert await client.send(Echo(5)) == Echoed(5, b"")


# --- 6. D3 for a given directory ------------------------------------------------------


async def test_socket_directory_too_long(
    anyio_backend: object,
    sock_dir: Path,
    spawned: list[anyio.abc.Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory too long for AF_UNIX: WorkerStartupError, no /tmp fallback (D3)."""
    long = sock_dir / ("d" * (100 - len(str(sock_dir)) - 1))
    long.mkdir(mode=0o700)
    assert len(str(long)) == 100
    made: list[str | None] = []
    original = tempfile.mkdtemp

    def recording_mkdtemp(
        suffix: str | None = None, prefix: str | None = None, dir: str | None = None
    ) -> str:
        made.append(dir)
        return original(suffix, prefix, dir)

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    with anyio.fail_after(GUARD), pytest.raises(WorkerStartupError) as caught:
        async with open_worker(
            WORKER, messages=Messages, transport=UnixSocketTransport(long)
        ):
            pytest.fail("the worker started")
    assert "AF_UNIX limit of 107 bytes" in str(caught.value)
    assert made == [str(long)]
    assert os.listdir(long) == []
    assert spawned == []


# --- uvloop -------------------------------------------------------------------------

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
UVLOOP = pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")
needs_uvloop = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")


@pytest.fixture(scope="module")
def uvloop_started() -> None:
    """uvloop opens a pipe for the process the first time a loop runs, and keeps
    it: run one here, before the leak check's snapshot."""

    async def nothing() -> None:
        pass

    anyio.run(nothing, backend="asyncio", backend_options={"use_uvloop": True})


@needs_uvloop
@pytest.mark.parametrize("anyio_backend", [UVLOOP])
@pytest.mark.parametrize(
    "transport", [UnixSocketTransport(), PipeTransport()], ids=["socket", "pipe"]
)
async def test_a_uvloop_host_gets_uvloop_workers(
    anyio_backend: object,
    transport: UnixSocketTransport | PipeTransport,
    uvloop_started: None,
) -> None:
    """A host on uvloop starts its workers on uvloop, over either transport;
    small and large messages cross both ways."""
    big = os.urandom(3 * MiB)
    with anyio.fail_after(GUARD):
        async with open_worker(WORKER, messages=Messages, transport=transport) as w:
            assert (await w.send(Look())).loop == "uvloop"
            assert await w.send(Echo(1, big)) == Echoed(1, big)


@needs_uvloop
async def test_any_host_can_ask_for_a_uvloop_worker(anyio_backend: object) -> None:
    """``backend="uvloop"`` runs the worker on asyncio with uvloop."""
    with anyio.fail_after(GUARD):
        async with open_worker(WORKER, messages=Messages, backend="uvloop") as w:
            assert (await w.send(Look())).loop == "uvloop"


# --- 7. the transport classes ---------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux default")
async def test_default_transport_is_a_unix_socket(anyio_backend: object) -> None:
    """On Linux the default transport is UnixSocketTransport(), and a worker uses it."""
    assert default_transport() == UnixSocketTransport()
    with anyio.fail_after(GUARD):
        async with open_worker(WORKER, messages=Messages, output="capture") as client:
            view = await client.send(Look())
    assert view.transport == "socket"
    assert client.captured_stdout.startswith(IMPORT_PRINT)  # stdout is just stdout


@pytest.mark.parametrize(
    "transport",
    [object(), "pipe", PipeTransport],
    ids=["object", "str", "class"],
)
async def test_transport_of_another_type_is_a_type_error(
    transport: object, anyio_backend: object, spawned: list[anyio.abc.Process]
) -> None:
    """transport= that is no transport instance raises TypeError before any spawn."""
    with pytest.raises(TypeError, match="transport must be a UnixSocketTransport"):
        async with open_worker(
            WORKER, messages=Messages, transport=cast(Any, transport)
        ):
            pytest.fail("the worker started")
    assert spawned == []


def test_transport_classes_are_frozen_attrs() -> None:
    """Both transports are exported, frozen, comparable, hashable, with a clear repr."""
    sock = UnixSocketTransport(directory="/run/app")
    pipe = PipeTransport()
    for transport in (sock, pipe):
        assert attrs.has(type(transport))
        assert type(transport).__name__ in isolated_workers.__all__
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sock.directory = "/tmp"  # type: ignore[misc]
    assert repr(sock) == "UnixSocketTransport(directory='/run/app')"
    assert repr(UnixSocketTransport()) == "UnixSocketTransport(directory=None)"
    assert repr(pipe) == "PipeTransport()"
    assert sock == UnixSocketTransport("/run/app") != UnixSocketTransport()
    assert len({pipe, PipeTransport(), sock, UnixSocketTransport("/run/app")}) == 2


# --- 8. D5/D7 over pipes: impostor workers --------------------------------------------


def impostor_options(mode: str, received: Path, tmp_path: Path) -> dict[str, Any]:
    """`open_worker` options running ``tr_impostor.py`` in ``mode``."""
    options: dict[str, Any] = {
        "messages": Messages,
        "args": [mode, str(received)],
        "startup_data": {"marker": MARKER},
        "transport": PipeTransport(),
        "timeouts": Timeouts(startup=20),
    }
    if mode == "noise":  # in place of the interpreter: no launcher
        fake_python = tmp_path / "python"
        fake_python.write_text(
            f"#!/bin/sh\nexec {sys.executable} {IMPOSTOR_FILE} noise {received}\n"
        )
        fake_python.chmod(0o700)
        options["python"] = fake_python
    return options


@pytest.mark.parametrize("mode", ["noise", "channel", "wrong-secret"])
async def test_pipe_impostor_gets_no_startup_data(
    mode: str,
    anyio_backend: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker failing the pipe handshake gets the challenge, no HELLO (D5, D7)."""
    received = tmp_path / "received"
    peers: list[RecordingStream] = []

    async def recording_authenticate(
        stream: anyio.abc.ByteStream, secret: bytes
    ) -> None:
        peers.append(RecordingStream(stream))
        await host_authenticate(peers[-1], secret)

    monkeypatch.setattr(transport_module, "host_authenticate", recording_authenticate)
    with anyio.fail_after(GUARD), pytest.raises(WorkerStartupError) as caught:
        async with open_worker(
            str(IMPOSTOR_FILE), **impostor_options(mode, received, tmp_path)
        ):
            pytest.fail("the impostor was accepted")
    assert "failed the handshake" in str(caught.value)
    data = received.read_bytes()
    assert len(data) == HOST_GREETING_SIZE  # the challenge, and nothing more
    assert data.startswith(MAGIC)
    assert MARKER.encode() not in data
    (peer,) = peers
    assert len(peer.received) <= WORKER_REPLY_SIZE


# --- transport parity: connect timeout, SIGPIPE ---------------------------------------


def test_pipe_worker_gives_up_on_a_silent_host() -> None:
    """A pipe worker whose live host never speaks exits after connect_timeout."""
    bootstrap_read, bootstrap_write = os.pipe()
    child_stdin, host_write = os.pipe()
    host_read, child_stdout = os.pipe()
    fds = [bootstrap_read, bootstrap_write, child_stdin, host_write, host_read]
    fds.append(child_stdout)
    try:
        write_bootstrap(
            bootstrap_write,
            {
                "pipe": True,
                "secret": os.urandom(32).hex(),
                "connect_timeout": 0.5,
                "hello_size": 100,
            },
        )
        with subprocess.Popen(
            [sys.executable, "-m", "isolated_workers._worker._launcher", "-m", WORKER],
            stdin=child_stdin,
            stdout=child_stdout,
            stderr=subprocess.DEVNULL,
            env={**os.environ, BOOTSTRAP_ENV: str(bootstrap_read)},
            pass_fds=[bootstrap_read],
            start_new_session=True,
        ) as process:
            try:
                process.wait(timeout=3)  # 0.5 s, and time to start
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("the worker still waits for its silent host")
    finally:
        for fd in fds:
            os.close(fd)


def test_pipe_host_with_default_sigpipe_survives(tmp_path: Path) -> None:
    """A SIG_DFL-SIGPIPE host whose pipe worker dies mid 32 MiB write lives (B12)."""
    before = _leaks.snapshot()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.workers.sigpipe_host",
                str(tmp_path / "stalled"),
                "asyncio",
                "pipe",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        # A host killed by SIGPIPE leaves its dead worker to us (a subreaper).
        left = _leaks.find_leaks(before, _leaks.snapshot())
        _leaks.kill_and_reap(left.procs | left.zombies)
    assert done.returncode == 0, done.stderr.decode()
    assert b"SURVIVED" in done.stdout
