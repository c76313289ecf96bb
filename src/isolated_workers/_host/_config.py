"""`WorkerConfig`: every option of a worker, checked once, before anything starts.

`open_worker` and `start_worker` build one and pass it down to the spawner and
the client; so will a pool. It is frozen: one configuration serves every
worker it starts, respawns included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import attrs

from .._errors import WorkerStartupError
from .._policies import ShutdownPolicy, Strategy
from .._registry import MessageRegistry
from .._timeouts import Timeouts
from .._util import DEFAULT_MAX_FRAME_SIZE, current_backend, json_dumps
from .._wire._bootstrap import ALLOCATOR_ENV
from .._wire._codec import unstructure
from .._wire._middleware import Middleware
from .._wire._serializers import JsonSerializer, Serializer
from ._output import OutputMode, check_output_mode
from ._transport import (
    PipeTransport,
    Transport,
    UnixSocketTransport,
    default_transport,
)

__all__ = ["WorkerConfig"]


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """A worker's options, checked and resolved; made by `from_options`."""

    target: str
    messages: MessageRegistry
    #: The command line, the whole environment and the working directory.
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | os.PathLike[str] | None
    #: Variables the worker removes once started (see `ALLOCATOR_ENV`).
    unset_env: tuple[str, ...]
    #: The greeting the worker gets at the handshake.
    hello: bytes
    serializer: Serializer
    timeouts: Timeouts
    policy: ShutdownPolicy
    middleware: tuple[Middleware, ...]
    max_frame_size: int
    output: OutputMode
    transport: Transport
    tx_id_factory: Callable[[], int] | None
    #: The host's callback for each event class the worker may emit.
    on_event: Mapping[type, Callable[[Any], Any]]

    @classmethod
    def from_options(
        cls,
        target: str | os.PathLike[str],
        *,
        messages: MessageRegistry,
        args: Sequence[str] = (),
        python: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        startup_data: Any = None,
        timeouts: Timeouts | float | None = None,
        unexpected_shutdown: ShutdownPolicy | Strategy | None = None,
        middleware: Sequence[Middleware] = (),
        serializer: Serializer | None = None,
        backend: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        output: OutputMode = "inherit",
        tx_id_factory: Callable[[], int] | None = None,
        transport: Transport | None = None,
        on_event: Mapping[type, Callable[[Any], Any]] | None = None,
    ) -> WorkerConfig:
        """Check the options of `open_worker` and resolve their defaults.

        Raises:
            TypeError, ValueError: An option is of the wrong type or value.
            WorkerStartupError: The worker script does not exist.
        """
        if sys.platform == "win32":
            raise NotImplementedError(
                "isolated-workers runs on POSIX systems only for now"
            )
        registry = cast(object, messages)  # checked for callers without types
        if not isinstance(registry, MessageRegistry):
            raise TypeError(
                "messages must be a MessageRegistry made by define_messages()"
            )
        if backend is None:
            backend = current_backend(uvloop=True)
        elif backend not in ("asyncio", "trio", "uvloop"):
            raise ValueError(
                f"backend must be 'asyncio', 'trio' or 'uvloop', not {backend!r}"
            )
        if not 0 < max_frame_size < 2**32:
            raise ValueError("max_frame_size must be between 1 and 2**32 - 1 bytes")
        check_output_mode(output)
        serializer = serializer if serializer is not None else JsonSerializer()
        if transport is None:
            transport = default_transport()
        elif not isinstance(
            cast(object, transport), UnixSocketTransport | PipeTransport
        ):
            raise TypeError(
                "transport must be a UnixSocketTransport or a PipeTransport, "
                f"not {transport!r}"
            )
        callbacks = dict(on_event or {})
        for event_cls, callback in callbacks.items():
            if (
                event_cls not in messages
                or messages.spec_for(event_cls).kind != "event"
            ):
                raise TypeError(
                    f"on_event names {event_cls!r}, which is not an Event of "
                    "the registry"
                )
            if not callable(callback):
                raise TypeError(
                    f"the on_event callback of {event_cls.__qualname__} is not callable"
                )
        target = os.fspath(target)
        interpreter = os.fspath(python) if python is not None else sys.executable
        if target.endswith(".py") or os.sep in target:
            script = Path(cwd or ".", target)
            if not script.is_file():
                raise WorkerStartupError(
                    f"worker script {str(script)!r} does not exist"
                )
            command = [target, *args]
        else:
            command = ["-m", target, *args]
        if isinstance(transport, PipeTransport):
            command = ["-m", "isolated_workers._worker._launcher", *command]
        try:
            hello = json_dumps(
                {
                    "serializer": serializer.name,
                    "messages": messages.fingerprint,
                    "backend": backend,
                    "startup_data": unstructure(startup_data),
                }
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(
                f"startup_data cannot be sent to the worker: {exc}"
            ) from None
        full_env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
        added = {k: v for k, v in ALLOCATOR_ENV.items() if k not in full_env}
        full_env.update(added)
        return cls(
            target=target,
            messages=messages,
            argv=(interpreter, *command),
            env=full_env,
            cwd=cwd,
            unset_env=tuple(sorted(added)),
            hello=hello,
            serializer=serializer,
            timeouts=Timeouts.coerce(timeouts),
            policy=ShutdownPolicy.coerce(unexpected_shutdown),
            middleware=tuple(middleware),
            max_frame_size=max_frame_size,
            output=output,
            transport=transport,
            tx_id_factory=tx_id_factory,
            on_event=MappingProxyType(callbacks),
        )
