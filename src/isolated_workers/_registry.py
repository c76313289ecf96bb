"""`define_messages` and the immutable `MessageRegistry` it returns."""

from __future__ import annotations

import enum
import sys
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import attrs

from ._messages import Event, Notification, Request, StreamRequest
from ._wire._codec import Structurer, structurer_for

__all__ = ["MessageRegistry", "MessageSpec", "define_messages", "wire_name"]

Kind = Literal["request", "notification", "event", "stream"]


@attrs.frozen
class MessageSpec:
    """What the registry knows of one message class."""

    cls: type
    name: str
    kind: Kind
    result_type: Any
    structure: Structurer
    structure_result: Structurer | None


class MessageRegistry:
    """The message contract shared by host and worker; made by `define_messages`.

    Iterating yields the message classes in definition order;
    ``registry["Resize"]`` looks a class up by wire name; ``"Resize" in
    registry`` (or ``Resize in registry``) tells whether it is registered.
    """

    __slots__ = ("_by_class", "_by_name", "_fingerprint")

    def __init__(self, specs: list[MessageSpec]) -> None:
        self._by_name = {spec.name: spec for spec in specs}
        self._by_class = {spec.cls: spec for spec in specs}
        self._fingerprint = {spec.name: _describe(spec) for spec in specs}

    def __iter__(self) -> Iterator[type]:
        return iter(self._by_class)

    def __len__(self) -> int:
        return len(self._by_class)

    def __getitem__(self, name: str) -> type:
        return self._by_name[name].cls

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._by_name
        return isinstance(item, type) and item in self._by_class

    def __repr__(self) -> str:
        return f"MessageRegistry({', '.join(self._by_name)})"

    def result_type(self, cls: type) -> Any:
        """The declared result type of request class ``cls`` (`None` for others)."""
        return self.spec_for(cls).result_type

    def is_request(self, cls: type) -> bool:
        """Whether ``cls`` is a request (it has a result) rather than a notification."""
        return self.spec_for(cls).kind == "request"

    def spec_for(self, cls: type) -> MessageSpec:
        try:
            return self._by_class[cls]
        except KeyError:
            raise KeyError(f"{cls.__qualname__} is not in {self!r}") from None

    def spec_named(self, name: str) -> MessageSpec | None:
        return self._by_name.get(name)

    @property
    def fingerprint(self) -> dict[str, str]:
        """A description of every message, compared at the handshake."""
        return dict(self._fingerprint)

    def differences(self, other: dict[str, str]) -> list[str]:
        """Names of the messages that differ from another side's fingerprint."""
        names = self._fingerprint.keys() | other.keys()
        return sorted(n for n in names if self._fingerprint.get(n) != other.get(n))


def define_messages(*classes: type) -> MessageRegistry:
    """Register message classes as the contract between host and worker.

    Args:
        *classes: attrs classes deriving from `Request` or `Notification`.

    Returns:
        An immutable `MessageRegistry`.

    Raises:
        TypeError: A class is not an attrs class, derives from neither base,
            has a result or field type that cannot be resolved or carried, or
            shares its wire name with another class.
    """
    specs: list[MessageSpec] = []
    seen: dict[str, type] = {}
    for cls in classes:
        spec = _spec_for(cls)
        if spec.name in seen:
            raise TypeError(
                f"{cls.__qualname__} and {seen[spec.name].__qualname__} share the "
                f"wire name {spec.name!r}; set message_type on one of them"
            )
        seen[spec.name] = cls
        specs.append(spec)
    return MessageRegistry(specs)


def wire_name(cls: type) -> str:
    """The name a message class travels under: its ``message_type``, else its
    class name."""
    name = cls.__dict__.get("message_type")  # not inherited: names must be unique
    return name if isinstance(name, str) and name else cls.__name__


def _spec_for(cls: object) -> MessageSpec:
    if not isinstance(cls, type) or not attrs.has(cls):
        raise TypeError(
            f"{cls!r} is not an attrs class; decorate it with @attrs.frozen"
        )
    name = wire_name(cls)
    try:
        structure = structurer_for(cls)  # checks every type inside it too
    except TypeError as exc:
        raise TypeError(f"{cls.__qualname__}: {exc}") from None
    if Request in cls.__mro__ or StreamRequest in cls.__mro__:
        kind: Kind = "request" if Request in cls.__mro__ else "stream"
        result_type = _result_type(cls, Request if kind == "request" else StreamRequest)
        try:
            structure_result = structurer_for(result_type)
        except TypeError as exc:
            raise TypeError(f"result type of {cls.__qualname__}: {exc}") from None
        return MessageSpec(cls, name, kind, result_type, structure, structure_result)
    if Notification in cls.__mro__:
        return MessageSpec(cls, name, "notification", None, structure, None)
    if Event in cls.__mro__:
        return MessageSpec(cls, name, "event", None, structure, None)
    raise TypeError(
        f"{cls.__qualname__} derives from none of Request[...], Notification and Event"
    )


def _result_type(cls: type, generic: type) -> Any:
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            if typing.get_origin(base) is generic:
                (arg,) = typing.get_args(base)
                return _resolve(arg, klass)
    raise TypeError(
        f"{cls.__qualname__} must name its result type: {generic.__name__}[ResultType]"
    )


def _resolve(tp: Any, owner: type) -> Any:
    if isinstance(tp, str):
        tp = typing.ForwardRef(tp)
    if isinstance(tp, typing.ForwardRef) or typing.get_args(tp):
        namespace = vars(sys.modules[owner.__module__])
        try:
            # A throwaway class's annotation lets get_type_hints resolve nested refs.
            return typing.get_type_hints(
                type("_", (), {"__annotations__": {"r": tp}}), namespace
            )["r"]
        except Exception as exc:
            raise TypeError(
                f"cannot resolve the result type {tp!r} of {owner.__qualname__}: {exc}"
            ) from exc
    return tp


def _describe(spec: MessageSpec) -> str:
    seen: set[type] = set()
    fields = _describe_fields(spec.cls, seen)
    answered = spec.kind in ("request", "stream")
    result = f"->{_type_name(spec.result_type, seen)}" if answered else ""
    return f"{spec.kind}{fields}{result}"


def _describe_fields(cls: type, seen: set[type]) -> str:
    fields = attrs.fields(cls)
    return "(" + ",".join(f"{f.name}:{_type_name(f.type, seen)}" for f in fields) + ")"


def _type_name(tp: Any, seen: set[type]) -> str:
    # Names without modules (host and worker may import one contract under
    # different module names), and nested classes spelled out field by field,
    # so that a change anywhere in a message shows.
    if tp is None or tp is type(None):
        return "None"
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return "|".join(sorted(_type_name(a, seen) for a in args))
    if origin is not None:
        name = getattr(origin, "__qualname__", None) or repr(origin)
        inner = ",".join(_type_name(a, seen) for a in args)
        return f"{name.replace('typing.', '')}[{inner}]"
    if not isinstance(tp, type):
        return repr(tp).replace("typing.", "")
    name = tp.__qualname__
    if tp in seen:
        return name
    seen.add(tp)
    if attrs.has(tp):
        return name + _describe_fields(tp, seen)
    if issubclass(tp, enum.Enum):
        return name + repr([member.value for member in tp])
    return name
