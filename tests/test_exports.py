"""The public façade: ``isolated_workers.__all__``, module names, ``py.typed``."""

from __future__ import annotations

import enum
import importlib
import importlib.resources
import inspect
import types
import typing
from typing import Any

import pytest

import isolated_workers

pytestmark = pytest.mark.pure

# API.md sections 1-10.
REQUIRED = [
    "Request",
    "Notification",
    "define_messages",
    "MessageRegistry",
    "run_worker",
    "serve_worker",
    "get_startup_data",
    "open_worker",
    "start_worker",
    "WorkerClient",
    "WorkerState",
    "Timeouts",
    "WorkerError",
    "RemoteError",
    "WorkerStartupError",
    "WorkerTimeoutError",
    "WorkerCrashedError",
    "WorkerClosedError",
    "ProtocolError",
    "SerializerMismatchError",
    "Serializer",
    "JsonSerializer",
    "Exited",
    "ConnectionLost",
    "ConnectionClosed",
    "Envelope",
    "Direction",
    "Middleware",
    "MsgpackSerializer",
    "PickleSerializer",
    "UnixSocketTransport",
    "PipeTransport",
    "open_worker_pool",
    "WorkerPool",
    "WorkerStats",
    "Event",
    "emit",
    "StreamRequest",
]


def _is_alias(obj: Any) -> bool:
    """Type aliases (``A | B``, ``Literal[...]``, ``Callable[...]``) cannot carry
    a ``__module__`` of their own."""
    return isinstance(obj, types.UnionType) or typing.get_origin(obj) is not None


def test_all_is_sorted_and_unique() -> None:
    names = isolated_workers.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)


def test_every_name_in_all_is_importable() -> None:
    module = importlib.import_module("isolated_workers")
    for name in isolated_workers.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, Any] = {}
        exec(f"from isolated_workers import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from isolated_workers import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(isolated_workers.__all__)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_name_is_exported(name: str) -> None:
    assert name in isolated_workers.__all__
    assert getattr(isolated_workers, name) is not None


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in isolated_workers.__all__
        if not _is_alias(getattr(isolated_workers, n))
    ],
)
def test_public_objects_claim_the_package_as_their_module(name: str) -> None:
    assert getattr(isolated_workers, name).__module__ == "isolated_workers"


def test_shutdown_reason_alias() -> None:
    # The one public type alias: its members are public classes.
    assert isolated_workers.ShutdownReason == (
        isolated_workers.Exited
        | isolated_workers.ConnectionLost
        | isolated_workers.ConnectionClosed
    )


def test_public_names_have_no_private_module_in_repr() -> None:
    for name in isolated_workers.__all__:
        obj = getattr(isolated_workers, name)
        if isinstance(obj, type):
            assert "isolated_workers._" not in repr(obj), name


def test_worker_state_members() -> None:
    state = isolated_workers.WorkerState
    assert issubclass(state, enum.Enum)
    names = {member.name for member in state}
    assert {"STARTING", "READY", "CLOSING", "CLOSED", "CRASHED"} <= names


def test_no_private_names_exported() -> None:
    assert not [n for n in isolated_workers.__all__ if n.startswith("_")]


def test_py_typed_ships() -> None:
    marker = importlib.resources.files("isolated_workers") / "py.typed"
    assert marker.is_file()


def test_worker_options_are_the_options_of_open_worker() -> None:
    """`WorkerOptions` (the ``**options`` of start_worker and open_worker_pool)
    has every keyword argument of open_worker after ``messages``, with the same
    types, and nothing else; the reference says so."""
    parameters = inspect.signature(isolated_workers.open_worker).parameters
    options = {
        name: parameter.annotation
        for name, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "messages"
    }
    # Both are strings under ``from __future__ import annotations``: compare
    # them as written.
    hints = {
        name: getattr(hint, "__forward_arg__", hint)
        for name, hint in isolated_workers.WorkerOptions.__annotations__.items()
    }
    assert options == hints
