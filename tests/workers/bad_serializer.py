"""A worker that uses a serializer named ``"json2"`` instead of the default.

`Json2Serializer` is imported by the tests too, to give the host the odd one.
"""

from __future__ import annotations

from isolated_workers import JsonSerializer


class Json2Serializer(JsonSerializer):
    """JSON under another name: host and worker must notice the difference."""

    name = "json2"


if __name__ == "__main__":
    from isolated_workers import run_worker
    from tests.workers.echo_handlers import HANDLERS
    from tests.workers.messages import Messages

    run_worker(Messages, HANDLERS, serializer=Json2Serializer())
