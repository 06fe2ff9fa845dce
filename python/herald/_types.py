"""Result types and exceptions of the herald package (the extension builds its values from these)."""

from typing import NamedTuple


class Receipt(NamedTuple):
    """What one notify() did: its seq, subscriptions buffered to / dropped at, waiters woken."""

    seq: int
    delivered: int
    dropped: int
    woken: int


class Notification(NamedTuple):
    """One notification: seq (1, 2, 3 ... per handle) and the notifier's arg."""

    seq: int
    arg: int


Receipt.__module__ = "herald"
Notification.__module__ = "herald"


class Error(Exception):
    """Every error herald reports; .code is the kernel's Errc name ("timed_out", ...)."""

    code = "error"

    def __repr__(self) -> str:
        return f"herald.{type(self).__name__}({str(self)!r}, code={self.code!r})"


class UnknownHandle(Error):
    """Never registered, forged, or unregistered."""

    code = "unknown_handle"


class Closed(Error):
    """The handle was unregistered (and the subscription drained), or the subscription closed."""

    code = "closed"


class Empty(Error):
    """Nothing buffered (try_recv returns None instead; kept for completeness)."""

    code = "empty"


class Full(Error):
    """A bounded resource is full."""

    code = "full"


class LimitExceeded(Error):
    """max_handles, max_subscribers or max_waiters reached."""

    code = "limit_exceeded"


class OutOfMemory(Error, MemoryError):
    """The kernel's memory_limit would be exceeded, or allocation failed."""

    code = "out_of_memory"


class TimedOut(Error, TimeoutError):
    """The timeout passed."""

    code = "timed_out"


class Cancelled(Error):
    """The wait was cancelled."""

    code = "cancelled"


class InvalidArgument(Error, ValueError):
    """An argument out of range (a size, a timeout, an overflow policy...)."""

    code = "invalid_argument"


ERRORS = {
    cls.code: cls
    for cls in (
        UnknownHandle,
        Closed,
        Empty,
        Full,
        LimitExceeded,
        OutOfMemory,
        TimedOut,
        Cancelled,
        InvalidArgument,
    )
}

for _cls in (Error, *ERRORS.values()):
    _cls.__module__ = "herald"
