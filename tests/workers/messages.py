"""The message contract the test workers share with the tests."""

from __future__ import annotations

import attrs

from isolated_workers import Notification, Request, define_messages


@attrs.frozen
class Echoed:
    value: int
    data: bytes = b""


@attrs.frozen
class Echo(Request[Echoed]):
    value: int
    data: bytes = b""


@attrs.frozen
class Add(Request[int]):
    a: int
    b: int


@attrs.frozen
class Fail(Request[None]):
    kind: str
    text: str = "boom"


@attrs.frozen
class Sleep(Request[str]):
    seconds: float
    marker: str = ""


@attrs.frozen
class GetStartup(Request[dict[str, object]]):
    pass


@attrs.frozen
class Remember(Notification):
    value: int


@attrs.frozen
class Recall(Request[list[int]]):
    pass


Messages = define_messages(Echo, Add, Fail, Sleep, GetStartup, Remember, Recall)
