"""herald.compat.NotificationQueue: the INotificationQueue protocol, with the original's defects
gone (no callbacks inside notify, isolated raising callbacks, no lost wake-ups, limits)."""

import asyncio
import logging
import random
import threading
import time

import pytest

import herald
from herald.compat import NotificationQueue


@pytest.fixture
def queue():
    q = NotificationQueue()
    yield q
    q.close()


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


@pytest.mark.asyncio
async def test_callbacks_run_on_the_loop_not_in_notify(queue):
    queue.whitelist(1, "pipe")
    calls = []
    loop_thread = threading.get_ident()
    sid = queue.subscribe(1, lambda arg: calls.append((arg, threading.get_ident())), "sub")
    assert isinstance(sid, int)
    queue.notify(1, 5)
    assert calls == []  # never inline
    t = threading.Thread(target=lambda: [queue.notify(1, i) for i in range(10, 20)])
    t.start()
    t.join()
    await until(lambda: len(calls) == 11)
    assert [a for a, _ in calls] == [5] + list(range(10, 20))
    assert all(tid == loop_thread for _, tid in calls)
    queue.unsubscribe(1, sid)
    queue.notify(1, 99)
    await asyncio.sleep(0.02)
    assert len(calls) == 11


def test_subscribe_outside_a_loop_uses_the_dispatcher(queue):
    queue.whitelist(2, "pipe")
    calls = []
    sid = queue.subscribe(2, lambda arg: calls.append((arg, threading.current_thread().name)), "s")
    for i in range(5):
        queue.notify(2, i)
    wait_until(lambda: len(calls) == 5)
    assert [a for a, _ in calls] == list(range(5))
    assert {name for _, name in calls} == {"herald-compat-dispatcher"}
    queue.unsubscribe(2, sid)


@pytest.mark.asyncio
async def test_raising_callback_is_logged_and_isolated(queue, caplog):
    queue.whitelist(3, "pipe")
    good = []

    def bad(arg):
        raise RuntimeError(f"boom {arg}")

    queue.subscribe(3, bad, "bad-sub")
    queue.subscribe(3, good.append, "good-sub")
    with caplog.at_level(logging.ERROR, logger="herald.compat"):
        for i in range(3):
            queue.notify(3, i)
        await until(lambda: len(good) == 3)
    assert good == [0, 1, 2]
    errors = [r for r in caplog.records if r.name == "herald.compat" and r.exc_info]
    assert len(errors) == 3 and "bad-sub" in errors[0].getMessage()
    assert isinstance(errors[0].exc_info[1], RuntimeError)


@pytest.mark.asyncio
async def test_unlist_wakes_waiters_and_ends_subscriptions(queue):
    queue.whitelist(4, "pipe")
    got = []
    queue.subscribe(4, got.append, "sub")
    lock = queue.get_lock()
    woke = []

    async def waiter(i):
        lock.acquire()
        await queue.wait_unsafe(4, f"waiter-{i}")
        woke.append(i)

    tasks = [asyncio.ensure_future(waiter(i)) for i in range(3)]
    await until(lambda: len(queue.get_waits()) == 1 and len(queue.get_waits()[0][1]) == 3)
    assert queue.get_waits() == [(4, ["waiter-0", "waiter-1", "waiter-2"])]
    queue.notify(4, 1)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sorted(woke) == [0, 1, 2]
    tasks = [asyncio.ensure_future(waiter(i)) for i in range(3, 5)]
    await until(lambda: queue.get_waits() != [])
    queue.notify(4, 2)
    queue.unlist(4)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    await until(lambda: got and got[-1] == -1)
    assert got == [1, 2, -1]
    assert queue.get_waits() == []
    queue.notify(4, 3)  # ignored: not whitelisted any more
    await asyncio.sleep(0.02)
    assert got == [1, 2, -1]
    assert queue.subscribe(4, got.append, "late") is None


@pytest.mark.asyncio
async def test_not_whitelisted(queue, caplog):
    queue.notify(77, 1)  # ignored
    assert queue.subscribe(77, print, "x") is None
    lock = queue.get_lock()
    lock.acquire()
    await asyncio.wait_for(queue.wait_unsafe(77, "x"), 1)  # returns at once
    assert not lock.locked()  # and released the lock
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="herald.compat"):
        queue.unsubscribe(77, 123)
        queue.unlist(77)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "unsubscribe" in messages[0] and "unlist" in messages[1]


@pytest.mark.asyncio
async def test_per_handle_limits():
    q = NotificationQueue(max_waiters=2, max_subscribers=2)
    try:
        q.whitelist(5, "pipe")
        q.subscribe(5, print, "a")
        q.subscribe(5, print, "b")
        with pytest.raises(herald.LimitExceeded):
            q.subscribe(5, print, "c")
        lock = q.get_lock()

        async def waiter():
            lock.acquire()
            await q.wait_unsafe(5, "w")

        tasks = [asyncio.ensure_future(waiter()) for _ in range(2)]
        await until(lambda: q.get_waits() and len(q.get_waits()[0][1]) == 2)
        lock.acquire()
        with pytest.raises(herald.LimitExceeded):
            await q.wait_unsafe(5, "third")
        assert not lock.locked()
        q.notify(5, 1)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    finally:
        q.close()


@pytest.mark.asyncio
async def test_lock_pattern_never_loses_a_wakeup(queue):
    """The documented pattern against a racing notifier thread, round after round: the notifier
    changes the state (with or without the lock) and then calls notify; the waiter checks under
    the lock and waits with wait_unsafe. A lost wake-up would hang a round."""
    queue.whitelist(6, "race")
    lock = queue.get_lock()
    rounds = 300
    state = {"produced": 0}
    consumed = threading.Semaphore(0)

    def notifier():
        rng = random.Random(11)
        for r in range(1, rounds + 1):
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.0005)
            if r % 2:
                state["produced"] = r  # without the lock
            else:
                with lock:
                    state["produced"] = r
            queue.notify(6, r)
            assert consumed.acquire(timeout=10), f"round {r}: the waiter never saw it"

    t = threading.Thread(target=notifier)
    t.start()
    waits = 0
    for r in range(1, rounds + 1):
        while True:
            lock.acquire()
            if state["produced"] >= r:
                lock.release()
                break
            waits += 1
            await asyncio.wait_for(queue.wait_unsafe(6, f"round-{r}"), 10)
        consumed.release()
    t.join()
    assert waits > 0  # the race was exercised: some rounds did wait


@pytest.mark.asyncio
async def test_lock_free_observe_check_wait(queue):
    queue.whitelist(7, "nolock")
    flag = {"set": False}
    ticket = queue.observe(7)

    def worker():
        flag["set"] = True
        queue.notify(7, 1)

    threading.Timer(0.01, worker).start()
    if not flag["set"]:
        await asyncio.wait_for(queue.wait(7, ticket, "lockless"), 10)
    assert flag["set"]
    with pytest.raises(herald.UnknownHandle):
        queue.observe(8)


@pytest.mark.asyncio
async def test_cancelled_wait_unsafe_cleans_up(queue):
    queue.whitelist(9, "cancel")
    lock = queue.get_lock()
    lock.acquire()
    task = asyncio.ensure_future(queue.wait_unsafe(9, "to-cancel"))
    await until(lambda: queue.get_waits() == [(9, ["to-cancel"])])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue.get_waits() == []
    assert not lock.locked()
