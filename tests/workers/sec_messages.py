"""The contract of ``sec_introspect``: one request asking the worker about itself."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class Introspection:
    """What a worker process sees of itself."""

    pid: int
    #: Raw ``/proc/self/cmdline`` (NUL-separated arguments).
    cmdline: bytes
    #: Raw ``/proc/self/environ``: the environment the process was started with.
    proc_environ: bytes
    #: ``os.environ`` when the request is handled.
    environ: dict[str, str]
    #: ``/proc/self/fd``: fd number -> link target.
    fds: dict[str, str]
    #: The fd of the worker's connection to its host.
    socket_fd: int
    #: The fd of the worker's bootstrap pipe (its read end).
    pipe_fd: int
    #: The startup data the worker received, as JSON text.
    startup_data: str


@attrs.frozen
class Introspect(Request[Introspection]):
    pass


Messages = define_messages(Introspect)
