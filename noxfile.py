"""Development tasks.

``python -m nox`` runs the default sessions (lint, typing, tests, docs) with the
interpreter that runs nox; ``python -m nox -s tests -- -k codec`` passes arguments
through to pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.needs_version = ">=2025.2.9"  # nox.project.dependency_groups
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "tests", "contract", "docs", "package"]

PYPROJECT = nox.project.load_toml("pyproject.toml")

#: What the ``tests`` session installs for each value of ``extras``.
EXTRAS = {"trio": ".[trio,msgpack]", "none": ".[msgpack]"}
#: Left out of the ``test`` group when Trio must be absent.
TRIO_PACKAGES = frozenset({"trio", "pytest-trio"})


def group(name: str, *, without: frozenset[str] = frozenset()) -> list[str]:
    """Return the requirements of one ``[dependency-groups]`` entry.

    pip 23 has no ``--group`` option, hence this helper.
    """
    return [
        req
        for req in nox.project.dependency_groups(PYPROJECT, name)
        if canonicalize_name(Requirement(req).name) not in without
    ]


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(name="typing")
def typing_(session: nox.Session) -> None:
    """Type-check with mypy and pyright and verify the public API is typed."""
    session.install(EXTRAS["trio"], *group("typing"))
    session.run("mypy")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "isolated_workers", "--ignoreexternal")


def find_python(minor: int) -> str | None:
    """A Python 3.``minor`` on this machine that runs, if there is one (on the
    PATH, or pyenv's)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python3.{minor}")]
    candidates += sorted(map(str, root.glob(f"versions/3.{minor}.*/bin/python")))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


#: Where the suite runs whole: here without Trio, on a Python with eager tasks.
NO_TRIO_PYTHON = 12
#: The other Pythons the package claims, where the contract tests run with Trio.
CONTRACT_PYTHONS = (12, 13)
#: The tests of what crosses the process boundary, on every pairing.
CONTRACT_TESTS = [
    "tests/test_host.py",
    "tests/test_client.py",
    "tests/test_pool.py",
    "tests/test_run_sync.py",
    "tests/test_streams.py",
    "tests/test_events.py",
    "tests/test_import_light.py",
]
#: One test runner per core, up to four: the tests wait on workers more than
#: they compute, and each runner has its own leak check.
PARALLEL = ["-n", "auto", "--maxprocesses=4", "--dist=worksteal"]


@nox.session
@nox.parametrize(
    ("python", "extras"),
    [(None, "trio"), (find_python(NO_TRIO_PYTHON), "none")],
    ids=["with-trio", f"3.{NO_TRIO_PYTHON}-without-trio"],
)
def tests(session: nox.Session, extras: str) -> None:
    """Run the test suite, with Trio installed or without it (asyncio only).

    The run without Trio takes Python 3.12 where the machine has one: asyncio
    there starts the tasks of async handlers eagerly, so both of the worker's
    paths are tested.
    """
    without = frozenset() if extras == "trio" else TRIO_PACKAGES
    session.install(EXTRAS[extras], *group("test", without=without))
    if extras == "none":
        # A leftover Trio would silently turn this run into the other variant.
        session.run(
            "python",
            "-c",
            "import importlib.util as u, sys;"
            "sys.exit('trio is installed' if u.find_spec('trio') else 0)",
        )
    session.run("python", "-m", "pytest", *PARALLEL, *session.posargs)


@nox.session
@nox.parametrize(
    ("python", "version"),
    [(find_python(minor), f"3.{minor}") for minor in CONTRACT_PYTHONS],
    ids=[f"3.{minor}" for minor in CONTRACT_PYTHONS],
)
def contract(session: nox.Session, version: str) -> None:
    """Run the contract tests on another Python the package claims; skipped,
    saying so, where the machine does not have it."""
    if session.python is None:
        session.skip(f"Python {version} is not on this machine")
    session.install(EXTRAS["trio"], *group("test"))
    session.run("python", "-m", "pytest", *PARALLEL, *CONTRACT_TESTS, *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, and check them with twine."""
    session.install("build", "twine")
    outdir = session.create_tmp()
    session.run("python", "-m", "build", "--outdir", outdir)
    session.run("twine", "check", "--strict", *Path(outdir).glob("*"))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs, turning every warning into an error."""
    session.install(EXTRAS["trio"], *group("docs"))
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )
