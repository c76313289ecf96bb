"""The contract shared by middleware.py (the host) and middleware_worker.py."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class Slugify(Request[str]):
    """The URL slug of a title: "Hello, World!" becomes "hello-world"."""

    title: str


Messages = define_messages(Slugify)
