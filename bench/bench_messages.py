"""The message contract shared by the benchmark host and `echo_worker.py`."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class Echo(Request[int]):
    """S1-S3: a tiny request; the worker returns ``x``."""

    x: int


@attrs.frozen
class EchoBytes(Request[bytes]):
    """S4: a large payload; the worker returns ``data``."""

    data: bytes


Messages = define_messages(Echo, EchoBytes)
