"""A worker with a handler for every message plus one for a stray class."""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import Request, run_worker
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import Messages


@attrs.frozen
class Stray(Request[int]):
    """A request class that is not in the shared registry."""

    value: int


def anything(msg: Any) -> Any:
    return None


if __name__ == "__main__":
    run_worker(Messages, {**HANDLERS, Stray: anything})
