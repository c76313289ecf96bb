"""`run_sync`: a module-level function called in a worker, with no message class.

The host names the function by module and qualified name; the worker imports
it. Arguments and the result cross through the serializer like a message's
fields, structured by the function's own annotations where they name types
the codec carries (attrs classes, say), and left as plain data elsewhere.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

import attrs

from ._messages import Request
from ._registry import define_messages
from ._wire._codec import Structurer, structurer_for
from ._wire._serializers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
)

__all__ = [
    "BUILTIN",
    "BUILTIN_SERIALIZERS",
    "GENERIC_WORKER",
    "PATH_ENV",
    "CallFunction",
    "call_function",
    "function_reference",
]

#: The worker of a pool opened without a target, and the variable that hands
#: it the host's import path.
GENERIC_WORKER = "isolated_workers._worker._generic"
PATH_ENV = "ISOLATED_WORKERS_PATH"
#: The serializers the built-in worker can take on: the library's own, by name.
BUILTIN_SERIALIZERS: dict[str, type[Serializer]] = {
    "json": JsonSerializer,
    "msgpack": MsgpackSerializer,
    "pickle": PickleSerializer,
}


@attrs.frozen
class CallFunction(Request[Any]):
    """Call ``module.qualname(*args)`` in the worker; answer its result."""

    # The name errors and middleware show for a run_sync call.
    message_type = "isolated_workers.run_sync"

    module: str
    qualname: str
    args: list[Any]


#: Messages every worker understands, beside its own registry's.
BUILTIN = define_messages(CallFunction)


def function_reference(function: Callable[..., Any]) -> tuple[str, str]:
    """``function``'s module and qualified name, checked on the host.

    Raises:
        TypeError: A worker could not import ``function`` by those names: it
            is a lambda, a closure, defined in ``__main__``, not a function,
            or async.
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname:
        raise TypeError(f"run_sync needs a function, not {function!r}")
    where = f"{module}.{qualname}"
    if inspect.iscoroutinefunction(function):
        raise TypeError(
            f"{where} is async; run_sync calls sync functions "
            "(define a message for an async handler)"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(
            f"{where} is a lambda or a closure, which a worker cannot import; "
            "run_sync needs a function defined at module level"
        )
    if module == "__main__":
        raise TypeError(
            f"{qualname} is defined in __main__, which a worker cannot import; "
            "move it to a module"
        )
    try:
        found = _resolve(sys.modules[module], qualname)
    except (KeyError, AttributeError):
        found = None
    if found is not function:
        raise TypeError(
            f"{where} does not name this function (a decorator may have "
            "replaced it), so a worker could not import it"
        )
    return module, qualname


def _resolve(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def call_function(message: CallFunction) -> Any:
    """The worker's handler of `CallFunction`."""
    function = _resolve(importlib.import_module(message.module), message.qualname)
    positional, rest = argument_structurers(function)
    args: list[Any] = []
    for i, arg in enumerate(message.args):
        structure = positional[i] if i < len(positional) else rest
        args.append(structure(arg, f"argument {i}") if structure else arg)
    return function(*args)


@functools.cache
def argument_structurers(
    function: Callable[..., Any],
) -> tuple[list[Structurer | None], Structurer | None]:
    """A structurer for each positional parameter, and one for ``*args``,
    where the annotation names a type the codec carries (else `None`)."""
    hints = _hints(function)
    positional: list[Structurer | None] = []
    rest: Structurer | None = None
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some built-ins have none: args stay plain
        return positional, rest
    for parameter in parameters:
        if parameter.kind in (
            parameter.POSITIONAL_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional.append(_structurer(hints.get(parameter.name)))
        elif parameter.kind is parameter.VAR_POSITIONAL:
            rest = _structurer(hints.get(parameter.name))
    return positional, rest


@functools.cache
def result_structurer(function: Callable[..., Any]) -> Structurer | None:
    """How to structure ``function``'s result on the host, by its annotation."""
    return _structurer(_hints(function).get("return"))


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: the data stays plain
        return {}


def _structurer(annotation: Any) -> Structurer | None:
    if annotation is None:
        return None
    try:
        return structurer_for(annotation)
    except TypeError:  # not a type the codec carries: left as plain data
        return None
