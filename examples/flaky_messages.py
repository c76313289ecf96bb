"""The contract shared by crash_recovery.py (the host) and flaky_worker.py."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class FlakyConfig:
    """Startup data: where the worker keeps notes that outlive it, and the
    input that makes it crash."""

    state_dir: str
    poison: str


@attrs.frozen
class Digest(Request[str]):
    """A short SHA-256 digest of ``text``: safe to compute twice."""

    text: str


@attrs.frozen
class Record(Request[int]):
    """Append ``entry`` to a journal and return its line count: not safe to
    run twice, since a second run would append the entry again."""

    entry: str


Messages = define_messages(Digest, Record)
