"""herald.Kernel, Handle, Subscription from threads: values, errors, bad input, GIL release."""

import math
import select
import threading
import time

import pytest

import herald


def test_notify_observe_receipt(kernel):
    h = kernel.register(debug_hint="jobs")
    assert kernel.observe(h) == 0
    r = kernel.notify(h, 42)
    assert isinstance(r, herald.Receipt) and isinstance(r, tuple)
    assert r == (1, 0, 0, 0)
    assert (r.seq, r.delivered, r.dropped, r.woken) == (1, 0, 0, 0)
    assert r._fields == ("seq", "delivered", "dropped", "woken")
    assert kernel.notify(h, -7).seq == 2
    assert kernel.observe(h) == 2
    n = kernel.wait_blocking(h, 0)
    assert n == herald.Notification(2, -7) and n.arg == -7
    assert "Notification(seq=2, arg=-7)" == repr(n)


def test_handle_value_semantics(kernel):
    a = kernel.register()
    b = kernel.register()
    assert a != b and a == herald.Handle.from_raw(a.raw)
    assert hash(a) == hash(herald.Handle.from_raw(a.raw))
    assert len({a, b, herald.Handle.from_raw(a.raw)}) == 2
    assert isinstance(a.raw, int) and a.raw != 0 and bool(a)
    assert not herald.Handle.from_raw(0)
    assert repr(a).startswith("Handle(index=")
    assert a != a.raw  # a Handle is not its integer
    with pytest.raises(herald.InvalidArgument):
        herald.Handle.from_raw(-1)
    with pytest.raises(herald.InvalidArgument):
        herald.Handle.from_raw(1 << 64)


def test_stale_and_forged_handles(kernel):
    h = kernel.register()
    kernel.unregister(h)
    forged = [h, herald.Handle.from_raw(0), herald.Handle.from_raw(12345),
              herald.Handle.from_raw((1 << 64) - 1)]
    for bad in forged:
        with pytest.raises(herald.UnknownHandle) as info:
            kernel.notify(bad, 1)
        assert info.value.code == "unknown_handle"
        with pytest.raises(herald.UnknownHandle):
            kernel.observe(bad)
        with pytest.raises(herald.UnknownHandle):
            kernel.subscribe(bad)
        with pytest.raises(herald.UnknownHandle):
            kernel.unregister(bad)
        with pytest.raises(herald.UnknownHandle):
            kernel.stats(bad)
        with pytest.raises(herald.UnknownHandle):
            kernel.wait_blocking(bad, 0, timeout=0)
    assert kernel.stats()["rejected"] >= len(forged)


@pytest.mark.parametrize("kwargs", [
    {"max_handles": 0}, {"max_handles": -1}, {"max_handles": 1 << 40},
    {"max_subscription_capacity": 0}, {"memory_limit": -5}, {"max_handles": 1.5},
    {"max_handles": True},
])
def test_bad_kernel_options(kwargs):
    with pytest.raises(herald.InvalidArgument):
        herald.Kernel(**kwargs)


def test_bad_sizes_and_arguments(kernel):
    with pytest.raises(herald.InvalidArgument):
        kernel.register(max_waiters=-1)
    with pytest.raises(herald.InvalidArgument):
        kernel.register(max_subscribers=1 << 33)
    h = kernel.register()
    for capacity in (0, -5, 1 << 40, 65537, (1 << 32) - 1):
        with pytest.raises(herald.InvalidArgument):
            kernel.subscribe(h, capacity=capacity)
    with pytest.raises(herald.InvalidArgument):
        kernel.subscribe(h, overflow="drop_oldest")
    with pytest.raises(herald.InvalidArgument):
        kernel.wait_blocking(h, 0, timeout=math.nan)
    with pytest.raises(herald.InvalidArgument):
        kernel.wait_blocking(h, -1, timeout=0)
    with pytest.raises(OverflowError):
        kernel.notify(h, 1 << 70)  # arg is a signed 64-bit integer
    with pytest.raises(TypeError):
        kernel.notify(h, "1")
    with pytest.raises(TypeError):
        kernel.notify(h)
    with pytest.raises(TypeError):
        kernel.notify("not a handle", 1)
    assert isinstance(herald.InvalidArgument("x"), ValueError)


def test_limits_and_memory():
    with herald.Kernel(max_handles=2) as k:
        k.register()
        h = k.register(max_subscribers=1, max_waiters=0)
        with pytest.raises(herald.LimitExceeded) as info:
            k.register()
        assert info.value.code == "limit_exceeded"
        s = k.subscribe(h)
        with pytest.raises(herald.LimitExceeded):
            k.subscribe(h)
        with pytest.raises(herald.LimitExceeded):
            k.wait_blocking(h, 0, timeout=0.01)
        s.close()
    with herald.Kernel(memory_limit=16) as k:
        with pytest.raises(herald.OutOfMemory) as info:
            k.register()
        assert isinstance(info.value, MemoryError) and info.value.code == "out_of_memory"


def test_exception_hierarchy():
    expected = {
        herald.UnknownHandle: "unknown_handle", herald.Closed: "closed", herald.Empty: "empty",
        herald.Full: "full", herald.LimitExceeded: "limit_exceeded",
        herald.OutOfMemory: "out_of_memory", herald.TimedOut: "timed_out",
        herald.Cancelled: "cancelled", herald.InvalidArgument: "invalid_argument",
    }
    for cls, code in expected.items():
        assert issubclass(cls, herald.Error) and cls.code == code
        e = cls("message")
        assert e.code == code and str(e) == "message"
        assert repr(e) == f"herald.{cls.__name__}('message', code='{code}')"
    assert issubclass(herald.TimedOut, TimeoutError)


def test_wait_blocking_timeout_and_notifier_thread(kernel):
    h = kernel.register()
    t0 = time.monotonic()
    with pytest.raises(herald.TimedOut) as info:
        kernel.wait_blocking(h, 0, timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    assert isinstance(info.value, TimeoutError) and info.value.code == "timed_out"
    with pytest.raises(herald.TimedOut):
        kernel.wait_blocking(h, 0, timeout=0)
    # The notifier is Python code: it runs only because wait_blocking released the GIL.
    t = threading.Timer(0.05, kernel.notify, (h, 5))
    t.start()
    n = kernel.wait_blocking(h, 0, timeout=10)
    t.join()
    assert n == (1, 5)


def test_wait_blocking_closed_by_unregister(kernel):
    h = kernel.register()
    t = threading.Timer(0.05, kernel.unregister, (h,))
    t.start()
    with pytest.raises(herald.Closed) as info:
        kernel.wait_blocking(h, 0, timeout=10)
    t.join()
    assert info.value.code == "closed"


def test_subscription_receive_and_overflow(kernel):
    h = kernel.register()
    s = kernel.subscribe(h, capacity=4, debug_hint="four")
    assert s.capacity == 4 and s.size == 0 and s.dropped == 0 and s.try_recv() is None
    receipts = [kernel.notify(h, i) for i in range(6)]
    assert [r.delivered for r in receipts] == [1, 1, 1, 1, 0, 0]
    assert [r.dropped for r in receipts] == [0, 0, 0, 0, 1, 1]
    assert s.size == 4 and s.dropped == 2
    assert "capacity=4" in repr(s) and "dropped=2" in repr(s)
    assert [s.try_recv().arg for _ in range(4)] == [0, 1, 2, 3]
    assert s.try_recv() is None
    latest = kernel.subscribe(h, capacity=1, overflow="keep_latest")
    for i in range(5):
        kernel.notify(h, 100 + i)
    assert latest.try_recv().arg == 100 and latest.try_recv().arg == 104
    assert latest.dropped == 3
    kernel.unregister(h)
    assert [s.try_recv().arg for _ in range(4)] == [100, 101, 102, 103]
    with pytest.raises(herald.Closed):
        s.try_recv()


def test_closed_after_unregister_and_close(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    kernel.notify(h, 1)
    kernel.unregister(h)
    assert s.try_recv().arg == 1
    with pytest.raises(herald.Closed):
        s.try_recv()
    with pytest.raises(herald.Closed):
        s.recv_blocking(timeout=1)
    h2 = kernel.register()
    with kernel.subscribe(h2, capacity=1) as s2:
        kernel.notify(h2, 3)
        kernel.notify(h2, 4)
    assert s2.closed and s2.size == 0 and s2.dropped == 1 and "closed" in repr(s2)
    with pytest.raises(herald.Closed):
        s2.try_recv()
    with pytest.raises(herald.Closed):
        s2.fileno()
    s2.close()  # idempotent


def test_recv_blocking_threads(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    with pytest.raises(herald.TimedOut):
        s.recv_blocking(timeout=0.02)
    t = threading.Timer(0.05, kernel.notify, (h, 9))
    t.start()
    assert s.recv_blocking(timeout=10).arg == 9
    t.join()
    # close() from another thread ends a blocking receive with Closed.
    t = threading.Timer(0.05, s.close)
    t.start()
    with pytest.raises(herald.Closed):
        s.recv_blocking()
    t.join()


def test_fileno_readiness(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    fd = s.fileno()
    assert fd == s.fileno()
    assert s.try_recv() is None
    assert select.select([fd], [], [], 0)[0] == []
    kernel.notify(h, 1)
    assert select.select([fd], [], [], 1)[0] == [fd]
    assert s.try_recv().arg == 1 and s.try_recv() is None
    assert select.select([fd], [], [], 0)[0] == []
    kernel.unregister(h)
    assert select.select([fd], [], [], 1)[0] == [fd]


def test_two_thread_conservation(kernel):
    h = kernel.register()
    s = kernel.subscribe(h, capacity=64)
    per_thread = 20000
    threads = [threading.Thread(target=lambda: [kernel.notify(h, i) for i in range(per_thread)])
               for _ in range(2)]
    for t in threads:
        t.start()
    received = 0
    while any(t.is_alive() for t in threads):
        while s.try_recv() is not None:
            received += 1
    for t in threads:
        t.join()
    assert received + s.size + s.dropped == 2 * per_thread
    assert kernel.stats(h)["notifications"] == 2 * per_thread


def test_stats_describe_repr_context(kernel):
    h = kernel.register(debug_hint="described")
    s = kernel.subscribe(h, debug_hint="sub-hint")
    kernel.notify(h, 1)
    st = kernel.stats()
    assert set(st) == {"live_handles", "notifications", "rejected", "delivered", "dropped",
                       "memory_used"}
    assert st["live_handles"] == 1 and st["notifications"] == 1 and st["delivered"] == 1
    hs = kernel.stats(h)
    assert hs == {"notifications": 1, "delivered": 1, "dropped": 0, "waiters": 0,
                  "subscriptions": 1}
    d = kernel.describe()
    assert isinstance(d, dict)
    text = str(d)
    assert "described" in text and "sub-hint" in text
    assert repr(kernel).startswith("<herald.Kernel live_handles=1")
    s.close()
    with herald.Kernel() as k2:
        h2 = k2.register()
    with pytest.raises(herald.UnknownHandle):
        k2.notify(h2, 1)


def test_positional_arguments_as_in_the_contract():
    with herald.Kernel(1024, 512, 1 << 20) as k:
        h = k.register("positional", False, 4, 2)
        s = k.subscribe(h, 8, "keep_latest", "sub")
        assert s.capacity == 8
        assert "positional" in str(k.describe())
        s.close()
