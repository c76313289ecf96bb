"""A worker built against another version of the test contract.

Compared with ``tests.workers.messages``: ``Echo.value`` is a ``str`` instead of
an ``int``, ``Recall`` is missing, and ``Extra`` exists only here. The other
messages are the shared ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs

from isolated_workers import Request, define_messages, run_worker
from tests.workers.messages import (
    Add,
    Count,
    CountState,
    Echoed,
    Fail,
    GetStartup,
    Progress,
    Remember,
    Sleep,
    Work,
)


@attrs.frozen
class Echo(Request[Echoed]):
    value: str
    data: bytes = b""


@attrs.frozen
class Extra(Request[int]):
    value: int


OtherMessages = define_messages(
    Echo,
    Add,
    Fail,
    Sleep,
    GetStartup,
    Remember,
    Extra,
    Work,
    Progress,
    Count,
    CountState,
)


def anything(msg: Any) -> Any:
    return None


async def nothing(msg: Any) -> AsyncIterator[int]:
    for _ in ():
        yield 0


if __name__ == "__main__":
    handlers: dict[type, Any] = {
        cls: anything for cls in OtherMessages if cls not in (Progress, Count)
    }
    handlers[Count] = nothing
    run_worker(OtherMessages, handlers)
