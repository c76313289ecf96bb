"""A worker built against another version of the test contract.

Compared with ``tests.workers.messages``: ``Echo.value`` is a ``str`` instead of
an ``int``, ``Recall`` is missing, and ``Extra`` exists only here. The other
messages are the shared ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs

from isolated_workers import Event, Request, StreamRequest, define_messages, run_worker
from tests.workers.messages import Echoed, Messages


@attrs.frozen
class Echo(Request[Echoed]):
    value: str
    data: bytes = b""


@attrs.frozen
class Extra(Request[int]):
    value: int


# Built from the shared registry, so that it differs in these three only however
# the shared one grows.
OtherMessages = define_messages(
    *(cls for cls in Messages if cls.__name__ not in ("Echo", "Recall")),
    Echo,
    Extra,
)


def anything(msg: Any) -> Any:
    return None


async def nothing(msg: Any) -> AsyncIterator[int]:
    for _ in ():
        yield 0


if __name__ == "__main__":
    handlers: dict[type, Any] = {}
    for cls in OtherMessages:
        if issubclass(cls, StreamRequest):
            handlers[cls] = nothing
        elif not issubclass(cls, Event):
            handlers[cls] = anything
    run_worker(OtherMessages, handlers)
