"""The message contract shared by the benchmark host and `echo_worker.py`."""

from __future__ import annotations

import os

import attrs

from isolated_workers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Request,
    Serializer,
    StreamRequest,
    define_messages,
)


@attrs.frozen
class Echo(Request[int]):
    """S1-S3: a tiny request; the worker returns ``x``."""

    x: int


@attrs.frozen
class EchoBytes(Request[bytes]):
    """S4: a large payload; the worker returns ``data``."""

    data: bytes


@attrs.frozen
class Numbers(StreamRequest[int]):
    """bench/stream.py: the worker yields 0 .. ``n`` - 1."""

    n: int


Messages = define_messages(Echo, EchoBytes, Numbers)


def make_serializer() -> Serializer:
    """The serializer named by ``BENCH_SERIALIZER`` (``bench.py --serializer``)."""
    name = os.environ.get("BENCH_SERIALIZER", "json")
    classes = {
        "json": JsonSerializer,
        "msgpack": MsgpackSerializer,
        "pickle": PickleSerializer,
    }
    return classes[name]()
