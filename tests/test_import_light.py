"""Importing the library, and running an asyncio worker, stays light.

Neither loads Trio, cattrs, msgpack or Hypothesis: a worker pays only for what
it uses.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import anyio
import pytest

from isolated_workers import open_worker
from tests.workers.unit_messages import LoadedModules, Messages, WorkerInfo

HEAVY = ["trio", "cattrs", "msgpack", "hypothesis"]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """The host runs asyncio only: a Trio host would not tell us anything."""
    return ("asyncio", {"debug": True})


def test_import_does_not_load_heavy_modules() -> None:
    code = "import isolated_workers, sys; print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = set(ast.literal_eval(result.stdout))
    assert "isolated_workers" in modules
    assert {"anyio", "attrs"} <= modules
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
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
