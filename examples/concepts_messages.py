"""The contract of concepts.py (the host) and concepts_worker.py (the worker):
one message of each of the four kinds."""

from __future__ import annotations

import attrs

from isolated_workers import (
    Event,
    Notification,
    Request,
    StreamRequest,
    define_messages,
)


@attrs.frozen
class CountWords(Request[int]):
    """A request: the host waits for its result, an ``int``."""

    text: str


@attrs.frozen
class Ignore(Notification):
    """A notification: the worker skips ``word`` from now on. Nothing comes back."""

    word: str


@attrs.frozen
class Words(StreamRequest[str]):
    """A stream request: the worker answers with the words of ``text``, one at
    a time."""

    text: str


@attrs.frozen
class LineCounted(Event):
    """An event: the worker tells its host how far it got, while it works."""

    line: int
    of: int


Messages = define_messages(CountWords, Ignore, Words, LineCounted)
