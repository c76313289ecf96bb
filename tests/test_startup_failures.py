"""Startup failures: `open_worker` raises `WorkerStartupError`, fast, leaving nothing.

Reliability spec (a) A11-A13, C11 (serializer mismatch) and (d) D3 (socket path
length). Every failure must surface as a clear `WorkerStartupError` well within
the startup timeout, and the autouse leak check (conftest) proves that no fd,
process, zombie or socket directory is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

import isolated_workers._host._open as host_module
from isolated_workers import (
    SerializerMismatchError,
    Timeouts,
    WorkerStartupError,
    open_worker,
)
from isolated_workers._host._process import spawn as original_spawn
from isolated_workers._util import json_dumps, json_loads
from isolated_workers._wire._bootstrap import BOOTSTRAP_ENV, write_bootstrap
from isolated_workers._wire._framing import FrameReader, Kind, encode_frame
from isolated_workers._wire._handshake import host_authenticate
from tests.workers.bad_serializer import Json2Serializer
from tests.workers.messages import Add, Echo, Echoed, Messages, Recall

pytestmark = pytest.mark.anyio

#: Failures that do not wait for a timeout must come well within the default 10 s.
FAST = 5.0


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[Process]:
    """Record every process `open_worker` spawns (to check it was reaped)."""
    processes: list[Process] = []
    original = original_spawn

    async def recording_spawn(*args: Any, **kwargs: Any) -> Process:
        process = await original(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(host_module, "spawn", recording_spawn)
    return processes


def assert_reaped(processes: list[Process]) -> None:
    """Each process has exited and was waited for by the library."""
    for process in processes:
        assert process.returncode is not None, f"pid {process.pid} was never reaped"
        with pytest.raises(ChildProcessError):
            os.waitpid(process.pid, os.WNOHANG)  # no longer our child: reaped


async def open_and_fail(
    target: str, expected: type[BaseException] = WorkerStartupError, **options: Any
) -> tuple[BaseException, float]:
    """Open a worker that must fail to start; return the error and the time taken."""
    options.setdefault("messages", Messages)
    start = time.monotonic()
    with pytest.raises(expected) as info:
        async with open_worker(target, **options):
            pytest.fail("the worker started")
    return info.value, time.monotonic() - start


# ------------------------------------------------------------ the process fails


async def test_missing_module(spawned: list[Process]) -> None:
    """A module that does not exist fails fast, naming the module."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.does_not_exist")
    assert type(error) is WorkerStartupError
    assert "tests.workers.does_not_exist" in str(error)
    assert "exited (code 1)" in str(error)
    assert elapsed < FAST
    assert len(spawned) == 1
    assert_reaped(spawned)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("tests/workers/bad_no_such_script.py", id="relative"),
        pytest.param("/nonexistent/dir/worker.py", id="absolute"),
    ],
)
async def test_missing_script(script: str, spawned: list[Process]) -> None:
    """A script path that does not exist is refused before anything is spawned."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(script)
    assert "does not exist" in str(error)
    assert os.path.basename(script) in str(error)
    assert elapsed < FAST
    assert spawned == []


async def test_bad_interpreter_path(spawned: list[Process]) -> None:
    """`python=` naming no file fails fast, naming the interpreter."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            "tests.workers.echo", python="/nonexistent/python"
        )
    assert "cannot start worker" in str(error)
    assert "/nonexistent/python" in str(error)
    assert elapsed < FAST
    assert spawned == []


async def test_interpreter_not_executable(
    tmp_path: Path, spawned: list[Process]
) -> None:
    """`python=` naming a file without execute permission fails fast."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o644)
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.echo", python=python)
    assert str(python) in str(error)
    assert elapsed < FAST
    assert spawned == []


async def test_interpreter_that_is_not_python(spawned: list[Process]) -> None:
    """`python=` naming a program that exits at once (``false``) fails fast."""
    false = shutil.which("false")
    assert false is not None
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.echo", python=false)
    assert "exited (code 1)" in str(error)
    assert elapsed < FAST
    assert_reaped(spawned)


async def test_worker_raises_at_import(
    worker_backend: str, spawned: list[Process]
) -> None:
    """A worker raising at import fails fast rather than timing out (A11)."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            "tests.workers.bad_import_error", backend=worker_backend
        )
    assert type(error) is WorkerStartupError
    assert "tests.workers.bad_import_error" in str(error)
    assert "exited (code 1) before it was ready" in str(error)
    assert elapsed < FAST
    assert_reaped(spawned)


async def test_worker_exits_zero_at_once(spawned: list[Process]) -> None:
    """A worker exiting 0 before it connects fails startup at once (A13)."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.bad_exit_zero")
    assert "exited (code 0) before it was ready" in str(error)
    assert elapsed < FAST
    assert [p.returncode for p in spawned] == [0]
    assert_reaped(spawned)


async def test_worker_exits_after_startup_data(spawned: list[Process]) -> None:
    """A worker exiting after `get_startup_data` (no `run_worker`) fails fast."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.bad_startup_then_exit")
    assert "exited (code 0) before it was ready" in str(error)
    assert elapsed < FAST
    assert_reaped(spawned)


@pytest.mark.parametrize(
    "args",
    [pytest.param((), id="never-connects"), pytest.param(("connect",), id="connected")],
)
async def test_worker_never_ready_times_out(
    args: tuple[str, ...], spawned: list[Process]
) -> None:
    """A worker never calling `run_worker` fails at `Timeouts.startup` (A13)."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            "tests.workers.bad_never_ready",
            args=args,
            timeouts=Timeouts(startup=0.5),
        )
    assert "did not become ready within 0.5 s" in str(error)
    assert 0.45 <= elapsed < 2.0
    # Killed, not exited by itself. (The status should be -SIGKILL; on asyncio it is
    # sometimes 255: stop_and_reap's SIGTERM goes through Popen.send_signal, whose
    # poll() can reap the killed child before asyncio's child watcher does.)
    assert len(spawned) == 1
    assert spawned[0].returncode not in (None, 0)
    assert_reaped(spawned)


# ------------------------------------------------------------- the contract fails


async def test_missing_handlers_are_named(
    worker_backend: str, spawned: list[Process]
) -> None:
    """A worker lacking handlers fails startup naming each missing one (A12)."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            "tests.workers.bad_missing_handler", backend=worker_backend
        )
    assert type(error) is WorkerStartupError
    text = str(error)
    assert "no handler" in text
    for name in ("Add", "Fail", "Sleep", "GetStartup", "Remember", "Recall"):
        assert name in text
    assert "Echo" not in text  # it has a handler
    assert elapsed < FAST
    assert_reaped(spawned)


async def test_handler_for_unknown_message_is_refused(
    spawned: list[Process],
) -> None:
    """A handler for a class outside the registry fails startup, naming it."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail("tests.workers.bad_unknown_handler")
    assert type(error) is WorkerStartupError
    assert "not in the registry" in str(error)
    assert "Stray" in str(error)
    assert elapsed < FAST
    assert_reaped(spawned)


async def test_contract_mismatch_names_differing_messages(
    worker_backend: str, spawned: list[Process]
) -> None:
    """A worker with another registry fails naming exactly the differences."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            "tests.workers.bad_contract", backend=worker_backend
        )
    assert type(error) is WorkerStartupError
    text = str(error)
    assert "differently" in text
    _, _, names = text.rpartition(":")
    # Echo: a field type changed; Recall: only the host has it; Extra: only the worker.
    assert sorted(n.strip() for n in names.split(",")) == ["Echo", "Extra", "Recall"]
    assert elapsed < FAST
    assert_reaped(spawned)


# ----------------------------------------------------------- serializer mismatch


@pytest.mark.parametrize(
    ("target", "host_serializer", "host_name", "worker_name"),
    [
        pytest.param(
            "tests.workers.echo", Json2Serializer(), "json2", "json", id="host"
        ),
        pytest.param(
            "tests.workers.bad_serializer", None, "json", "json2", id="worker"
        ),
    ],
)
async def test_serializer_mismatch_on_host(
    target: str,
    host_serializer: Json2Serializer | None,
    host_name: str,
    worker_name: str,
    worker_backend: str,
    spawned: list[Process],
) -> None:
    """Another serializer name raises `SerializerMismatchError` on the host."""
    with anyio.fail_after(30):
        error, elapsed = await open_and_fail(
            target,
            SerializerMismatchError,
            serializer=host_serializer,
            backend=worker_backend,
        )
    assert isinstance(error, WorkerStartupError)
    assert f"host uses serializer {host_name!r}" in str(error)
    assert f"the worker {worker_name!r}" in str(error)
    assert elapsed < FAST
    assert_reaped(spawned)


async def test_serializer_mismatch_on_worker(worker_backend: str) -> None:
    """The worker refuses a host with another serializer: READY says so, exit 1.

    `open_worker` kills the worker as soon as it has the refusal, so this test
    plays the host itself (the library's bootstrap, handshake and framing) to
    see the worker's side: its READY frame, its exit code and its stderr.
    """
    hello = {
        "serializer": "json2",
        "messages": Messages.fingerprint,
        "backend": worker_backend,
        "startup_data": None,
    }
    with anyio.fail_after(30):
        ready, returncode, stderr = await fake_host("tests.workers.echo", hello)
    assert ready["ok"] is False
    assert ready["error"] == "SerializerMismatchError"
    assert "'json2'" in ready["message"]
    assert returncode == 1
    assert b"SerializerMismatchError" in stderr
    assert b"the host uses serializer 'json2', the worker 'json'" in stderr


async def test_fake_host_control(worker_backend: str) -> None:
    """Control for the fake host: with matching serializers the worker is READY."""
    hello = {
        "serializer": "json",
        "messages": Messages.fingerprint,
        "backend": worker_backend,
        "startup_data": None,
    }
    with anyio.fail_after(30):
        ready, returncode, stderr = await fake_host("tests.workers.echo", hello)
    assert ready["ok"] is True
    assert returncode == 0  # it stops serving when the fake host hangs up
    assert b"Traceback" not in stderr


async def fake_host(
    target: str, hello: dict[str, Any]
) -> tuple[dict[str, Any], int, bytes]:
    """Start ``python -m target`` as the library's host would, send ``hello``.

    Returns the worker's READY body, its exit code after the host hangs up,
    and its stderr.
    """
    directory = tempfile.mkdtemp(prefix="iwt-fake-host-", dir="/tmp")
    path = os.path.join(directory, "s")
    secret = os.urandom(32)
    read_fd, write_fd = os.pipe()
    greeting = json_dumps(hello)
    try:
        listener = await anyio.create_unix_listener(path)
        async with listener:
            write_bootstrap(
                write_fd,
                {
                    "socket": path,
                    "secret": secret.hex(),
                    "connect_timeout": 10,
                    "hello_size": len(greeting),
                },
            )
            process = await anyio.open_process(
                [sys.executable, "-m", target],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, BOOTSTRAP_ENV: str(read_fd)},
                pass_fds=[read_fd],
                start_new_session=True,
            )
            os.close(read_fd)
            read_fd = -1
            try:
                async with await listener.accept() as stream:
                    await host_authenticate(stream, secret)
                    await stream.send(encode_frame(Kind.HELLO, 0, greeting, 2**20))
                    frames = await FrameReader(stream, 2**20).receive()
                assert [kind for kind, _, _ in frames] == [Kind.READY]
                ready: dict[str, Any] = json_loads(bytes(frames[0][2]))
                assert process.stderr is not None
                stderr = b""
                async for chunk in process.stderr:
                    stderr += chunk
                returncode = await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                with anyio.CancelScope(shield=True):
                    await process.aclose()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)
    return ready, returncode, stderr


# ---------------------------------------------------- arguments refused at once


async def test_unknown_backend_is_a_value_error(spawned: list[Process]) -> None:
    """`backend="curio"` raises `ValueError` before anything is spawned."""
    with anyio.fail_after(30):
        error, _ = await open_and_fail(
            "tests.workers.echo", ValueError, backend="curio"
        )
    assert "curio" in str(error)
    assert spawned == []


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([Echo, Add], id="list"),
        pytest.param({"Echo": Echo}, id="dict"),
        pytest.param(Echo, id="class"),
    ],
)
async def test_messages_must_be_a_registry(
    messages: Any, spawned: list[Process]
) -> None:
    """`messages=` that is not a `MessageRegistry` raises `TypeError` at once."""
    with anyio.fail_after(30):
        error, _ = await open_and_fail(
            "tests.workers.echo", TypeError, messages=messages
        )
    assert "MessageRegistry" in str(error)
    assert spawned == []


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    "startup_data",
    [
        pytest.param(object(), id="object"),
        pytest.param({"nested": [1, {"set": {1, 2}}]}, id="nested-set"),
        pytest.param({(1, 2): "tuple key"}, id="tuple-key"),
        pytest.param(_circular(), id="circular"),
    ],
)
async def test_unserializable_startup_data(
    startup_data: Any, spawned: list[Process]
) -> None:
    """Startup data that cannot be sent raises `TypeError` before any spawn."""
    with anyio.fail_after(30):
        error, _ = await open_and_fail(
            "tests.workers.echo", TypeError, startup_data=startup_data
        )
    assert "startup_data" in str(error)
    assert spawned == []


# ------------------------------------------------------------ long TMPDIR (D3)


@pytest.fixture
def long_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point TMPDIR and `tempfile.tempdir` at a directory of 100+ characters."""
    long = tmp_path / ("d" * max(10, 110 - len(str(tmp_path))))
    long.mkdir()
    assert len(str(long)) > 100
    monkeypatch.setenv("TMPDIR", str(long))
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    assert tempfile.gettempdir() == str(long)
    yield long
    assert list(long.iterdir()) == []  # nothing created or left there


async def test_long_tmpdir(long_tmpdir: Path, worker_backend: str) -> None:
    """Under a 100+ char TMPDIR the worker starts, or the error names AF_UNIX (D3)."""
    with anyio.fail_after(30):
        message = ""
        try:
            async with open_worker(
                "tests.workers.echo", messages=Messages, backend=worker_backend
            ) as worker:
                assert await worker.send(Echo(5)) == Echoed(5)
                assert await worker.send(Recall()) == []
        except WorkerStartupError as error:  # the other documented outcome
            message = str(error)
    if message:
        assert "AF_UNIX" in message
