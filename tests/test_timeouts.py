"""`Timeouts`: defaults, coercion, validation, per-message limits."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from isolated_workers import Timeouts

pytestmark = pytest.mark.pure


class Resize:
    pass


class SetQuality:
    pass


def test_defaults() -> None:
    timeouts = Timeouts()
    assert timeouts.startup == 10.0
    assert timeouts.connect == 30.0
    assert timeouts.message == 300.0
    assert timeouts.shutdown == 5.0
    assert dict(timeouts.per_message) == {}


def test_values_are_floats() -> None:
    timeouts = Timeouts(startup=1, connect=2, message=3, shutdown=4)
    for value in (
        timeouts.startup,
        timeouts.connect,
        timeouts.message,
        timeouts.shutdown,
    ):
        assert type(value) is float
    assert (timeouts.startup, timeouts.connect) == (1.0, 2.0)
    assert (timeouts.message, timeouts.shutdown) == (3.0, 4.0)


def test_coerce_number_sets_startup_connect_and_message() -> None:
    timeouts = Timeouts.coerce(30)
    assert timeouts.startup == 30.0
    assert timeouts.connect == 30.0
    assert timeouts.message == 30.0
    assert timeouts.shutdown == Timeouts().shutdown
    assert Timeouts.coerce(2.5).message == 2.5


def test_coerce_none_gives_defaults() -> None:
    assert Timeouts.coerce(None) == Timeouts()


def test_coerce_timeouts_is_identity() -> None:
    timeouts = Timeouts(message=1, per_message={Resize: 2})
    assert Timeouts.coerce(timeouts) is timeouts


@pytest.mark.parametrize("field", ["startup", "connect", "message", "shutdown"])
def test_none_means_no_limit(field: str) -> None:
    kwargs: dict[str, Any] = {field: None}
    timeouts = Timeouts(**kwargs)
    assert getattr(timeouts, field) == math.inf


@pytest.mark.parametrize("field", ["startup", "connect", "message", "shutdown"])
@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, -math.inf, math.nan])
def test_non_positive_values_raise(field: str, value: float) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match="positive"):
        Timeouts(**kwargs)


@pytest.mark.parametrize("value", [0, -1, math.nan])
def test_coerce_non_positive_raises(value: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Timeouts.coerce(value)


def test_infinity_is_accepted() -> None:
    assert Timeouts(message=math.inf).message == math.inf


def test_for_message() -> None:
    timeouts = Timeouts(message=60, per_message={Resize: 120})
    assert timeouts.for_message(Resize) == 120.0
    assert timeouts.for_message(SetQuality) == 60.0


def test_for_message_without_overrides() -> None:
    assert Timeouts().for_message(Resize) == 300.0
    assert Timeouts(message=None).for_message(Resize) == math.inf


def test_per_message_none_means_no_limit() -> None:
    per_message: dict[type, Any] = {Resize: None}
    timeouts = Timeouts(message=1, per_message=per_message)
    assert timeouts.for_message(Resize) == math.inf
    assert timeouts.for_message(SetQuality) == 1.0


@pytest.mark.parametrize("value", [0, -3, math.nan])
def test_per_message_non_positive_raises(value: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Timeouts(per_message={Resize: value})


def test_per_message_is_read_only_and_copied() -> None:
    source: dict[type, float] = {Resize: 5.0}
    timeouts = Timeouts(per_message=source)
    source[SetQuality] = 1.0
    assert SetQuality not in timeouts.per_message
    with pytest.raises(TypeError):
        timeouts.per_message[SetQuality] = 1.0  # type: ignore[index]


def test_frozen() -> None:
    timeouts = Timeouts()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        timeouts.message = 1.0  # type: ignore[misc]


def test_equality_and_hash() -> None:
    assert Timeouts(message=1) == Timeouts(message=1.0)
    assert Timeouts(message=1) != Timeouts(message=2)
    assert hash(Timeouts(message=1)) == hash(Timeouts(message=1.0))


def test_equality_sees_per_message() -> None:
    """Per-message limits take part in equality."""
    assert Timeouts(per_message={Resize: 1}) != Timeouts()
    assert Timeouts(per_message={Resize: 1}) == Timeouts(per_message={Resize: 1.0})


def test_evolve_keeps_validation() -> None:
    timeouts = attrs.evolve(Timeouts(), message=7)
    assert timeouts.message == 7.0
    with pytest.raises(ValueError, match="positive"):
        attrs.evolve(Timeouts(), shutdown=0)
