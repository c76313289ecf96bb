"""The README's example runs as written, and its commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"

INSTALL_AND_RUN = "python -m pip install . && python examples/quickstart.py"
TEST_COMMAND = "python -m pip install nox && python -m nox"


def code_blocks(text: str, language: str) -> list[tuple[str, str]]:
    """Return ``(text before the block, code)`` for each ``code-block:: language``."""
    lines = text.splitlines()
    blocks = []
    directive = f".. code-block:: {language}"
    for i, line in enumerate(lines):
        if line.strip() != directive:
            continue
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            body.append(following)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(("\n".join(lines[:i]), code))
    return blocks


def readme_files() -> dict[str, str]:
    """The README's Python blocks, keyed by the file name its prose gives each."""
    files = {}
    for before, code in code_blocks(README.read_text(), "python"):
        # The paragraph introducing a block names its file: ``name.py``.
        intro = before.rstrip().rsplit("\n\n", 1)[-1]
        names = re.findall(r"``([\w.]+\.py)``", intro)
        assert names, f"no file name before this README block:\n{code}"
        files[names[0]] = code
    return files


def test_readme_example_is_short() -> None:
    """The README's example is three files of 25 lines in all."""
    files = readme_files()
    assert set(files) == {"primes_messages.py", "primes_worker.py", "main.py"}
    assert sum(code.count("\n") for code in files.values()) <= 25


@pytest.mark.slow
def test_readme_example_runs(tmp_path: Path) -> None:
    """The README's three files, written out as they are, count the primes."""
    for name, code in readme_files().items():
        (tmp_path / name).write_text(code)
    done = subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "9592\n"


def test_readme_quick_start_commands() -> None:
    """The quick start gives exactly the two commands, as console blocks."""
    commands = [code.strip() for _, code in code_blocks(README.read_text(), "console")]
    assert commands == [INSTALL_AND_RUN, TEST_COMMAND]


def test_ci_runs_the_readme_test_command() -> None:
    """CI runs the very command the README gives for the test suite."""
    run = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND in run.splitlines()


def test_docs_take_code_from_tested_files() -> None:
    """The docs show Python only through literalinclude of files that exist."""
    for page in sorted(DOCS.rglob("*.rst")):
        text = page.read_text()
        assert ".. code-block:: python" not in text, page.name
        # No literal blocks introduced by a paragraph ending in "::" either.
        assert not re.search(r"^(?!\.\. )\S.*::$", text, re.MULTILINE), page.name
        for target in re.findall(r"^\.\. literalinclude:: (\S+)", text, re.MULTILINE):
            assert (page.parent / target).resolve().is_file(), f"{page.name}: {target}"
