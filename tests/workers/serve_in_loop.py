"""A worker that runs its own event loop and serves inside it with serve_worker."""

from __future__ import annotations

import sys

import anyio

from isolated_workers import serve_worker
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import GetStartup, Messages


async def which_loop(msg: GetStartup) -> dict[str, object]:
    return {"loop": "trio" if "trio" in sys.modules else "asyncio"}


async def main() -> None:
    # No get_startup_data() before this: serve_worker performs the handshake.
    await serve_worker(Messages, {**HANDLERS, GetStartup: which_loop})


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1])
