"""The worker of concepts.py: a handler for each message the host sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

from concepts_messages import CountWords, Ignore, LineCounted, Messages, Words

from isolated_workers import emit, run_worker

ignored: set[str] = set()  # the worker's own state, kept between messages


def words_of(text: str) -> list[str]:
    return [word for word in text.split() if word not in ignored]


async def count_words(msg: CountWords) -> int:
    """Answers a request, and emits an event after each line."""
    lines = msg.text.splitlines()
    total = 0
    for number, line in enumerate(lines, start=1):
        total += len(words_of(line))
        await emit(LineCounted(line=number, of=len(lines)))
    return total


def ignore(msg: Ignore) -> None:
    """Handles a notification: its return value goes nowhere."""
    ignored.add(msg.word)


async def words(msg: Words) -> AsyncIterator[str]:
    """Answers a stream request: an async generator."""
    for word in words_of(msg.text):
        yield word


if __name__ == "__main__":
    # Events are not handled here: the worker sends them, the host handles them.
    run_worker(Messages, {CountWords: count_words, Ignore: ignore, Words: words})
