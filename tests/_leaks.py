"""Find what a test left behind: open fds, child processes, zombies, socket dirs.

``conftest.py`` takes a `snapshot` before and after every test and fails the test
when `find_leaks` reports anything new (see the reliability spec, section 4).
Tests may call these helpers directly too.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: Prefix of the private directories the library creates for its sockets.
DIR_PREFIX = "isolated-workers-"
#: How long `wait_for_no_leaks` waits for resources to go away (seconds).
PATIENCE = 5.0

_FD_DIR = "/proc/self/fd"


@dataclass(frozen=True)
class Snapshot:
    """The process-wide resources that a test could leak."""

    fds: frozenset[tuple[int, str]]
    """Open file descriptors of this process, as ``(fd, link target)``."""
    procs: frozenset[tuple[int, float]]
    """Descendant processes, as ``(pid, create_time)``, zombies included."""
    zombies: frozenset[tuple[int, float]]
    """The descendants among `procs` that have exited but were not reaped."""
    dirs: frozenset[str]
    """Paths of ``isolated-workers-*`` entries in the temporary directories."""


@dataclass(frozen=True)
class Leaks:
    """What appeared between two snapshots."""

    fds: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    procs: frozenset[tuple[int, float]] = field(default_factory=frozenset)
    zombies: frozenset[tuple[int, float]] = field(default_factory=frozenset)
    dirs: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.fds or self.procs or self.zombies or self.dirs)

    def describe(self) -> str:
        """Return a human-readable list of everything leaked."""
        lines: list[str] = []
        if self.fds:
            lines.append("file descriptors:")
            lines.extend(f"  fd {fd} -> {target}" for fd, target in sorted(self.fds))
        if self.procs or self.zombies:
            lines.append("processes:")
            for pid, _ in sorted(self.procs | self.zombies):
                lines.append(f"  pid {pid}: {_describe_process(pid)}")
        if self.dirs:
            lines.append("directories:")
            lines.extend(f"  {path}" for path in sorted(self.dirs))
        return "\n".join(lines)


def _describe_process(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            status = proc.status()
            try:
                cmdline = " ".join(proc.cmdline())
            except psutil.Error:  # e.g. ZombieProcess: the cmdline is gone
                cmdline = ""
            name = proc.name()
    except psutil.NoSuchProcess:
        return "(exited since)"
    except psutil.Error as exc:
        return f"(unreadable: {exc!r})"
    return f"[{status}] {cmdline or name}"


def open_fds() -> frozenset[tuple[int, str]]:
    """This process's open file descriptors and what each points at."""
    fds: set[tuple[int, str]] = set()
    for name in os.listdir(_FD_DIR):
        # FileNotFoundError: the fd that listdir itself used, closed by now.
        with contextlib.suppress(FileNotFoundError):
            fds.add((int(name), os.readlink(f"{_FD_DIR}/{name}")))
    return frozenset(fds)


def _children(pid: int) -> list[psutil.Process]:
    """The direct children of ``pid``, from each of its threads' ``children``
    file in /proc: far cheaper than psutil's scan of every process."""
    pids: list[str] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            path = f"/proc/{pid}/task/{tid}/children"
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                pids += Path(path).read_text().split()
    found: list[psutil.Process] = []
    for child in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(psutil.Process(int(child)))
    return found


def _descendants() -> tuple[frozenset[tuple[int, float]], frozenset[tuple[int, float]]]:
    procs: set[tuple[int, float]] = set()
    zombies: set[tuple[int, float]] = set()
    pending = _children(os.getpid())
    while pending:
        child = pending.pop()
        try:
            key = (child.pid, child.create_time())
            is_zombie = child.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # exited and reaped while we looked
            continue
        procs.add(key)
        if is_zombie:
            zombies.add(key)
        else:
            pending.extend(_children(child.pid))
    return frozenset(procs), frozenset(zombies)


def _temp_entries(temp_dirs: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for base in temp_dirs:
        with contextlib.suppress(OSError):
            found.update(str(p) for p in Path(base).glob(f"{DIR_PREFIX}*"))
    return frozenset(found)


def snapshot(temp_dirs: Sequence[str] | None = None) -> Snapshot:
    """Record this process's fds, descendants and socket dirs.

    Args:
      temp_dirs: where to look for ``isolated-workers-*`` entries; by default
        `tempfile.gettempdir`.
    """
    gc.collect()  # close what only garbage still holds
    if temp_dirs is None:
        temp_dirs = [tempfile.gettempdir()]
    procs, zombies = _descendants()
    return Snapshot(
        fds=open_fds(), procs=procs, zombies=zombies, dirs=_temp_entries(temp_dirs)
    )


def find_leaks(before: Snapshot, after: Snapshot) -> Leaks:
    """Return what *after* holds that *before* did not.

    An fd that is open in both with the same link target is not a leak; neither is
    anything that went away.
    """
    return Leaks(
        fds=after.fds - before.fds,
        procs=after.procs - before.procs,
        zombies=after.zombies - before.zombies,
        dirs=after.dirs - before.dirs,
    )


def wait_for_no_leaks(
    before: Snapshot,
    *,
    patience: float | None = None,
    temp_dirs: Sequence[str] | None = None,
) -> Leaks:
    """Poll until nothing new is left over since *before*, or *patience* runs out.

    Processes take a moment to exit and be reaped after a kill, so a single look
    would be flaky. Returns the leaks still present at the deadline (empty if none).
    """
    deadline = time.monotonic() + (PATIENCE if patience is None else patience)
    delay = 0.001
    while True:
        reap_dead_group_members()
        leaks = find_leaks(before, snapshot(temp_dirs))
        if not leaks or time.monotonic() >= deadline:
            return leaks
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def reap_dead_group_members() -> None:
    """Reap the zombies this subreaper adopted from a worker's process group.

    The library kills a worker's whole group; a member other than the worker
    itself (a Trio worker runs ``ldconfig`` when it first starts a thread) is
    then reparented here when it dies, where init would reap it outside the
    tests. It is dead, so it is no leak. A worker, the leader of its own group,
    is never reaped here: that is the library's job.
    """
    own = os.getpgrp()
    for child in _children(os.getpid()):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                continue
            group = os.getpgid(child.pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
        if group not in (own, child.pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


def kill_and_reap(procs: Iterable[tuple[int, float]], *, patience: float = 5.0) -> None:
    """SIGKILL the given ``(pid, create_time)`` processes and reap those we can.

    A process is only signalled if its create time still matches, so a recycled
    pid is left alone. Children of killed processes re-parent to this process
    (it is a child subreaper during the tests), so they are reaped here too.
    """
    remaining: set[int] = set()
    for pid, created in procs:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() != created:
                continue
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            pass
        remaining.add(pid)
    deadline = time.monotonic() + patience
    while remaining and time.monotonic() < deadline:
        for pid in list(remaining):
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (yet): wait until it is gone
                if not psutil.pid_exists(pid):
                    remaining.discard(pid)
                continue
            if reaped == pid:
                remaining.discard(pid)
        if remaining:
            time.sleep(0.01)
