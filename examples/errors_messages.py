"""The contract of examples/errors.py: a small stock keeper whose handlers fail
in the ways the error handling guide describes."""

from __future__ import annotations

import attrs

from isolated_workers import Notification, Request, define_messages


class OutOfStock(Exception):
    """An error of the application's own.

    It reaches the host as a `RemoteError`, not as an `OutOfStock`: only
    built-in exception types keep their type across the boundary. The host
    sees its qualified name, ``errors_messages.OutOfStock``, and its ``code``.
    """

    code = "out-of-stock"


@attrs.frozen
class Reserve(Request[int]):
    """Take ``quantity`` of ``item`` from the stock; answer how many are left."""

    item: str
    quantity: int


@attrs.frozen
class Count(Request[int]):
    """How many of ``item`` are in stock?"""

    item: str


@attrs.frozen
class Restock(Notification):
    """Add ``quantity`` of ``item`` to the stock; nobody waits for it."""

    item: str
    quantity: int


Messages = define_messages(Reserve, Count, Restock)
