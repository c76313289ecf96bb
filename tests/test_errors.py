"""The error types: hierarchy, `RemoteError`, `WorkerCrashedError` messages."""

from __future__ import annotations

import errno
import pickle
import signal
import traceback
from typing import Any

import pytest

import isolated_workers
from isolated_workers import (
    ConnectionClosed,
    ConnectionLost,
    Exited,
    ProtocolError,
    RemoteError,
    SerializerMismatchError,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerError,
    WorkerStartupError,
    WorkerTimeoutError,
)
from isolated_workers._wire._protocol import describe_exception, error_from_payload

pytestmark = pytest.mark.pure

TRACEBACK = (
    "Traceback (most recent call last):\n  File \"w.py\", line 1\nKeyError: 'k'\n"
)


# --------------------------------------------------------------------------
# Hierarchy


def _exported_exceptions() -> list[type[BaseException]]:
    return [
        obj
        for name in isolated_workers.__all__
        if isinstance(obj := getattr(isolated_workers, name), type)
        and issubclass(obj, BaseException)
    ]


def test_every_exported_error_derives_from_worker_error() -> None:
    errors = _exported_exceptions()
    assert len(errors) >= 8
    for error in errors:
        assert issubclass(error, WorkerError), error


@pytest.mark.parametrize(
    ("error", "base"),
    [
        (WorkerError, Exception),
        (WorkerStartupError, WorkerError),
        (SerializerMismatchError, WorkerStartupError),
        (WorkerTimeoutError, WorkerError),
        (WorkerTimeoutError, TimeoutError),
        (WorkerCrashedError, WorkerError),
        (WorkerClosedError, WorkerError),
        (ProtocolError, WorkerError),
        (RemoteError, WorkerError),
    ],
)
def test_hierarchy(error: type[BaseException], base: type[BaseException]) -> None:
    assert issubclass(error, base)


def test_timeout_error_is_caught_as_builtin_timeout() -> None:
    with pytest.raises(TimeoutError):
        raise WorkerTimeoutError("too slow")


def test_worker_error_is_not_a_base_exception_only() -> None:
    # Library errors must never look like cancellation or KeyboardInterrupt.
    for error in _exported_exceptions():
        assert issubclass(error, Exception), error


# --------------------------------------------------------------------------
# RemoteError


@pytest.mark.parametrize(
    ("remote_type", "builtin"),
    [
        ("builtins.KeyError", KeyError),
        ("builtins.ValueError", ValueError),
        ("builtins.ZeroDivisionError", ZeroDivisionError),
        ("builtins.OSError", OSError),
        ("builtins.FileNotFoundError", FileNotFoundError),
        ("builtins.RuntimeError", RuntimeError),
        ("builtins.TimeoutError", TimeoutError),
        ("builtins.StopIteration", StopIteration),
        ("builtins.MemoryError", MemoryError),
    ],
)
def test_build_mixes_in_builtin_type(
    remote_type: str, builtin: type[Exception]
) -> None:
    """A built-in remote type is mixed in, MemoryError included."""
    error = RemoteError.build(remote_type, "the message", TRACEBACK)
    assert isinstance(error, RemoteError)
    assert isinstance(error, builtin)
    assert isinstance(error, WorkerError)
    assert error.remote_type == remote_type
    assert error.remote_message == "the message"
    assert error.remote_traceback == TRACEBACK
    assert error.code is None
    with pytest.raises(builtin):
        raise error


def test_build_for_every_builtin_exception_type() -> None:
    """Whatever built-in exception a handler raises, the host can rebuild it,
    ExceptionGroup (what a handler using a task group raises) included."""
    import builtins

    failures: dict[str, str] = {}
    for name, obj in vars(builtins).items():
        if not (isinstance(obj, type) and issubclass(obj, Exception)):
            continue
        try:
            error = RemoteError.build(f"builtins.{name}", "m", "tb")
        except Exception as exc:
            failures[name] = repr(exc)
            continue
        if error.remote_type != f"builtins.{name}":
            failures[name] = f"remote_type is {error.remote_type!r}"
    assert failures == {}


def test_build_keeps_the_same_class_per_builtin() -> None:
    first = RemoteError.build("builtins.KeyError", "a", "")
    second = RemoteError.build("builtins.KeyError", "b", "")
    assert type(first) is type(second)
    assert type(first) is not RemoteError


@pytest.mark.parametrize(
    "remote_type",
    [
        "myapp.errors.KeyError",  # a builtin's name in another module
        "myapp.errors.CustomError",
        "CustomError",
        "builtins.NoSuchError",
        "builtins.print",  # a builtin that is not an exception type
        "builtins.SystemExit",  # BaseException: must not escape as SystemExit
        "builtins.KeyboardInterrupt",
        "builtins.GeneratorExit",
    ],
)
def test_build_non_builtin_gives_plain_remote_error(remote_type: str) -> None:
    error = RemoteError.build(remote_type, "msg", "tb")
    assert type(error) is RemoteError
    assert error.remote_type == remote_type
    assert not isinstance(error, KeyError)


def test_oserror_keeps_errno() -> None:
    error = RemoteError.build(
        "builtins.FileNotFoundError", "[Errno 2] No such file", "tb", errno.ENOENT
    )
    assert isinstance(error, FileNotFoundError)
    assert error.errno == errno.ENOENT
    assert error.code == errno.ENOENT


def test_string_code_is_kept() -> None:
    error = RemoteError.build("myapp.HTTPError", "teapot", "tb", "E418")
    assert error.code == "E418"


def test_str_names_the_remote_type() -> None:
    error = RemoteError.build("builtins.ValueError", "bad value", TRACEBACK)
    assert str(error) == "ValueError: bad value"
    assert error.args == ("bad value",)


def test_notes_carry_the_remote_traceback() -> None:
    error = RemoteError.build("builtins.KeyError", "'k'", TRACEBACK)
    assert error.__notes__ == [f"Remote traceback (builtins.KeyError):\n{TRACEBACK}"]
    printed = "".join(traceback.format_exception(error))
    assert TRACEBACK in printed
    assert "RemoteKeyError: KeyError: 'k'" in printed


def test_no_note_without_a_traceback() -> None:
    error = RemoteError.build("builtins.KeyError", "'k'", "")
    assert not getattr(error, "__notes__", [])


@pytest.mark.parametrize(
    ("remote_type", "code"),
    [
        ("builtins.KeyError", None),
        ("builtins.FileNotFoundError", 2),
        ("myapp.CustomError", "E1"),
        ("builtins.ValueError", None),
    ],
)
def test_pickle_roundtrip(remote_type: str, code: int | str | None) -> None:
    error = RemoteError.build(remote_type, "message", TRACEBACK, code)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.remote_type == remote_type
    assert copy.remote_message == "message"
    assert copy.remote_traceback == TRACEBACK
    assert copy.code == code
    assert str(copy) == str(error)
    assert copy.__notes__ == error.__notes__
    if isinstance(error, OSError):
        assert isinstance(copy, OSError)
        assert copy.errno == code


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "expected_type"),
    [
        (ZeroDivisionError("division by zero"), ZeroDivisionError),
        (FileNotFoundError(2, "No such file"), FileNotFoundError),
        (KeyError("k"), KeyError),
        (ValueError("v"), ValueError),
        (MemoryError(), MemoryError),
        (ExceptionGroup("group", [ValueError("inner")]), RemoteError),
    ],
)
def test_worker_exception_rebuilt_on_the_host(
    exc: BaseException, expected_type: type[BaseException]
) -> None:
    """The path a handler's exception takes: describe in the worker, rebuild
    on the host."""
    raised = _raise(exc)
    payload = describe_exception(raised)
    error = error_from_payload(payload, "Echo")
    assert isinstance(error, RemoteError)
    assert isinstance(error, expected_type)
    assert error.remote_type == f"builtins.{type(exc).__qualname__}"
    assert error.remote_message == str(exc)
    assert f"{type(exc).__qualname__}" in error.remote_traceback
    if isinstance(exc, OSError):
        assert error.code == exc.errno


def test_custom_exception_code_attribute_is_described() -> None:
    class Custom(Exception):
        code = 7

    error = error_from_payload(describe_exception(_raise(Custom("x"))), "Echo")
    assert type(error) is RemoteError
    assert isinstance(error, RemoteError)
    assert error.code == 7
    assert error.remote_type.endswith("Custom")


def test_protocol_refusal_becomes_protocol_error() -> None:
    payload = describe_exception(_raise(ValueError("unknown type")), protocol=True)
    error = error_from_payload(payload, "Echo")
    assert type(error) is ProtocolError
    assert str(error) == "unknown type"


@pytest.mark.parametrize("payload", [None, "x", 3, ["a"]])
def test_malformed_error_payload_is_protocol_error(payload: Any) -> None:
    assert isinstance(error_from_payload(payload, "Echo"), ProtocolError)


# --------------------------------------------------------------------------
# Exited and the other shutdown reasons


def test_exited_from_returncode_signal() -> None:
    exited = Exited.from_returncode(-9)
    assert exited == Exited(None, signal.SIGKILL)
    assert exited.code is None
    assert exited.signal is signal.SIGKILL
    assert isinstance(exited.signal, signal.Signals)


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exited_from_returncode_code(code: int) -> None:
    exited = Exited.from_returncode(code)
    assert exited == Exited(code, None)
    assert exited.signal is None


def test_exited_from_returncode_sigterm_and_sigsegv() -> None:
    assert Exited.from_returncode(-15).signal is signal.SIGTERM
    assert Exited.from_returncode(-11).signal is signal.SIGSEGV


def test_exited_describe() -> None:
    assert Exited(None, signal.SIGKILL).describe() == "exit code None, signal SIGKILL"
    assert Exited(1).describe() == "exit code 1, signal None"


def test_connection_lost_keeps_its_error() -> None:
    error = OSError(errno.ECONNRESET, "reset")
    lost = ConnectionLost(error)
    assert lost.error is error
    assert ConnectionClosed() == ConnectionClosed()


# --------------------------------------------------------------------------
# WorkerCrashedError messages (API.md section 5)

SIGKILL_HINT = "killed by the OS or another process; out of memory is a common cause"


def test_crash_message_reject_single_attempt() -> None:
    """API.md section 5: ``Worker crashed unexpectedly while processing 'Resize'``."""
    error = WorkerCrashedError(ConnectionClosed(), "Resize")
    assert str(error) == "Worker crashed unexpectedly while processing 'Resize'"


def test_crash_message_connection_lost() -> None:
    error = WorkerCrashedError(ConnectionLost(OSError("reset")), "Resize")
    assert str(error).startswith(
        "Worker crashed unexpectedly while processing 'Resize'"
    )


@pytest.mark.parametrize(
    "reason",
    [Exited(1), ConnectionClosed()],
    ids=["exited", "connection-closed"],
)
def test_crash_message_after_retries(reason: Exited | ConnectionClosed) -> None:
    """API.md section 5: after ``Retry(attempts=3)`` gave up."""
    error = WorkerCrashedError(reason, "Resize", attempt=4, max_attempts=4)
    assert str(error) == (
        "Worker crashed after 4 attempts (3 retries) while processing 'Resize'"
    )
    assert error.attempt == 4
    assert error.max_attempts == 4


def test_crash_message_signal() -> None:
    """API.md section 5 gives the text; section 12 adds the SIGKILL hint."""
    error = WorkerCrashedError(Exited(None, signal.SIGKILL), "Resize")
    text = "Worker crashed (exit code None, signal SIGKILL) while processing 'Resize'"
    assert str(error) in (text, f"{text}: {SIGKILL_HINT}")
    assert SIGKILL_HINT in str(error)  # API.md section 12


def test_crash_message_exit_code() -> None:
    error = WorkerCrashedError(Exited(3), "Resize")
    assert (
        str(error)
        == "Worker crashed (exit code 3, signal None) while processing 'Resize'"
    )


def test_crash_attributes() -> None:
    reason = Exited(None, signal.SIGKILL)
    error = WorkerCrashedError(reason, "Resize", attempt=2, max_attempts=3)
    assert error.reason is reason
    assert error.message_type == "Resize"
    assert error.attempt == 2
    assert error.max_attempts == 3
    default = WorkerCrashedError(ConnectionClosed(), "Resize")
    assert (default.attempt, default.max_attempts) == (1, 1)


def test_crash_without_message_type() -> None:
    error = WorkerCrashedError(Exited(1), None)
    assert "while processing" not in str(error)
    assert str(error).startswith("Worker crashed")


def test_crash_error_pickles() -> None:
    """The error survives pickling (logging handlers, multiprocessing)."""
    error = WorkerCrashedError(
        Exited(None, signal.SIGKILL), "Resize", attempt=2, max_attempts=3
    )
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.reason == error.reason
    assert (copy.message_type, copy.attempt, copy.max_attempts) == ("Resize", 2, 3)


@pytest.mark.parametrize(
    "error_type",
    [
        WorkerError,
        WorkerStartupError,
        SerializerMismatchError,
        WorkerTimeoutError,
        WorkerClosedError,
        ProtocolError,
    ],
)
def test_simple_errors_pickle(error_type: type[WorkerError]) -> None:
    copy = pickle.loads(pickle.dumps(error_type("text")))
    assert type(copy) is error_type
    assert str(copy) == "text"
