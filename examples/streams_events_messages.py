"""The contract of examples/streams_events.py and its worker: a stream request,
answered with many items, and an event the worker sends while it works."""

from __future__ import annotations

import attrs

from isolated_workers import Event, StreamRequest, define_messages

#: The largest number the worker checks; a request past it fails there.
LARGEST = 10_000_000


@attrs.frozen
class Primes(StreamRequest[int]):
    """Every prime in ``range(start, below)``, in order, one item each. The
    worker checks the numbers ``chunk`` at a time."""

    below: int
    start: int = 0
    chunk: int = 1000


@attrs.frozen
class Checked(Event):
    """Progress, sent by the worker after each chunk: the numbers below
    ``upto`` are checked, of the ``below`` asked for."""

    upto: int
    below: int


Messages = define_messages(Primes, Checked)
