"""Converting messages to plain data (dicts, lists, scalars, bytes) and back.

Structuring is driven by the declared types and compiled once per type, so a
message that does not match its declaration is refused with the path of the
offending field.
"""

from __future__ import annotations

import base64
import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union, cast

import attrs

__all__ = ["StructureError", "structure", "structurer_for", "unstructure"]

Structurer = Callable[[Any, str], Any]


class StructureError(ValueError):
    """Data does not match the declared type; the message names the path."""


def unstructure(obj: Any) -> Any:
    """Turn attrs instances, tuples and enums into plain data, recursively."""
    cls = obj.__class__
    if cls in _SCALARS:
        return obj
    try:
        fields = _FIELDS[cls]
    except KeyError:
        fields = _FIELDS[cls] = _field_names(cls)
    if fields is not None:
        return {name: unstructure(getattr(obj, name)) for name in fields}
    if issubclass(cls, list | tuple):
        return [unstructure(item) for item in cast("Sequence[Any]", obj)]
    if issubclass(cls, Mapping):
        out: dict[str, Any] = {}
        for key, value in cast("Mapping[Any, Any]", obj).items():
            if not isinstance(key, str):  # JSON would turn it into a string
                raise TypeError(
                    "isolated-workers carries dicts with str keys only, "
                    f"not a key of type {type(key).__name__}"
                )
            out[key] = unstructure(value)
        return out
    if issubclass(cls, enum.Enum):
        return cast("enum.Enum", obj).value
    return obj  # the serializer decides whether it can carry it


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    if not attrs.has(cls):
        return None
    return tuple(field.name for field in attrs.fields(cls) if field.init)


def structure(data: Any, tp: Any) -> Any:
    """Build a value of type ``tp`` from plain data, or raise `StructureError`."""
    return structurer_for(tp)(data, "")


def _fail(path: str, expected: str, data: Any) -> typing.NoReturn:
    where = f"{path.lstrip('.')}: " if path else ""
    raise StructureError(f"{where}expected {expected}, got {type(data).__name__}")


def _scalar(tp: type, name: str) -> Structurer:
    def check(data: Any, path: str) -> Any:
        if type(data) is not tp:
            _fail(path, name, data)
        return data

    return check


def _structure_float(data: Any, path: str) -> Any:
    if type(data) is float:
        return data
    if type(data) is int:
        try:
            return float(data)
        except OverflowError:
            _fail(path, "a float in range", data)
    _fail(path, "float", data)


def _structure_bytes(data: Any, path: str) -> Any:
    if type(data) is bytes:
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(cast("bytearray", data))
    if type(data) is str:  # text serializers carry bytes as base64
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            _fail(path, "bytes (base64 text)", data)
    _fail(path, "bytes", data)


def _passthrough(data: Any, path: str) -> Any:
    return data


_STRUCTURERS: dict[Any, Structurer] = {}


def structurer_for(tp: Any) -> Structurer:
    """Return a function ``(data, path) -> value`` for the type ``tp``.

    Raises:
        TypeError: ``tp``, or a type inside it, cannot be carried.
    """
    try:
        return _STRUCTURERS[tp]
    except KeyError:
        pass
    if isinstance(tp, type) and attrs.has(tp):
        # Cached before its fields are prepared, so that recursive classes
        # find themselves.
        fn, prepare = _attrs_class(tp)
        _STRUCTURERS[tp] = fn
        try:
            prepare()
        except Exception:
            del _STRUCTURERS[tp]
            raise
        return fn
    fn = _STRUCTURERS[tp] = _build(tp)
    return fn


def _build(tp: Any) -> Structurer:
    if tp is Any or tp is object:
        return _passthrough
    if tp is None or tp is type(None):
        return _scalar(type(None), "None")
    if tp is bool:
        return _scalar(bool, "bool")
    if tp is int:
        return _scalar(int, "int")
    if tp is str:
        return _scalar(str, "str")
    if tp is float:
        return _structure_float
    if tp is bytes:
        return _structure_bytes
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        return _union(args)
    if origin is Literal:
        return _literal(args)
    if origin in (list, Sequence):
        return _list(args[0] if args else Any)
    if origin is tuple:
        return _tuple(args)
    if origin in (dict, Mapping):
        if args and args[0] not in (str, Any):
            # JSON would turn the keys into strings, and msgpack refuse them.
            raise TypeError(
                f"isolated-workers carries dicts with str keys only, not {tp!r}"
            )
        return _dict(args[1] if len(args) == 2 else Any)
    if origin is typing.Annotated:
        return structurer_for(args[0])
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if tp is list or tp is tuple or tp is dict:
            return structurer_for(cast(Any, tp)[Any])
    raise TypeError(f"isolated-workers cannot structure values of type {tp!r}")


def _type_label(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)


def _union(args: tuple[Any, ...]) -> Structurer:
    # int | float equals float | int, and both share one cache entry: the
    # outcome must not depend on the order the members were spelled in. A
    # value whose type is a member goes to it; others try members by name.
    args = tuple(sorted(args, key=_type_label))
    options = [structurer_for(arg) for arg in args]
    exact: dict[type[Any], Structurer] = {
        arg: option
        for arg, option in zip(args, options, strict=True)
        if arg in _SCALARS
    }
    label = " | ".join(_type_label(arg) for arg in args)
    if type(None) in args:
        rest = [structurer_for(a) for a in args if a is not type(None)]
        if len(rest) == 1:
            (inner,) = rest

            def optional(data: Any, path: str) -> Any:
                return None if data is None else inner(data, path)

            return optional

    def union(data: Any, path: str) -> Any:
        option = exact.get(data.__class__)
        if option is not None:
            return option(data, path)
        for option in options:
            try:
                return option(data, path)
            except StructureError:
                continue
        _fail(path, label, data)

    return union


def _literal(values: tuple[Any, ...]) -> Structurer:
    def literal(data: Any, path: str) -> Any:
        if data in values and type(data) in {type(v) for v in values}:
            return data
        where = f"{path.lstrip('.')}: " if path else ""
        raise StructureError(f"{where}expected one of {values!r}, got {data!r}")

    return literal


def _enum(tp: type[enum.Enum]) -> Structurer:
    def to_enum(data: Any, path: str) -> Any:
        try:
            return tp(data)
        except ValueError:
            where = f"{path.lstrip('.')}: " if path else ""
            raise StructureError(f"{where}{data!r} is not a {tp.__name__}") from None

    return to_enum


def _list(item_type: Any) -> Structurer:
    item = structurer_for(item_type)

    def to_list(data: Any, path: str) -> Any:
        if not isinstance(data, list | tuple):
            _fail(path, "list", data)
        values = cast("Sequence[Any]", data)
        return [item(value, f"{path}[{i}]") for i, value in enumerate(values)]

    return to_list


def _tuple(args: tuple[Any, ...]) -> Structurer:
    if len(args) == 2 and args[1] is Ellipsis:
        as_list = _list(args[0])

        def to_variadic_tuple(data: Any, path: str) -> Any:
            return tuple(as_list(data, path))

        return to_variadic_tuple
    items = [structurer_for(arg) for arg in args]

    def to_tuple(data: Any, path: str) -> Any:
        if not isinstance(data, list | tuple):
            _fail(path, "tuple", data)
        values = cast("Sequence[Any]", data)
        if len(values) != len(items):
            where = f"{path.lstrip('.')}: " if path else ""
            raise StructureError(
                f"{where}expected {len(items)} items, got {len(values)}"
            )
        return tuple(
            item(v, f"{path}[{i}]")
            for i, (item, v) in enumerate(zip(items, values, strict=True))
        )

    return to_tuple


def _items(data: Any) -> Iterable[tuple[Any, Any]]:
    items: Iterable[tuple[Any, Any]] = data.items()
    return items


def _dict(value_type: Any) -> Structurer:
    value = structurer_for(value_type)

    def to_dict(data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            _fail(path, "dict", data)
        out: dict[str, Any] = {}
        for key, item in _items(data):
            if type(key) is not str:
                _fail(f"{path}[{key!r}]", "a str key", key)
            out[key] = value(item, f"{path}[{key!r}]")
        return out

    return to_dict


def _attrs_class(cls: type) -> tuple[Structurer, Callable[[], None]]:
    fields: list[tuple[str, str, Structurer, bool]] = []
    names: set[str] = set()

    def prepare() -> None:
        try:
            attrs.resolve_types(cls)
        except Exception as exc:
            raise TypeError(
                f"cannot resolve the field types of {cls.__qualname__}: {exc}"
            ) from exc
        for field in attrs.fields(cls):
            if not field.init:
                continue
            required = field.default is attrs.NOTHING
            fields.append(
                (
                    field.name,
                    field.alias or field.name,
                    structurer_for(field.type or Any),
                    required,
                )
            )
            names.add(field.name)

    def to_instance(data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            _fail(path or cls.__name__, f"a {cls.__name__} object", data)
        values = cast("dict[str, Any]", data)
        kwargs: dict[str, Any] = {}
        for name, alias, convert, required in fields:
            if name in values:
                kwargs[alias] = convert(values[name], f"{path}.{name}")
            elif required:
                where = f"{path.lstrip('.')}: " if path else ""
                raise StructureError(f"{where}missing field {name!r} of {cls.__name__}")
        if len(values) > len(kwargs):
            extra = sorted(set(values) - names)
            if extra:
                where = f"{path.lstrip('.')}: " if path else ""
                raise StructureError(
                    f"{where}unexpected field(s) {extra} for {cls.__name__}"
                )
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            where = f"{path.lstrip('.')}: " if path else ""
            raise StructureError(f"{where}{cls.__name__}: {exc}") from exc

    return to_instance, prepare
