"""One message of each kind: a request, a notification, a stream and events.

Run it from anywhere: ``python examples/concepts.py`` (``--trio`` for Trio).
"""

from __future__ import annotations

from pathlib import Path

from backend_option import run
from concepts_messages import CountWords, Ignore, LineCounted, Messages, Words

from isolated_workers import open_worker

WORKER = Path(__file__).with_name("concepts_worker.py")
TEXT = "the cat sat on the mat\nthe dog ate the cat"


def line_counted(event: LineCounted) -> None:
    """Called on the host for each LineCounted event the worker emits."""
    print(f"  event: line {event.line} of {event.of} counted")


async def main() -> None:
    async with open_worker(
        WORKER, messages=Messages, on_event={LineCounted: line_counted}
    ) as worker:
        # A request: send() waits for the result, an int as CountWords says.
        count = await worker.send(CountWords(TEXT))
        print(f"request: {count} words")

        # A notification: send() returns None as soon as it is written.
        await worker.send(Ignore("the"))
        print("notification: sent; no reply")

        # Sent after the notification, this request sees what it changed.
        count = await worker.send(CountWords(TEXT))
        print(f"request: {count} words, without 'the'")

        # A stream request: the items come as the worker yields them.
        async with worker.stream(Words(TEXT)) as items:
            print("stream:", [word async for word in items])


if __name__ == "__main__":
    run(main)
