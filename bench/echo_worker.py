"""The benchmark's worker: echoes `Echo` and `EchoBytes`, streams `Numbers`.

Run by the host as a script (by path). Handlers are sync, the cheapest kind;
``--async`` on the command line makes them async (each request then runs as a
task of its own, of the backend's kind).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

from bench_messages import Echo, EchoBytes, Messages, Numbers, make_serializer

from isolated_workers import run_worker


def echo(msg: Echo) -> int:
    return msg.x


def echo_bytes(msg: EchoBytes) -> bytes:
    return msg.data


async def echo_async(msg: Echo) -> int:
    return msg.x


async def echo_bytes_async(msg: EchoBytes) -> bytes:
    return msg.data


async def numbers(msg: Numbers) -> AsyncIterator[int]:
    for i in range(msg.n):
        yield i


def main() -> None:
    if "--async" in sys.argv[1:]:
        handlers: dict[type, Any] = {Echo: echo_async, EchoBytes: echo_bytes_async}
    else:
        handlers = {Echo: echo, EchoBytes: echo_bytes}
    handlers[Numbers] = numbers
    run_worker(Messages, handlers, serializer=make_serializer())


if __name__ == "__main__":
    main()
