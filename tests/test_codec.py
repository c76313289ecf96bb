"""The codec: attrs classes and plain types to plain data, through JSON, and back."""

# No "from __future__ import annotations": the classes defined inside the tests
# below must have real (not string) annotations so that attrs can resolve them.

import enum
import json
import math
import re
from typing import Any, Literal, Optional, Union

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isolated_workers import JsonSerializer, ProtocolError
from isolated_workers._wire._codec import (
    StructureError,
    structure,
    structurer_for,
    unstructure,
)
from isolated_workers._wire._protocol import decode_body, encode_body

pytestmark = pytest.mark.pure

JSON = JsonSerializer()


def roundtrip(value: Any, tp: Any) -> Any:
    """What the peer gets: unstructure, JSON dumps and loads, structure."""
    return structure(JSON.loads(JSON.dumps(unstructure(value))), tp)


def through_json(value: Any) -> Any:
    return JSON.loads(JSON.dumps(unstructure(value)))


# --------------------------------------------------------------------------
# Types used below


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Inner:
    items: list[int]
    label: str = "inner"


@attrs.frozen
class Outer:
    inner: Inner
    name: str
    tags: dict[str, Inner] = attrs.field(factory=dict)
    maybe: Inner | None = None


@attrs.frozen
class Private:
    _secret: int = attrs.field(alias="secret")
    _other: str = attrs.field(default="x", alias="other")


@attrs.frozen
class Everything:
    i: int
    f: float
    s: str
    b: bytes
    flag: bool
    nothing: None
    ints: list[int]
    pair: tuple[int, str]
    many: tuple[float, ...]
    mapping: dict[str, bytes]
    opt: Optional[int]  # noqa: UP045 - the old spelling on purpose
    either: Union[int, str]  # noqa: UP007 - the old spelling on purpose
    lit: Literal["a", "b"]
    color: Color
    level: Level


EVERYTHING = Everything(
    i=-(2**62),
    f=0.1,
    s="é€😀\x00",
    b=bytes(range(256)),
    flag=True,
    nothing=None,
    ints=[1, 2, 3],
    pair=(7, "seven"),
    many=(1.5, -0.0, 1e300),
    mapping={"k": b"\xff\x00", "": b""},
    opt=None,
    either="s",
    lit="b",
    color=Color.GREEN,
    level=Level.HIGH,
)


# --------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    ("value", "tp"),
    [
        (0, int),
        (-(2**63), int),
        (2**100, int),
        (1.25, float),
        (-0.0, float),
        ("", str),
        ("é€😀", str),
        (b"", bytes),
        (bytes(range(256)), bytes),
        (True, bool),
        (False, bool),
        (None, None),
        (None, type(None)),
        ([1, 2, 3], list[int]),
        ([], list[str]),
        ([[1], [], [2, 3]], list[list[int]]),
        ((1, "a", b"b"), tuple[int, str, bytes]),
        ((), tuple[()]),
        ((1, 2, 3), tuple[int, ...]),
        ((), tuple[int, ...]),
        ({"a": 1, "b": 2}, dict[str, int]),
        ({}, dict[str, int]),
        ({"x": [b"1"]}, dict[str, list[bytes]]),
        (None, Optional[int]),  # noqa: UP045
        (5, Optional[int]),  # noqa: UP045
        (None, int | None),
        (5, int | None),
        ("s", int | str),
        (3, int | str),
        (b"raw", bytes | None),
        ("a", Literal["a", "b"]),
        (2, Literal[1, 2]),
        (Color.RED, Color),
        (Level.LOW, Level),
        ([Color.RED, Color.GREEN], list[Color]),
        ({"a": 1, "b": [1, "x"]}, Any),
        ({"a": 1}, dict[str, Any]),
        ([1, 2], list),
        ({"a": 1}, dict),
    ],
)
def test_roundtrip(value: Any, tp: Any) -> None:
    result = roundtrip(value, tp)
    assert result == value
    assert type(result) is type(value)


def test_roundtrip_float_keeps_infinities() -> None:
    assert roundtrip(math.inf, float) == math.inf
    assert roundtrip(-math.inf, float) == -math.inf


def test_roundtrip_nested_attrs() -> None:
    value = Outer(
        inner=Inner([1, 2]),
        name="n",
        tags={"a": Inner([], "x"), "b": Inner([3])},
        maybe=Inner([4], "m"),
    )
    assert roundtrip(value, Outer) == value
    assert roundtrip([value, value], list[Outer]) == [value, value]
    assert roundtrip({"k": value}, dict[str, Outer]) == {"k": value}
    assert roundtrip(None, Outer | None) is None


def test_roundtrip_defaults_may_be_omitted() -> None:
    assert structure({"inner": {"items": []}, "name": "n"}, Outer) == Outer(
        Inner([], "inner"), "n", {}, None
    )


def test_roundtrip_private_attributes_with_alias() -> None:
    value = Private(secret=3, other="y")
    data = through_json(value)
    assert data == {"_secret": 3, "_other": "y"}
    assert structure(data, Private) == value
    assert structure({"_secret": 4}, Private) == Private(secret=4)


def test_roundtrip_everything() -> None:
    assert roundtrip(EVERYTHING, Everything) == EVERYTHING


def test_unstructure_gives_plain_data() -> None:
    data = unstructure(EVERYTHING)
    assert data["pair"] == [7, "seven"]
    assert data["many"] == [1.5, -0.0, 1e300]
    assert data["color"] == "green"
    assert data["level"] == 2
    assert data["b"] == bytes(range(256))  # the serializer decides about bytes
    assert unstructure({"k": (Inner([1]),)}) == {
        "k": [{"items": [1], "label": "inner"}]
    }


def test_unstructure_refuses_keys_other_than_str() -> None:
    """Untyped data (an ``Any`` field, startup data, run_sync arguments) too:
    JSON would turn an int key into a string without a word."""
    with pytest.raises(TypeError, match="str keys only, not a key of type int"):
        unstructure({"outer": {1: "a"}})


def test_roundtrip_fields_not_in_init() -> None:
    """A field with ``init=False`` survives a round trip (it is not sent)."""

    @attrs.frozen
    class WithComputed:
        x: int
        double: int = attrs.field(init=False)

        @double.default
        def _double(self) -> int:
            return self.x * 2

    value = WithComputed(3)
    assert roundtrip(value, WithComputed) == value


# --------------------------------------------------------------------------
# Scalars: strict types, bytes as base64 text


def test_bool_is_not_an_int() -> None:
    with pytest.raises(StructureError, match="expected int, got bool"):
        structure(True, int)
    with pytest.raises(StructureError, match=r"items\[0\]: expected int, got bool"):
        structure({"items": [False]}, Inner)


def test_bool_is_not_a_float() -> None:
    with pytest.raises(StructureError, match="expected float, got bool"):
        structure(True, float)


def test_int_is_not_a_bool() -> None:
    with pytest.raises(StructureError, match="expected bool, got int"):
        structure(1, bool)


def test_int_is_accepted_as_float() -> None:
    result = structure(3, float)
    assert result == 3.0
    assert type(result) is float
    assert type(roundtrip(3, float)) is float


def test_float_is_not_an_int() -> None:
    with pytest.raises(StructureError, match="expected int, got float"):
        structure(1.0, int)


def test_bytes_come_back_as_bytes_from_base64_text() -> None:
    data = through_json(b"\x00hi\xff")
    assert data == "AGhp/w=="
    assert structure(data, bytes) == b"\x00hi\xff"
    assert structure(data, bytes | None) == b"\x00hi\xff"
    assert structure([data], list[bytes]) == [b"\x00hi\xff"]


def test_bytes_stay_text_where_not_declared() -> None:
    assert structure(through_json(b"hi"), Any) == "aGk="
    assert structure(through_json(b"hi"), str) == "aGk="


def test_bytes_refuse_text_that_is_not_base64() -> None:
    with pytest.raises(StructureError, match=r"^b: expected bytes \(base64 text\)"):
        structure({"b": "not base64!"}, _Blob)


def test_bytes_accepts_bytearray_and_memoryview() -> None:
    assert structure(bytearray(b"ab"), bytes) == b"ab"
    assert structure(memoryview(b"ab"), bytes) == b"ab"
    assert type(structure(bytearray(b"ab"), bytes)) is bytes


@attrs.frozen
class _Blob:
    b: bytes


@pytest.mark.parametrize(
    ("data", "tp", "message"),
    [
        ("1", int, "expected int, got str"),
        (1, str, "expected str, got int"),
        ("x", float, "expected float, got str"),
        (1, bytes, "expected bytes, got int"),
        (0, None, "expected None, got int"),
        ({}, list[int], "expected list, got dict"),
        ("ab", list[str], "expected list, got str"),
        ([], dict[str, int], "expected dict, got list"),
        ({1: 2}, dict[str, int], "expected a str key, got int"),
        (5, tuple[int, int], "expected tuple, got int"),
        ([1, 2, 3], tuple[int, int], "expected 2 items, got 3"),
        ([1], tuple[int, int], "expected 2 items, got 1"),
        (1.5, int | str, "expected int | str, got float"),
        ("c", Literal["a", "b"], "expected one of ('a', 'b'), got 'c'"),
        (1, Literal[True], "expected one of (True,), got 1"),
        ("blue", Color, "'blue' is not a Color"),
        (3, Level, "3 is not a Level"),
        ([1], Inner, "expected a Inner object, got list"),
    ],
)
def test_type_errors(data: Any, tp: Any, message: str) -> None:
    with pytest.raises(StructureError) as info:
        structure(data, tp)
    assert message in str(info.value)


def test_structure_error_is_a_value_error() -> None:
    assert issubclass(StructureError, ValueError)


# --------------------------------------------------------------------------
# Error paths


def test_error_names_the_path_of_the_offending_item() -> None:
    data = {"inner": {"items": [1, 2, "x"]}, "name": "n"}
    with pytest.raises(StructureError) as info:
        structure(data, Outer)
    assert str(info.value) == "inner.items[2]: expected int, got str"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"inner": {"items": []}, "name": 5},
            "name: expected str, got int",
        ),
        (
            {"inner": {"items": []}, "name": "n", "tags": {"a": {"items": [None]}}},
            "tags['a'].items[0]: expected int, got NoneType",
        ),
        (
            {"inner": {"items": []}, "name": "n", "maybe": {"items": "x"}},
            "maybe.items: expected list, got str",
        ),
        (
            {"inner": {"items": []}, "name": "n", "tags": {"a": 1}},
            "tags['a']: expected a Inner object, got int",
        ),
    ],
)
def test_error_paths(data: Any, message: str) -> None:
    with pytest.raises(StructureError) as info:
        structure(data, Outer)
    assert str(info.value) == message


def test_error_path_through_lists_and_tuples() -> None:
    with pytest.raises(StructureError) as info:
        structure([[1], [2, "x"]], list[list[int]])
    assert str(info.value) == "[1][1]: expected int, got str"
    with pytest.raises(StructureError) as info:
        structure({"k": [1, "y"]}, dict[str, tuple[int, int]])
    assert str(info.value) == "['k'][1]: expected int, got str"
    with pytest.raises(StructureError) as info:
        structure([1, 2, "z"], tuple[int, ...])
    assert str(info.value) == "[2]: expected int, got str"


def test_missing_field() -> None:
    with pytest.raises(StructureError) as info:
        structure({"inner": {}, "name": "n"}, Outer)
    assert str(info.value) == "inner: missing field 'items' of Inner"
    with pytest.raises(StructureError) as info:
        structure({"inner": {"items": []}}, Outer)
    assert str(info.value) == "missing field 'name' of Outer"


def test_unexpected_extra_fields() -> None:
    with pytest.raises(StructureError) as info:
        structure({"items": [], "zzz": 1, "aaa": 2}, Inner)
    assert str(info.value) == "unexpected field(s) ['aaa', 'zzz'] for Inner"
    with pytest.raises(StructureError) as info:
        structure({"inner": {"items": [], "extra": 0}, "name": "n"}, Outer)
    assert str(info.value) == "inner: unexpected field(s) ['extra'] for Inner"


def test_private_field_uses_its_attribute_name_on_the_wire() -> None:
    with pytest.raises(StructureError, match="missing field '_secret' of Private"):
        structure({"secret": 1}, Private)
    with pytest.raises(StructureError, match=r"unexpected field\(s\) \['secret'\]"):
        structure({"_secret": 1, "secret": 1}, Private)


def test_validator_failure_becomes_structure_error() -> None:
    @attrs.frozen
    class Positive:
        n: int = attrs.field(validator=attrs.validators.gt(0))

    with pytest.raises(StructureError, match=r"Positive: .*must be > 0"):
        structure({"n": 0}, Positive)


# --------------------------------------------------------------------------
# Unions


def test_union_sends_a_value_to_the_member_of_its_own_type() -> None:
    """A str stays a str and bytes stay bytes, however the union is spelled."""
    for union in (bytes | str, str | bytes):
        assert structure("aGk=", union) == "aGk="
        assert structure(b"hi", union) == b"hi"


def test_union_result_does_not_depend_on_what_was_structured_before() -> None:
    """``int | float`` and ``float | int`` share one cached structurer; the
    result must not depend on which spelling came first."""
    assert type(structure(1, float | int)) in (int, float)
    result = structure(1, int | float)
    assert result == 1
    assert type(result) is int


def test_union_of_attrs_classes_picks_the_matching_one() -> None:
    @attrs.frozen
    class A:
        a: int

    @attrs.frozen
    class B:
        b: str

    assert structure({"b": "x"}, A | B) == B("x")
    assert structure({"a": 1}, A | B) == A(1)
    with pytest.raises(StructureError, match=r"expected A \| B, got dict"):
        structure({"c": 1}, A | B)


# --------------------------------------------------------------------------
# Types that cannot be carried


@pytest.mark.parametrize("tp", [complex, set[int], frozenset[str], object.__class__])
def test_unsupported_types_are_refused(tp: Any) -> None:
    with pytest.raises(TypeError, match="cannot structure"):
        structurer_for(tp)


# --------------------------------------------------------------------------
# Deep nesting is refused by the protocol layer, not a crash


DEPTH = 100_000


@pytest.mark.parametrize(
    ("data", "tp", "expected"),
    [
        ("é", bytes, "expected bytes (base64 text), got str"),
        (10**400, float, "expected a float in range, got int"),
    ],
    ids=["non-ascii-base64", "int-beyond-float"],
)
def test_values_the_converters_reject_are_structure_errors(
    data: object, tp: type, expected: str
) -> None:
    """Found by fuzzing: conversions that fail with ValueError or OverflowError
    are refused like any other mismatch."""
    with pytest.raises(StructureError, match=re.escape(expected)):
        structure(data, tp)


def test_deeply_nested_body_is_a_protocol_error() -> None:
    body = b"[" * DEPTH + b"]" * DEPTH
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_body(JSON, body)
    # The interpreter is fine afterwards.
    assert decode_body(JSON, b'["x",{},null]') == ("x", {}, None)


def test_deeply_nested_payload_is_a_protocol_error() -> None:
    body = b'["Echo",' + b"[" * DEPTH + b"]" * DEPTH + b",null]"
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_body(JSON, body)


def test_deeply_nested_outgoing_payload_is_a_protocol_error() -> None:
    value: list[Any] = []
    for _ in range(DEPTH):
        value = [value]
    with pytest.raises(ProtocolError, match="cannot serialize 'Deep'"):
        encode_body(JSON, "Deep", value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff", "undecodable"),
        (b"[1,", "undecodable"),
        (b"{}", "malformed"),
        (b'["x",1]', "malformed"),
        (b"[1,2,3]", "malformed"),
    ],
)
def test_malformed_bodies_are_protocol_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_body(JSON, body)


def test_body_roundtrip() -> None:
    value = Outer(Inner([1]), "n")
    name, payload, meta = decode_body(
        JSON, encode_body(JSON, "Outer", value, {"k": "v"})
    )
    assert (name, meta) == ("Outer", {"k": "v"})
    assert structure(payload, Outer) == value


def test_unserializable_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="cannot serialize 'X'"):
        encode_body(JSON, "X", {"c": 1j})


# --------------------------------------------------------------------------
# Property test


@attrs.frozen
class Small:
    n: int
    x: float
    text: str
    blob: bytes
    flag: bool
    items: list[int]
    pair: tuple[int, str]
    table: dict[str, int]
    maybe: str | None = None


@settings(
    derandomize=True,
    max_examples=200,
    database=None,
    # check_leaks is autouse and function-scoped; it checks the whole test.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.builds(
        Small,
        n=st.integers(),
        x=st.floats(allow_nan=False),
        text=st.text(max_size=8),
        blob=st.binary(max_size=8),
        flag=st.booleans(),
        items=st.lists(st.integers(), max_size=4),
        pair=st.tuples(st.integers(), st.text(max_size=4)),
        table=st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
        maybe=st.none() | st.text(max_size=4),
    )
)
def test_roundtrip_property(value: Small) -> None:
    result = roundtrip(value, Small)
    assert result == value
    assert type(result.x) is float
    assert type(result.blob) is bytes


def test_json_reads_any_json_text_and_refuses_the_rest() -> None:
    """The JSON serializer's fast path takes its own compact output; text with
    spaces around it, as another encoder may write, still decodes; trailing
    garbage and empty input are refused."""
    serializer = JsonSerializer()
    value = ["Echo", {"x": 1, "text": "é"}, {}]
    assert serializer.loads(serializer.dumps(value)) == value
    assert serializer.loads(b' [1, {"a": 2}] \n') == [1, {"a": 2}]
    for bad in (b"[1,2] x", b"", b"   "):
        with pytest.raises(json.JSONDecodeError):
            serializer.loads(bad)


def test_json_refuses_a_cycle() -> None:
    """Without the json module's circular check, a cycle still fails cleanly."""
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises((ValueError, RecursionError)):
        JsonSerializer().dumps(cycle)
