"""`define_messages` and `MessageRegistry`: validation, lookups, fingerprints."""

# No "from __future__ import annotations": the classes defined inside the tests
# below must have real (not string) annotations so that attrs can resolve them.

import sys
import types
from typing import Any, ClassVar, Optional

import attrs
import pytest

from isolated_workers import (
    MessageRegistry,
    Notification,
    Request,
    StreamRequest,
    define_messages,
)

pytestmark = pytest.mark.pure

# --------------------------------------------------------------------------
# Module-level messages: forward references to classes defined further down.


@attrs.frozen
class FwdPing(Request["FwdPong"]):
    text: str


@attrs.frozen
class FwdList(Request["list[FwdPong]"]):
    pass


@attrs.frozen
class FwdDict(Request["dict[str, FwdPong]"]):
    pass


@attrs.frozen
class FwdOptional(Request["FwdPong | None"]):
    pass


@attrs.frozen
class FwdNested(Request[list["FwdPong"]]):
    pass


@attrs.frozen
class FwdPong:
    text: str


# --------------------------------------------------------------------------
# Messages shared by the lookup tests.


@attrs.frozen
class Result:
    value: int


@attrs.frozen
class Resize(Request[Result]):
    width: int


@attrs.frozen
class SetQuality(Notification):
    quality: int


@attrs.frozen
class Count(Request[list[int]]):
    n: int


@attrs.frozen
class Lookup(Request[dict[str, Result]]):
    key: str


@attrs.frozen
class Maybe(Request[Result | None]):
    pass


@attrs.frozen
class MaybeOld(Request[Optional[Result]]):  # noqa: UP045 - the old spelling on purpose
    pass


@attrs.frozen
class Nothing(Request[None]):
    pass


@attrs.frozen
class Renamed(Notification):
    message_type: ClassVar[str] = "custom.name"
    x: int


ALL = (Resize, SetQuality, Count, Lookup, Maybe, MaybeOld, Nothing, Renamed)


@pytest.fixture
def registry() -> MessageRegistry:
    return define_messages(*ALL)


# --------------------------------------------------------------------------
# Rejections


def test_rejects_non_attrs_class() -> None:
    class Plain(Notification):
        pass

    with pytest.raises(TypeError, match=r"not an attrs class.*@attrs\.frozen"):
        define_messages(Plain)


def test_rejects_non_class() -> None:
    with pytest.raises(TypeError, match="not an attrs class"):
        define_messages(42)  # type: ignore[arg-type]


def test_rejects_attrs_instance() -> None:
    with pytest.raises(TypeError, match="not an attrs class"):
        define_messages(Result(1))  # type: ignore[arg-type]


def test_rejects_class_without_message_base() -> None:
    @attrs.frozen
    class Loose:
        x: int

    with pytest.raises(TypeError, match=r"Loose derives from none of Request"):
        define_messages(Loose)


def test_rejects_bare_request_without_result_type() -> None:
    @attrs.frozen
    class Bare(Request):  # type: ignore[type-arg]
        x: int

    with pytest.raises(TypeError, match=r"Bare must name its result type"):
        define_messages(Bare)


def _same_name_in(scope: str) -> type:
    # Two distinct classes, both called "Twin", from two different scopes.
    if scope == "a":

        @attrs.frozen
        class Twin(Notification):
            a: int

        return Twin

    @attrs.frozen
    class Twin(Notification):  # type: ignore[no-redef]
        b: str

    return Twin


def test_rejects_duplicate_class_names_from_different_scopes() -> None:
    first, second = _same_name_in("a"), _same_name_in("b")
    assert first is not second
    with pytest.raises(TypeError, match=r"share the wire name 'Twin'.*message_type"):
        define_messages(first, second)


def test_rejects_message_type_collision() -> None:
    @attrs.frozen
    class One(Notification):
        message_type: ClassVar[str] = "shared"

    @attrs.frozen
    class Two(Request[int]):
        message_type: ClassVar[str] = "shared"

    with pytest.raises(TypeError, match=r"One.*Two|Two.*One") as info:
        define_messages(One, Two)
    assert "'shared'" in str(info.value)


def test_rejects_message_type_colliding_with_a_class_name() -> None:
    @attrs.frozen
    class Alias(Notification):
        message_type: ClassVar[str] = "SetQuality"

    with pytest.raises(TypeError, match="share the wire name 'SetQuality'"):
        define_messages(SetQuality, Alias)


def test_rejects_the_same_class_twice() -> None:
    with pytest.raises(TypeError, match="share the wire name 'SetQuality'"):
        define_messages(SetQuality, SetQuality)


def test_rejects_unresolvable_result_type() -> None:
    @attrs.frozen
    class Lost(Request["NoSuchType"]):  # type: ignore[name-defined]
        pass

    with pytest.raises(TypeError, match=r"result type .*NoSuchType.* of .*Lost"):
        define_messages(Lost)


def test_rejects_unresolvable_field_type() -> None:
    @attrs.frozen
    class LostField(Notification):
        x: "NoSuchType"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"field types of .*LostField.*NoSuchType"):
        define_messages(LostField)


def test_rejects_field_type_that_cannot_be_carried() -> None:
    @attrs.frozen
    class Complex(Notification):
        z: complex

    with pytest.raises(TypeError, match=r"Complex: .*cannot structure.*complex"):
        define_messages(Complex)


def test_rejects_dict_keys_other_than_str() -> None:
    """JSON would hand the worker string keys, and msgpack fail at run time:
    the contract refuses such a field at once."""

    @attrs.frozen
    class IntKeys(Notification):
        names: dict[int, str]

    with pytest.raises(TypeError, match=r"IntKeys: .*str keys only.*dict\[int, str\]"):
        define_messages(IntKeys)


def test_rejects_result_type_that_cannot_be_carried() -> None:
    @attrs.frozen
    class Setty(Request[set[int]]):
        pass

    with pytest.raises(TypeError, match=r"result type of .*Setty.*set\[int\]"):
        define_messages(Setty)


def test_rejects_uncarriable_field_of_nested_attrs_field() -> None:
    """The check reaches into attrs classes used as field types."""

    @attrs.frozen
    class Inner:
        s: set[int]

    @attrs.frozen
    class Outer(Notification):
        inner: Inner

    with pytest.raises(TypeError, match=r"set\[int\]"):
        define_messages(Outer)


def test_rejects_uncarriable_field_of_nested_attrs_result() -> None:
    """The check reaches into an attrs result class."""

    @attrs.frozen
    class BadResult:
        z: complex

    @attrs.frozen
    class Ask(Request[BadResult]):
        pass

    with pytest.raises(TypeError, match="complex"):
        define_messages(Ask)


# --------------------------------------------------------------------------
# Wire names


def test_wire_name_defaults_to_class_name(registry: MessageRegistry) -> None:
    assert registry["Resize"] is Resize
    assert registry["SetQuality"] is SetQuality
    assert registry.spec_for(Resize).name == "Resize"


def test_wire_name_honours_message_type(registry: MessageRegistry) -> None:
    assert registry["custom.name"] is Renamed
    assert "custom.name" in registry
    assert "Renamed" not in registry
    with pytest.raises(KeyError):
        registry["Renamed"]


def test_subclass_does_not_inherit_message_type() -> None:
    """API.md: the wire name is ``__name__`` unless *the class* sets message_type."""

    @attrs.frozen
    class Child(Renamed):
        pass

    registry = define_messages(Renamed, Child)
    assert registry["custom.name"] is Renamed
    assert registry["Child"] is Child


# --------------------------------------------------------------------------
# Lookups


def test_getitem_and_contains(registry: MessageRegistry) -> None:
    assert registry["Count"] is Count
    assert "Count" in registry
    assert Count in registry
    assert "Missing" not in registry
    assert Result not in registry
    assert FwdPing not in registry
    assert 3 not in registry
    with pytest.raises(KeyError):
        registry["Missing"]


def test_iteration_order_and_len(registry: MessageRegistry) -> None:
    assert list(registry) == list(ALL)
    assert len(registry) == len(ALL)
    reverse = define_messages(*reversed(ALL))
    assert list(reverse) == list(reversed(ALL))


def test_empty_registry() -> None:
    empty = define_messages()
    assert len(empty) == 0
    assert list(empty) == []
    assert "Resize" not in empty


def test_registry_is_immutable(registry: MessageRegistry) -> None:
    with pytest.raises(TypeError):
        registry["Extra"] = SetQuality  # type: ignore[index]
    with pytest.raises(AttributeError):
        registry.extra = 1  # type: ignore[attr-defined]
    fingerprint = registry.fingerprint
    fingerprint["Resize"] = "tampered"
    assert registry.fingerprint["Resize"] != "tampered"


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (Resize, Result),
        (Count, list[int]),
        (Lookup, dict[str, Result]),
        (Maybe, Result | None),
        (MaybeOld, Result | None),
        (Nothing, type(None)),
        (SetQuality, None),
        (Renamed, None),
    ],
)
def test_result_type(registry: MessageRegistry, cls: type, expected: Any) -> None:
    assert registry.result_type(cls) == expected


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (FwdPing, FwdPong),
        (FwdList, list[FwdPong]),
        (FwdDict, dict[str, FwdPong]),
        (FwdOptional, FwdPong | None),
        (FwdNested, list[FwdPong]),
    ],
)
def test_result_type_forward_reference(cls: type, expected: Any) -> None:
    registry = define_messages(cls)
    assert registry.result_type(cls) == expected
    assert registry.is_request(cls)


def test_is_request(registry: MessageRegistry) -> None:
    assert registry.is_request(Resize)
    assert registry.is_request(Nothing)
    assert not registry.is_request(SetQuality)
    assert not registry.is_request(Renamed)


def test_lookups_of_unregistered_class_raise_key_error(
    registry: MessageRegistry,
) -> None:
    with pytest.raises(KeyError, match="FwdPing"):
        registry.result_type(FwdPing)
    with pytest.raises(KeyError, match="FwdPing"):
        registry.is_request(FwdPing)


def test_result_type_inherited_from_a_request_base() -> None:
    @attrs.frozen
    class Base(Request[int]):
        pass

    @attrs.frozen
    class Derived(Base):
        extra: str

    registry = define_messages(Derived)
    assert registry.result_type(Derived) is int
    assert registry.is_request(Derived)


def test_repr_names_messages(registry: MessageRegistry) -> None:
    assert "Resize" in repr(registry)
    assert "custom.name" in repr(registry)


# --------------------------------------------------------------------------
# Fingerprints

CONTRACT = """
from __future__ import annotations

from typing import ClassVar

import attrs

from isolated_workers import Notification, Request, define_messages


@attrs.frozen
class Resized:
    width: int
    height: int
    data: bytes


@attrs.frozen
class Resize(Request[Resized]):
    data: bytes
    width: int


@attrs.frozen
class SetQuality(Notification):
    quality: int


@attrs.frozen
class Ping(Request["Pong"]):
    message_type: ClassVar[str] = "ping"
    text: str


@attrs.frozen
class Pong:
    text: str


Messages = define_messages(Resize, SetQuality, Ping)
"""


def _edit(old: str, new: str) -> str:
    assert old in CONTRACT, old
    return CONTRACT.replace(old, new)


def _make(source: str, index: int) -> MessageRegistry:
    name = f"_contract_{index}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    registry: MessageRegistry = module.Messages
    return registry


def test_fingerprint_equal_for_same_contract_in_two_modules() -> None:
    host, worker = _make(CONTRACT, 1), _make(CONTRACT, 2)
    assert host["Resize"] is not worker["Resize"]
    assert host.fingerprint == worker.fingerprint
    assert host.differences(worker.fingerprint) == []
    assert worker.differences(host.fingerprint) == []


def _contract_in_a_scope() -> MessageRegistry:
    @attrs.frozen
    class Resized:
        width: int

    @attrs.frozen
    class Resize(Request[Resized]):
        width: int

    @attrs.frozen
    class SetQuality(Notification):
        quality: int

    return define_messages(Resize, SetQuality)


def test_fingerprint_equal_for_same_contract_in_two_scopes() -> None:
    first, second = _contract_in_a_scope(), _contract_in_a_scope()
    assert first["Resize"] is not second["Resize"]
    assert first.fingerprint == second.fingerprint
    assert first.differences(second.fingerprint) == []


def test_fingerprint_covers_every_message() -> None:
    registry = _make(CONTRACT, 1)
    assert set(registry.fingerprint) == {"Resize", "SetQuality", "ping"}
    assert all(isinstance(v, str) for v in registry.fingerprint.values())


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        pytest.param("quality: int", "quality: float", ["SetQuality"], id="field-type"),
        pytest.param(
            "    data: bytes\n    width: int\n",
            "    data: bytes\n    width: int\n    height: int = 0\n",
            ["Resize"],
            id="field-added",
        ),
        pytest.param(
            "    data: bytes\n    width: int\n",
            "    width: int\n",
            ["Resize"],
            id="field-removed",
        ),
        pytest.param(
            "    data: bytes\n    width: int\n",
            "    data: bytes\n    size: int\n",
            ["Resize"],
            id="field-renamed",
        ),
        pytest.param(
            "class Resize(Request[Resized])",
            "class Resize(Request[int])",
            ["Resize"],
            id="result-type",
        ),
        pytest.param(
            'class Ping(Request["Pong"])',
            'class Ping(Request["Pong | None"])',
            ["ping"],
            id="result-type-optional",
        ),
        pytest.param(
            "class SetQuality(Notification)",
            "class SetQuality(Request[None])",
            ["SetQuality"],
            id="kind",
        ),
        pytest.param(
            "define_messages(Resize, SetQuality, Ping)",
            "define_messages(Resize, Ping)",
            ["SetQuality"],
            id="message-missing",
        ),
        pytest.param(
            'message_type: ClassVar[str] = "ping"',
            'message_type: ClassVar[str] = "pong"',
            ["ping", "pong"],
            id="wire-name",
        ),
        pytest.param(
            "define_messages(Resize, SetQuality, Ping)",
            "define_messages(Ping, SetQuality, Resize)",
            [],
            id="order-irrelevant",
        ),
    ],
)
def test_differences_name_exactly_the_changed_messages(
    old: str, new: str, changed: list[str]
) -> None:
    host = _make(CONTRACT, 1)
    worker = _make(_edit(old, new), 2)
    assert host.differences(worker.fingerprint) == changed
    assert worker.differences(host.fingerprint) == changed


def test_differences_see_a_change_inside_the_result_class() -> None:
    """A field added to the *result* class changes the contract of Resize."""
    host = _make(CONTRACT, 1)
    worker = _make(_edit("    height: int\n", "    height: int\n    depth: int\n"), 2)
    assert host.differences(worker.fingerprint) == ["Resize"]


def test_differences_see_a_change_inside_a_field_class() -> None:
    """A field added to an attrs class used as a field type shows too."""
    source = CONTRACT.replace(
        "class SetQuality(Notification):\n    quality: int",
        "class SetQuality(Notification):\n    quality: int\n    size: Resized",
    )
    host = _make(source, 1)
    changed = source.replace("    height: int\n", "    height: float\n")
    worker = _make(changed, 2)
    assert host.differences(worker.fingerprint) == ["Resize", "SetQuality"]


def test_differences_see_a_stream_item_type() -> None:
    """Host and worker that disagree on what a stream yields do not connect."""

    def contract(item: type) -> MessageRegistry:
        @attrs.frozen
        class Scan(StreamRequest[item]):  # type: ignore[valid-type]
            pattern: str

        return define_messages(Scan)

    host, worker = contract(int), contract(str)
    assert host.differences(worker.fingerprint) == ["Scan"]
    assert contract(int).differences(host.fingerprint) == []


def test_differences_against_an_empty_fingerprint() -> None:
    host = _make(CONTRACT, 1)
    assert host.differences({}) == ["Resize", "SetQuality", "ping"]
