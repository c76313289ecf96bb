"""The README's example runs as written, and its commands are the ones CI runs."""

from __future__ import annotations

import inspect
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import attrs
import pytest

import isolated_workers
from isolated_workers import testing

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

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


def nox_sessions() -> set[str]:
    """The session names noxfile.py defines."""
    text = (ROOT / "noxfile.py").read_text()
    named = re.findall(r'@nox\.session\(name="(\w+)"\)', text)
    plain = re.findall(r"@nox\.session\n(?:@.*\n)*def (\w+)\(", text)
    return {*named, *plain}


def installable() -> set[str]:
    """What a doc may tell a reader to pip install: this project, with any of
    its extras, and the packages its dependency groups name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    names = {".", "nox", "isolated-workers"}
    names |= {f"isolated-workers[{extra}]" for extra in extras}
    names |= {f"isolated-workers[{','.join(sorted(extras))}]"}
    for requirements in project["dependency-groups"].values():
        for requirement in requirements:
            if isinstance(requirement, str):
                names.add(re.split(r"[\s<>=;\[]", requirement)[0])
    return names


def check_command(command: str) -> None:
    """Fail unless ``command`` is one of the kinds of command the docs may give,
    and names things that exist."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)  # an environment variable for the command
    assert words[:1] == ["python"], command
    match words[1:]:
        case ["-m", "pip", "install", *packages]:
            assert packages, command
            assert set(packages) <= installable(), command
        case ["-m", "nox", *args]:
            for i, arg in enumerate(args):
                if arg == "-s":
                    assert args[i + 1] in nox_sessions(), command
        case ["-m", "pytest", *args]:
            for arg in args:
                if arg.startswith(("tests/", "examples/")):
                    assert (ROOT / arg.split("::")[0]).exists(), command
        case [script, *args] if script.startswith(("examples/", "bench/")):
            path = ROOT / script
            assert path.is_file(), command
            source = path.read_text()
            if script.startswith("examples/"):
                source += (EXAMPLES / "backend_option.py").read_text()
            for arg in args:
                if arg.startswith("--"):
                    option = arg.split("=")[0]
                    assert f'"{option}"' in source, f"{command}: {option}"
        case _:
            raise AssertionError(f"not a command the docs may give: {command}")


def test_console_blocks_give_commands_that_work() -> None:
    """Shell blocks in the docs and the README only install what exists, run
    examples, benchmarks and tests that exist, with options they take."""
    pages = [README, *sorted(DOCS.rglob("*.rst"))]
    for page in pages:
        for _, code in code_blocks(page.read_text(), "console"):
            for line in code.splitlines():
                for command in line.split("&&"):
                    if command.strip():
                        check_command(command.strip())


def docstring_snippets() -> list[tuple[str, str]]:
    """The literal blocks (``::``) in the docstrings of the public API and its
    members, which the reference shows: ``(owner, code)``."""
    public = [getattr(isolated_workers, name) for name in isolated_workers.__all__]
    members = [m for obj in public if isinstance(obj, type) for m in vars(obj).values()]
    snippets = []
    for obj in [isolated_workers, *public, *members]:
        owner = getattr(obj, "__qualname__", repr(obj))
        doc = (inspect.getdoc(obj) or "") + "\n"
        blocks = re.findall(r"::\n\n((?:(?:    .*)?\n)+)", doc)
        snippets += [(owner, textwrap.dedent(block)) for block in blocks]
    return snippets


def test_docstring_snippets_run() -> None:
    """Each code snippet of the API reference runs, given the names its
    docstring speaks of."""
    snippets = docstring_snippets()
    assert snippets
    for owner, code in snippets:

        @attrs.frozen
        class Resized:
            width: int

        @attrs.frozen
        class Match:
            line: str

        @attrs.frozen
        class Resize(isolated_workers.Request[Resized]):
            data: bytes
            width: int

        namespace = {
            "attrs": attrs,
            "Resized": Resized,
            "Match": Match,
            "Resize": Resize,
        }
        namespace |= vars(isolated_workers)
        exec(compile(code, f"<docstring of {owner}>", "exec"), namespace)


def test_reference_documents_every_public_name() -> None:
    """The API reference has an entry for each name the package exports, and
    for the test kit, so that a new name cannot go undocumented."""
    text = (DOCS / "reference.rst").read_text()
    entries = re.findall(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", text, re.MULTILINE)
    exported = [*isolated_workers.__all__, *testing.__all__]
    assert sorted(set(exported) - set(entries)) == []


def test_readme_links_every_page() -> None:
    """The README links every page of the docs, by its path in the repository."""
    links = set(re.findall(r"<(docs/[\w/.-]+\.rst)>`_", README.read_text()))
    pages = {
        str(page.relative_to(ROOT))
        for page in DOCS.rglob("*.rst")
        if page.name != "index.rst" and ":orphan:" not in page.read_text()
    }
    assert sorted(pages - links) == []
    assert sorted(links - pages) == []
