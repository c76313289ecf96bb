"""mypy accepts ``tests/typing/api.py`` and would catch a wrong inferred type.

``tests/typing/api.py`` asserts the inferred types of the public API (a
request's result, a notification's ``None``, the client, the startup data).
This test runs mypy on it, and on a copy with one wrong assertion added, to
prove that the check can fail.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed"
)

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "tests" / "typing" / "api.py"

WRONG = """

async def wrong(worker: WorkerClient) -> None:
    assert_type(await worker.send(Resize(data=b"", width=1)), int)
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(path: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(cache_dir),
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_api_typing_is_clean(cache_dir: Path) -> None:
    result = run_mypy(API, cache_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_wrong_assertion_fails(cache_dir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "api_wrong.py"
    source = API.read_text()
    assert "WorkerClient," in source
    assert "assert_type" in source
    wrong.write_text(source + WRONG)
    wrong_line = len(source.splitlines()) + len(WRONG.splitlines())
    result = run_mypy(wrong, cache_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = result.stdout.splitlines()
    assert len(errors) == 1, errors
    assert f"api_wrong.py:{wrong_line}: error:" in errors[0]
    assert '"Resized", not "int"' in errors[0]
    assert "[assert-type]" in errors[0]
