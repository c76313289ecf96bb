"""The leak check in ``conftest.py`` notices what a test leaves behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

from tests import _leaks

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _spawn_sleep() -> int:
    sleep = shutil.which("sleep")
    assert sleep is not None
    return os.posix_spawn(sleep, [sleep, "60"], dict(os.environ))


def test_helpers_report_fd_process_and_dir() -> None:
    """find_leaks lists a new pipe, a new ``sleep`` child and a new socket dir."""
    before = _leaks.snapshot()
    read_fd, write_fd = os.pipe()
    pid = _spawn_sleep()
    child = {(pid, psutil.Process(pid).create_time())}
    sock_dir = tempfile.mkdtemp(prefix=_leaks.DIR_PREFIX)
    try:
        leaks = _leaks.find_leaks(before, _leaks.snapshot())
        assert {fd for fd, _ in leaks.fds} == {read_fd, write_fd}
        assert all(target.startswith("pipe:") for _, target in leaks.fds)
        assert leaks.procs == child
        assert leaks.dirs == {sock_dir}
        text = leaks.describe()
        assert f"fd {read_fd} -> pipe:" in text
        assert f"pid {pid}: " in text
        assert "sleep 60" in text
        assert sock_dir in text
    finally:
        os.close(read_fd)
        os.close(write_fd)
        os.rmdir(sock_dir)
        _leaks.kill_and_reap(child)
    assert not psutil.pid_exists(pid)
    assert not _leaks.wait_for_no_leaks(before, patience=0)


def test_fixture_fails_a_leaking_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaking test errors in teardown with a report and its child is killed."""
    pid_file = pytester.path / "pid"
    pytester.makeconftest(
        """
        from tests import _leaks
        from tests.conftest import check_leaks

        _leaks.PATIENCE = 0.2
        """
    )
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            import os, shutil

            def test_clean():
                os.close(os.dup(0))

            def test_leaky():
                os.pipe()
                sleep = shutil.which("sleep")
                pid = os.posix_spawn(sleep, [sleep, "60"], dict(os.environ))
                with open({str(pid_file)!r}, "w") as f:
                    f.write(str(pid))
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaky*",
            "the test leaked resources:",
            "  fd * -> pipe:*",
            "  pid *sleep 60",
        ]
    )
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid), "the leaked child was not killed"
