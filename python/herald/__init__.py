"""herald: a notification kernel for threads and asyncio (C++ core, this package on top).

    import herald
    k = herald.Kernel()
    h = k.register(debug_hint="jobs")
    k.notify(h, 42)                     # any thread; never blocks, runs no callback
    async with/for ... await s.recv()   # asyncio, through the subscription's eventfd

Blocking calls (wait_blocking, recv_blocking, unregister) release the GIL. The asyncio layer
learns of work only through file descriptors (loop.add_reader): no kernel or notifier thread
ever calls into the interpreter.
"""

import asyncio
import json
from typing import Any, Dict, Optional

from herald._types import (
    Cancelled,
    Closed,
    Empty,
    Error,
    Full,
    InvalidArgument,
    LimitExceeded,
    Notification,
    OutOfMemory,
    Receipt,
    TimedOut,
    UnknownHandle,
)
from herald._herald import ABI_VERSION, Handle, Kernel, Subscription

__all__ = [
    "ABI_VERSION",
    "Cancelled",
    "Closed",
    "Empty",
    "Error",
    "Full",
    "Handle",
    "InvalidArgument",
    "Kernel",
    "LimitExceeded",
    "Notification",
    "OutOfMemory",
    "Receipt",
    "Subscription",
    "TimedOut",
    "UnknownHandle",
]

for _cls in (Handle, Kernel, Subscription):
    _cls.__module__ = "herald"


# ---- Subscription: asyncio -------------------------------------------------------------------
#
# One reader per subscription is registered on the loop while receives keep coming: recv() adds
# it when it must wait, and the reader removes itself when it fires with nobody waiting (the fd
# stays readable while items are buffered, so leaving it registered then would spin the loop).
# A receive takes items only on its own task, after it resumes; a cancelled or timed-out receive
# took nothing, so nothing buffered is lost.


def _on_readable(sub: Subscription) -> None:
    waiter = sub._waiter
    if waiter is None or waiter.done():
        sub._unwatch()
        return
    waiter.set_result(None)


def _unwatch(self: Subscription) -> None:
    loop = self._loop
    if loop is not None:
        self._loop = None
        if not loop.is_closed():
            loop.remove_reader(self._fd)


def _expire(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_exception(TimedOut("recv: timed out"))


async def _recv(self: Subscription, timeout: Optional[float] = None) -> Notification:
    """The next notification (asyncio). Raises Closed once the handle is gone and this is
    drained, TimedOut after `timeout` seconds. Cancelling the awaiting task loses nothing."""
    n = self.try_recv()
    if n is not None:
        return n
    if self._waiter is not None:
        raise InvalidArgument("recv: another receive is already waiting on this subscription")
    loop = asyncio.get_running_loop()
    if timeout is not None and timeout != timeout:
        raise InvalidArgument("timeout is NaN")
    deadline = None if timeout is None else loop.time() + max(0.0, timeout)
    while True:
        if self._loop is not loop:
            self._unwatch()
            self._fd = self.fileno()
            loop.add_reader(self._fd, _on_readable, self)
            self._loop = loop
        waiter = loop.create_future()
        self._waiter = waiter
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        n = self.try_recv()
        if n is not None:
            return n


def _close(self: Subscription) -> None:
    """Ends the subscription (idempotent): pending receives raise Closed, the fd is closed."""
    waiter = self._waiter
    self._unwatch()
    self._close()
    if waiter is not None and not waiter.done():
        waiter.set_exception(Closed("subscription closed while waiting"))


def _aiter(self: Subscription) -> Subscription:
    return self


async def _anext(self: Subscription) -> Notification:
    try:
        return await self.recv()
    except Closed:
        raise StopAsyncIteration from None


def _sub_enter(self: Subscription) -> Subscription:
    return self


def _sub_exit(self: Subscription, *exc: Any) -> None:
    self.close()


Subscription._waiter = None
Subscription._loop = None
Subscription._fd = -1
Subscription._unwatch = _unwatch
Subscription.recv = _recv
Subscription.close = _close
Subscription.__aiter__ = _aiter
Subscription.__anext__ = _anext
Subscription.__enter__ = _sub_enter
Subscription.__exit__ = _sub_exit


# ---- Kernel: asyncio wait --------------------------------------------------------------------
#
# await k.wait(h, after) needs a pollable source for one handle: it checks for a published
# notification (lock-free), then subscribes a one-slot keep_latest subscription, checks again
# (closing the window between the first check and the subscription), and sleeps on the
# subscription's fd. The subscription is the helper fd: it counts against the handle's
# max_subscribers (not max_waiters) while the wait lasts, and its deliveries appear in stats.


async def _wait(
    self: Kernel, handle: Handle, after: Optional[int] = None, timeout: Optional[float] = None
) -> Notification:
    """The latest notification with seq > after (asyncio); after=None: observe(handle) now.
    Raises Closed if the handle is unregistered meanwhile, TimedOut after `timeout` seconds.
    Cancelling the awaiting task withdraws the wait."""
    if after is None:
        after = self.observe(handle)
    n = self._try_wait(handle, after)
    if n is not None:
        return n
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + max(0.0, timeout)
    sub = self.subscribe(handle, capacity=1, overflow="keep_latest", debug_hint="asyncio wait")
    try:
        while True:
            try:
                n = self._try_wait(handle, after)
            except UnknownHandle:
                raise Closed("wait: the handle was unregistered") from None
            if n is not None:
                return n
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimedOut("wait: timed out")
            try:
                await sub.recv(remaining)
            except Closed:
                raise Closed("wait: the handle was unregistered") from None
    finally:
        sub.close()


def _describe(self: Kernel) -> Dict[str, Any]:
    """describe(), parsed: options, live handles, subscriptions, totals."""
    return json.loads(self._describe_json())


def _kernel_enter(self: Kernel) -> Kernel:
    return self


def _kernel_exit(self: Kernel, *exc: Any) -> None:
    self.close()


Kernel.wait = _wait
Kernel.describe = _describe
Kernel.__enter__ = _kernel_enter
Kernel.__exit__ = _kernel_exit
