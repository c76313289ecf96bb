"""Importing the library, and running a worker, stays light.

Neither loads Trio, cattrs, msgpack or Hypothesis, nor the host's side of the
library: a worker pays only for what it uses. A Trio worker does not load
asyncio either.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import isolated_workers
from isolated_workers import open_worker
from tests.workers.unit_messages import LoadedModules, Messages, WorkerInfo

HEAVY = ["trio", "cattrs", "msgpack", "hypothesis"]
HOST_SIDE = ["isolated_workers._host", "subprocess"]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """The host runs asyncio only: a Trio host would not tell us anything."""
    return ("asyncio", {"debug": True})


def python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; return what it printed, evaluated."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return ast.literal_eval(result.stdout)


def test_import_does_not_load_heavy_modules() -> None:
    modules = set(python("import isolated_workers, sys; print(sorted(sys.modules))"))
    assert "isolated_workers" in modules
    assert {"anyio", "attrs"} <= modules
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []
    assert not modules & set(HOST_SIDE)


def test_the_host_side_loads_on_first_use() -> None:
    """`open_worker` and the other host names import on first use, with their
    public module name."""
    code = (
        "import isolated_workers as iw, sys;"
        "before = sorted(m for m in sys.modules if m in HOST);"
        "names = (iw.open_worker.__module__, iw.WorkerClient.__module__);"
        "print([before, sorted(m for m in sys.modules if m in HOST), names])"
    ).replace("HOST", repr(HOST_SIDE))
    before, after, names = python(code)
    assert before == []
    assert after == sorted(HOST_SIDE)
    assert names == ("isolated_workers", "isolated_workers")


@pytest.mark.anyio
async def test_trio_worker_does_not_load_asyncio() -> None:
    pytest.importorskip("trio")
    with anyio.fail_after(30):
        async with open_worker(
            "tests.workers.unit_modules", messages=Messages, backend="trio"
        ) as worker:
            # Trio itself imports subprocess: look for asyncio and the host only.
            names = ["asyncio", *(m for m in HOST_SIDE if m != "subprocess")]
            loaded = await worker.send(LoadedModules(names))
    assert loaded == []


@pytest.mark.anyio
async def test_asyncio_worker_does_not_load_trio() -> None:
    with anyio.fail_after(30):
        async with open_worker(
            "tests.workers.unit_modules", messages=Messages, backend="asyncio"
        ) as worker:
            assert await worker.send(WorkerInfo()) == {"backend": "asyncio"}
            loaded = await worker.send(LoadedModules([*HEAVY, "isolated_workers"]))
    assert loaded == ["isolated_workers"]


def test_each_side_imports_only_the_shared_code() -> None:
    """``_wire`` imports neither side, and neither side imports the other."""
    package = Path(isolated_workers.__file__).parent
    for side, foreign in [
        ("_wire", ("_host", "_worker")),
        ("_host", ("_worker",)),
        ("_worker", ("_host",)),
    ]:
        for module in (package / side).glob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    top = node.module.removeprefix("isolated_workers.").split(".")[0]
                    assert top not in foreign, f"{side}/{module.name} imports {top}"


def test_without_posix_signals_the_package_imports_and_says_so() -> None:
    """Where the POSIX-only signals are missing (Windows), the package still
    imports, and `open_worker` says it runs on POSIX only."""
    code = (
        "import signal, sys, anyio, anyio._backends._asyncio;"
        "[delattr(signal, n) for n in ('SIGKILL', 'SIGUSR1') if hasattr(signal, n)];"
        "import isolated_workers as iw;"
        "messages, open_worker = iw.define_messages(), iw.open_worker;"
        # Only now: the standard library imports differently on Windows.
        "sys.platform = 'win32';"
        "\nasync def main():"
        "\n    try:"
        "\n        async with open_worker('w.py', messages=messages): pass"
        "\n    except NotImplementedError as exc: return str(exc)"
        "\nprint(repr(anyio.run(main)))"
    )
    assert python(code) == "isolated-workers runs on POSIX systems only for now"
