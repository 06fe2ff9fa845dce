"""herald under asyncio: await s.recv(), async for, await k.wait(), timeouts, task cancellation."""

import asyncio
import random
import threading

import pytest

import herald


def notify_later(kernel, h, arg, delay=0.02):
    t = threading.Timer(delay, kernel.notify, (h, arg))
    t.start()
    return t


@pytest.mark.asyncio
async def test_recv_woken_from_thread(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    loop_thread = threading.get_ident()
    t = notify_later(kernel, h, 11)
    n = await asyncio.wait_for(s.recv(), 10)
    assert n.arg == 11 and threading.get_ident() == loop_thread
    t.join()
    kernel.notify(h, 12)
    assert (await s.recv()).arg == 12  # buffered: no suspension
    s.close()


@pytest.mark.asyncio
async def test_recv_timeout(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    with pytest.raises(herald.TimedOut):
        await s.recv(timeout=0.02)
    with pytest.raises(TimeoutError):
        await s.recv(timeout=0)
    kernel.notify(h, 1)
    assert (await s.recv(timeout=0)).arg == 1
    s.close()


@pytest.mark.asyncio
async def test_async_for_ends_on_unregister(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)

    def produce():
        for i in range(100):
            kernel.notify(h, i)
        kernel.unregister(h)

    t = threading.Thread(target=produce)
    t.start()
    got = [n.arg async for n in s]
    t.join()
    assert got == list(range(100))


@pytest.mark.asyncio
async def test_close_wakes_async_recv(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    task = asyncio.ensure_future(s.recv())
    await asyncio.sleep(0.01)
    s.close()
    with pytest.raises(herald.Closed):
        await task


@pytest.mark.asyncio
async def test_second_concurrent_recv_is_refused(kernel):
    h = kernel.register()
    s = kernel.subscribe(h)
    first = asyncio.ensure_future(s.recv())
    await asyncio.sleep(0.01)
    with pytest.raises(herald.InvalidArgument):
        await s.recv()
    kernel.notify(h, 3)
    assert (await asyncio.wait_for(first, 10)).arg == 3
    s.close()


@pytest.mark.asyncio
async def test_cancelled_recv_loses_nothing(kernel):
    h = kernel.register()
    s = kernel.subscribe(h, capacity=1 << 16)
    total = 3000
    stop = threading.Event()

    def produce():
        for i in range(total):
            kernel.notify(h, i)
            if i % 50 == 0:
                stop.wait(0.0005)

    t = threading.Thread(target=produce)
    t.start()
    got = []
    rng = random.Random(7)
    while len(got) < total:
        task = asyncio.ensure_future(s.recv())
        await asyncio.sleep(0 if rng.random() < 0.5 else 0.0001)
        if not task.done():
            task.cancel()
        try:
            got.append((await task).arg)
        except asyncio.CancelledError:
            pass
        if not t.is_alive():
            while (n := s.try_recv()) is not None:
                got.append(n.arg)
    t.join()
    assert got == list(range(total)) and s.dropped == 0
    s.close()


@pytest.mark.asyncio
async def test_kernel_wait(kernel):
    h = kernel.register()
    t = notify_later(kernel, h, 21)
    n = await asyncio.wait_for(kernel.wait(h), 10)  # after=None: the ticket at the call
    assert n == (1, 21)
    t.join()
    # Already published: at once.
    assert (await kernel.wait(h, after=0)).arg == 21
    with pytest.raises(herald.TimedOut):
        await kernel.wait(h, timeout=0.02)
    assert kernel.stats(h)["subscriptions"] == 0  # the helper subscription is gone


@pytest.mark.asyncio
async def test_kernel_wait_closed_and_unknown(kernel):
    h = kernel.register()
    t = threading.Timer(0.02, kernel.unregister, (h,))
    t.start()
    with pytest.raises(herald.Closed):
        await asyncio.wait_for(kernel.wait(h), 10)
    t.join()
    with pytest.raises(herald.UnknownHandle):
        await kernel.wait(h)


@pytest.mark.asyncio
async def test_kernel_wait_cancel_withdraws(kernel):
    h = kernel.register()
    task = asyncio.ensure_future(kernel.wait(h))
    await asyncio.sleep(0.01)
    assert kernel.stats(h)["subscriptions"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kernel.stats(h)["subscriptions"] == 0
    # The notification a cancelled wait did not take is still there for the next one.
    kernel.notify(h, 5)
    assert (await kernel.wait(h, after=0)).arg == 5


@pytest.mark.asyncio
async def test_many_async_waiters_one_notify(kernel):
    h = kernel.register(max_subscribers=16)
    tasks = [asyncio.ensure_future(kernel.wait(h, after=0)) for _ in range(10)]
    await asyncio.sleep(0.01)
    notify_later(kernel, h, 8, 0).join()
    done = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(n == (1, 8) for n in done)
