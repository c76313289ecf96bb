"""A worker built against another version of the test contract.

Compared with ``tests.workers.messages``: ``Echo.value`` is a ``str`` instead of
an ``int``, ``Recall`` is missing, and ``Extra`` exists only here. The other
messages are the shared ones.
"""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import Request, define_messages, run_worker
from tests.workers.messages import (
    Add,
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
    Echo, Add, Fail, Sleep, GetStartup, Remember, Extra, Work, Progress
)


def anything(msg: Any) -> Any:
    return None


if __name__ == "__main__":
    handled = [cls for cls in OtherMessages if cls is not Progress]
    run_worker(OtherMessages, dict.fromkeys(handled, anything))
