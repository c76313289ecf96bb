"""The library's exceptions, ordered by when they occur: startup, running, shutdown."""

from __future__ import annotations

import signal
from typing import Any, ClassVar

import attrs

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "Exited",
    "ProtocolError",
    "RemoteError",
    "SerializerMismatchError",
    "ShutdownReason",
    "WorkerClosedError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerStartupError",
    "WorkerTimeoutError",
]


class WorkerError(Exception):
    """Base class of every error the library raises."""


class WorkerStartupError(WorkerError):
    """The worker could not be started, or did not become ready in time."""


class SerializerMismatchError(WorkerStartupError):
    """Host and worker use different serializers; found during the handshake."""


class ProtocolError(WorkerError):
    """A malformed, oversized or unknown message, or one that cannot be encoded."""


class WorkerTimeoutError(WorkerError, TimeoutError):
    """A request took longer than its configured timeout.

    The worker keeps running; the handler of the request is cancelled.
    """


class WorkerClosedError(WorkerError):
    """The worker was closed by the host, so the request cannot complete."""


# --- why a worker stopped -------------------------------------------------


@attrs.frozen
class Exited:
    """The worker process exited.

    Attributes:
        code: The exit code, or `None` when a signal ended the process.
        signal: The signal that ended the process, or `None`.
    """

    code: int | None
    signal: signal.Signals | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> Exited:
        if returncode < 0:
            try:
                return cls(None, signal.Signals(-returncode))
            except ValueError:
                return cls(returncode, None)
        return cls(returncode, None)

    def describe(self) -> str:
        name = self.signal.name if self.signal is not None else None
        return f"exit code {self.code}, signal {name}"


@attrs.frozen
class ConnectionLost:
    """Reading from or writing to the worker failed with `error`."""

    error: BaseException = attrs.field(eq=False)

    def describe(self) -> str:
        return f"connection lost: {self.error!r}"


@attrs.frozen
class ConnectionClosed:
    """The worker closed its connection without being asked to."""

    def describe(self) -> str:
        return "connection closed by the worker"


ShutdownReason = Exited | ConnectionLost | ConnectionClosed

# By name: Windows has no SIGKILL, and the package must import there to say
# that it does not run there.
_SIGNAL_HINTS: dict[signal.Signals | None, str] = {
    getattr(signal, name): hint
    for name, hint in {
        "SIGKILL": "killed by the OS or another process; "
        "out of memory is a common cause",
        "SIGSEGV": "segmentation fault, usually in C code or an extension module",
        "SIGABRT": "aborted, usually by a failed assertion in C code",
    }.items()
    if hasattr(signal, name)
}


class WorkerCrashedError(WorkerError):
    """The worker stopped without being asked to while a request was pending.

    Attributes:
        reason: Why the worker stopped.
        message_type: The wire name of the message that failed.
        attempt: How many times the request had been sent when it failed.
        max_attempts: How many sends its policy allowed: 1 under `Reject`,
            N + 1 under ``Retry(attempts=N)``.
        stderr_tail: The last lines the worker wrote to stderr, when its output
            was logged or captured (``open_worker(output=...)``); else `None`.
    """

    def __init__(
        self,
        reason: ShutdownReason,
        message_type: str | None,
        *,
        attempt: int = 1,
        max_attempts: int = 1,
        stderr_tail: str | None = None,
    ) -> None:
        self.reason = reason
        self.message_type = message_type
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.stderr_tail = stderr_tail
        super().__init__(self._describe())
        if not isinstance(reason, Exited) or max_attempts > 1:
            self.add_note(f"Reason: {reason.describe()}")
        if stderr_tail:
            self.add_note(f"The worker's last lines on stderr:\n{stderr_tail}")

    def __reduce__(self) -> Any:
        return (
            _rebuild_crash,
            (
                self.reason,
                self.message_type,
                self.attempt,
                self.max_attempts,
                self.stderr_tail,
            ),
        )

    def _describe(self) -> str:
        what = f" while processing {self.message_type!r}" if self.message_type else ""
        if self.attempt == 0:  # refused up front: the worker had crashed before
            status = self.reason.describe()
            return (
                f"Worker crashed earlier ({status}); {self.message_type!r} was not sent"
            )
        if self.max_attempts > 1 and self.attempt == self.max_attempts:
            retries = self.attempt - 1
            plural = "retry" if retries == 1 else "retries"
            head = f"Worker crashed after {self.attempt} attempts ({retries} {plural})"
        elif isinstance(self.reason, Exited):
            head = f"Worker crashed ({self.reason.describe()})"
        else:
            head = "Worker crashed unexpectedly"
        text = head + what
        if isinstance(self.reason, Exited) and self.reason.signal in _SIGNAL_HINTS:
            text += f": {_SIGNAL_HINTS[self.reason.signal]}"
        return text


def _rebuild_crash(
    reason: ShutdownReason,
    message_type: str | None,
    attempt: int,
    max_attempts: int,
    stderr_tail: str | None = None,
) -> WorkerCrashedError:
    return WorkerCrashedError(
        reason,
        message_type,
        attempt=attempt,
        max_attempts=max_attempts,
        stderr_tail=stderr_tail,
    )


# --- errors raised by the worker's handlers ------------------------------


class RemoteError(WorkerError):
    """A handler raised an exception in the worker.

    When the remote exception is a built-in type, the raised error is also an
    instance of that type, so ``except ZeroDivisionError:`` works on the host.

    Attributes:
        remote_type: Qualified name of the remote exception's type.
        remote_message: ``str()`` of the remote exception.
        remote_traceback: The remote traceback, as text; it is shown as a note
            when the error is printed.
        code: The remote exception's ``errno`` or ``code`` attribute, if any.
    """

    remote_type: str
    remote_message: str
    remote_traceback: str
    code: int | str | None

    _builtin_variants: ClassVar[dict[type[BaseException], type[RemoteError]]] = {}

    @classmethod
    def build(
        cls,
        remote_type: str,
        remote_message: str,
        remote_traceback: str,
        code: int | str | None = None,
    ) -> RemoteError:
        """Make the error, mixing in the built-in exception type if there is one."""
        try:
            error = cls._variant_for(remote_type)(remote_message)
        except TypeError:  # built-ins whose constructors take other arguments
            error = cls(remote_message)
        error.remote_type = remote_type
        error.remote_message = remote_message
        error.remote_traceback = remote_traceback
        error.code = code
        if isinstance(error, OSError) and isinstance(code, int):
            error.errno = code
        if remote_traceback:
            error.add_note(f"Remote traceback ({remote_type}):\n{remote_traceback}")
        return error

    @classmethod
    def _variant_for(cls, remote_type: str) -> type[RemoteError]:
        module, _, name = remote_type.rpartition(".")
        builtin: Any = getattr(__import__("builtins"), name, None)
        if (
            module != "builtins"
            or not isinstance(builtin, type)
            or not issubclass(builtin, Exception)
            or issubclass(builtin, BaseExceptionGroup)
        ):
            return cls
        variant = cls._builtin_variants.get(builtin)
        if variant is None:
            try:
                variant = type(
                    f"Remote{name}", (cls, builtin), {"__module__": "isolated_workers"}
                )
            except TypeError:  # pragma: no cover - layout conflicts
                variant = cls
            cls._builtin_variants[builtin] = variant
        return variant

    def __reduce__(self) -> Any:
        return (
            RemoteError.build,
            (self.remote_type, self.remote_message, self.remote_traceback, self.code),
        )

    def __str__(self) -> str:
        name = self.remote_type.removeprefix("builtins.")
        return f"{name}: {self.remote_message}"
