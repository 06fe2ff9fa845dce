"""A drop-in for the Python system's NotificationQueue (the INotificationQueue protocol), on herald.

Switch with one import:

    from herald.compat import NotificationQueue

Same observable behaviour for correct callers, with the original's defects gone:

* notify() never runs callbacks inline: each subscriber's callback runs on the asyncio loop it
  subscribed from (or on a dispatcher thread when it subscribed outside a loop); a raising
  callback is logged (logger "herald.compat") and harms no other subscriber.
* The lock protocol still works: wait_unsafe() takes its ticket (observe) while the caller holds
  get_lock(), then releases it; notify() holds the lock only for the instant it bumps the
  handle, never while waking anyone. So a notifier that changed state (with or without the lock)
  and then calls notify() is never missed. New code needs no lock: observe() -> check -> wait().
* Per-handle limits apply (max_waiters, max_subscribers: LimitExceeded beyond them).
* unlist() wakes every waiter and ends every subscription; subscribers get arg -1 last.
"""

import asyncio
import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import herald

logger = logging.getLogger("herald.compat")

# Items one reader callback hands to callbacks before yielding to the loop (the fd stays readable,
# so the loop comes back for the rest).
_DRAIN_BATCH = 256


@dataclass(eq=False)
class _Subscriber:
    id: int
    handle: int
    func: Callable[[int], Any]
    debug_hint: str
    sub: herald.Subscription
    loop: asyncio.AbstractEventLoop
    active: bool = True
    watching: bool = False
    fd: int = -1


@dataclass(eq=False)
class _Entry:
    kernel_handle: herald.Handle
    debug_hint: str
    waits: Dict[int, str] = field(default_factory=dict)
    subscribers: Dict[int, _Subscriber] = field(default_factory=dict)


class NotificationQueue:
    """Thread-safe notifications on caller-chosen integer handles (INotificationQueue)."""

    def __init__(
        self,
        *,
        max_handles: int = 65536,
        max_waiters: int = 64,
        max_subscribers: int = 16,
        subscription_capacity: int = 1024,
    ) -> None:
        self._kernel = herald.Kernel(max_handles=max_handles)
        self._lock = threading.Lock()  # the callers' lock (get_lock)
        self._state = threading.Lock()  # this object's tables; never held while waiting or calling out
        self._handles: Dict[int, _Entry] = {}
        self._max_waiters = max_waiters
        self._max_subscribers = max_subscribers
        self._capacity = subscription_capacity
        self._ids = itertools.count(1)
        self._dispatcher: Optional[asyncio.AbstractEventLoop] = None
        self._dispatcher_thread: Optional[threading.Thread] = None

    # ---- the protocol ----

    def get_lock(self) -> threading.Lock:
        return self._lock

    def whitelist(self, handle: int, debug_hint: str) -> None:
        with self._state:
            entry = self._handles.get(handle)
            if entry is not None:
                logger.warning("queue.whitelist: handle %s already in whitelist", handle)
                entry.debug_hint = debug_hint
                return
            # Every asyncio wait holds a one-slot subscription while it waits (see herald.Kernel.wait),
            # so the kernel's subscriber limit covers both; the split is enforced here.
            kernel_handle = self._kernel.register(
                debug_hint=f"{handle}:{debug_hint}",
                max_waiters=self._max_waiters,
                max_subscribers=self._max_waiters + self._max_subscribers,
            )
            self._handles[handle] = _Entry(kernel_handle, debug_hint)

    def unlist(self, handle: int) -> None:
        """Waiters wake; subscriptions end, each subscriber getting arg -1 last."""
        with self._state:
            entry = self._handles.pop(handle, None)
        if entry is None:
            logger.warning("queue.unlist: handle %s not in whitelist", handle)
            return
        # Waits complete with Closed (wait_unsafe returns); each subscription hands out what it
        # buffered, then Closed, on which its reader calls func(-1) and ends it.
        self._kernel.unregister(entry.kernel_handle)

    def notify(self, handle: int, arg: int) -> None:
        """Any thread. Ignored for a handle that is not whitelisted. Runs no callback."""
        entry = self._handles.get(handle)
        if entry is None:
            return
        with self._lock:  # orders the bump with lock holders; wakes nobody itself
            try:
                self._kernel.notify(entry.kernel_handle, arg)
            except herald.UnknownHandle:
                pass  # unlisted meanwhile

    async def wait_unsafe(self, handle: int, debug_hint: str) -> None:
        """Waits for the next notification on `handle`.

        Precondition: the caller holds get_lock(). Post-condition: it is released (as in the
        original; callers re-acquire it if they need it). Returns at once for a handle that is not
        whitelisted, and when the handle is unlisted while waiting. Spurious returns are possible;
        lost wake-ups are not."""
        try:
            entry = self._handles.get(handle)
            if entry is None:
                return
            try:
                ticket = self._kernel.observe(entry.kernel_handle)  # under the caller's lock
            except herald.UnknownHandle:
                return
            token = next(self._ids)
            with self._state:
                if len(entry.waits) >= self._max_waiters:
                    raise herald.LimitExceeded(
                        f"wait_unsafe: handle {handle} already has {self._max_waiters} waiters")
                entry.waits[token] = debug_hint
        finally:
            self._lock.release()
        try:
            await self._kernel.wait(entry.kernel_handle, ticket)
        except (herald.Closed, herald.UnknownHandle):
            pass  # unlisted: waiters wake
        finally:
            with self._state:
                entry.waits.pop(token, None)

    def subscribe(self, handle: int, func: Callable[[int], Any], debug_hint: str) -> Optional[int]:
        """Calls func(arg) for every notification on `handle`, on the running asyncio loop (or a
        dispatcher thread when called outside a loop). None if the handle is not whitelisted."""
        entry = self._handles.get(handle)
        if entry is None:
            logger.warning("queue.subscribe: handle %s not in whitelist", handle)
            return None
        with self._state:
            if len(entry.subscribers) >= self._max_subscribers:
                raise herald.LimitExceeded(
                    f"subscribe: handle {handle} already has {self._max_subscribers} subscribers")
            try:
                sub = self._kernel.subscribe(
                    entry.kernel_handle, capacity=self._capacity, debug_hint=debug_hint)
            except herald.UnknownHandle:
                logger.warning("queue.subscribe: handle %s not in whitelist", handle)
                return None
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = self._dispatcher_loop()
            record = _Subscriber(next(self._ids), handle, func, debug_hint, sub, loop)
            entry.subscribers[record.id] = record
        self._on_loop(record, self._start)
        return record.id

    def unsubscribe(self, handle: int, subscription_id: int) -> None:
        """After it returns, the callback is not called again (one already running may finish)."""
        with self._state:
            entry = self._handles.get(handle)
            record = None if entry is None else entry.subscribers.pop(subscription_id, None)
        if record is None:
            logger.warning(
                "queue.unsubscribe: subscription %s for handle %s not found", subscription_id, handle)
            return
        record.active = False
        self._on_loop(record, self._stop)

    def get_waits(self) -> List[Tuple[int, List[str]]]:
        with self._state:
            return [(h, list(e.waits.values())) for h, e in self._handles.items() if e.waits]

    # ---- additions: lock-free waiting, shutdown ----

    def observe(self, handle: int) -> int:
        """The ticket for wait(): take it, check your condition, then wait (no lock needed)."""
        entry = self._handles.get(handle)
        if entry is None:
            raise herald.UnknownHandle(f"handle {handle} is not whitelisted")
        return self._kernel.observe(entry.kernel_handle)

    async def wait(self, handle: int, after: int, debug_hint: str = "") -> None:
        """Returns once a notification after ticket `after` exists, or the handle is unlisted."""
        entry = self._handles.get(handle)
        if entry is None:
            return
        token = next(self._ids)
        with self._state:
            entry.waits[token] = debug_hint
        try:
            await self._kernel.wait(entry.kernel_handle, after)
        except (herald.Closed, herald.UnknownHandle):
            pass
        finally:
            with self._state:
                entry.waits.pop(token, None)

    def close(self) -> None:
        """Unlists every handle and stops the dispatcher thread (if one was started)."""
        with self._state:
            handles = list(self._handles)
        for handle in handles:
            self.unlist(handle)
        loop, thread = self._dispatcher, self._dispatcher_thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            self._dispatcher = self._dispatcher_thread = None

    def __repr__(self) -> str:
        return f"<herald.compat.NotificationQueue handles={len(self._handles)} {self._kernel!r}>"

    # ---- delivery ----

    def _dispatcher_loop(self) -> asyncio.AbstractEventLoop:
        if self._dispatcher is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="herald-compat-dispatcher", daemon=True)
            thread.start()
            self._dispatcher, self._dispatcher_thread = loop, thread
        return self._dispatcher

    @staticmethod
    def _on_loop(record: _Subscriber, fn: Callable[[_Subscriber], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is record.loop:
            fn(record)
        else:
            record.loop.call_soon_threadsafe(fn, record)

    def _start(self, record: _Subscriber) -> None:  # on record.loop
        if not record.active or record.watching:
            return
        record.fd = record.sub.fileno()
        record.loop.add_reader(record.fd, self._drain, record)
        record.watching = True

    @staticmethod
    def _stop(record: _Subscriber) -> None:  # on record.loop
        if record.watching:
            record.watching = False
            record.loop.remove_reader(record.fd)
        record.sub.close()

    def _drain(self, record: _Subscriber) -> None:  # on record.loop, the fd readable
        for _ in range(_DRAIN_BATCH):
            if not record.active:
                self._stop(record)
                return
            try:
                n = record.sub.try_recv()
            except herald.Closed:  # unlisted, and everything before it delivered
                record.active = False
                self._stop(record)
                self._call(record, -1)
                return
            if n is None:
                return
            self._call(record, n.arg)

    @staticmethod
    def _call(record: _Subscriber, arg: int) -> None:
        try:
            record.func(arg)
        except Exception:  # noqa: BLE001 - logged, and isolated from the other subscribers
            logger.exception(
                "queue: subscriber %r (id %s) of handle %s raised", record.debug_hint, record.id,
                record.handle)
