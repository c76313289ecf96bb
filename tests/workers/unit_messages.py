"""The contract of ``tests.workers.unit_modules``: which modules a worker loaded."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class LoadedModules(Request[list[str]]):
    """Which of ``names`` the worker process has imported."""

    names: list[str]


@attrs.frozen
class WorkerInfo(Request[dict[str, str]]):
    """The worker's event loop library."""


Messages = define_messages(LoadedModules, WorkerInfo)
