#!/usr/bin/env python3
"""herald from Python: a worker thread notifies, an asyncio task receives, a compat queue."""

import asyncio
import threading

import herald
from herald.compat import NotificationQueue


async def main() -> None:
    with herald.Kernel() as k:
        jobs = k.register(debug_hint="jobs")
        with k.subscribe(jobs, capacity=64) as s:

            def worker() -> None:  # any thread: notify never blocks and runs no callback
                for i in range(5):
                    k.notify(jobs, i * i)
                k.unregister(jobs)  # the subscription drains, then ends

            threading.Thread(target=worker).start()
            async for n in s:  # wakes through the subscription's eventfd
                print(f"received seq={n.seq} arg={n.arg}")

        done = k.register(debug_hint="done")
        threading.Timer(0.01, k.notify, (done, 42)).start()
        n = await k.wait(done, after=0, timeout=5)
        print(f"waited: {n}")
        print(f"stats: {k.stats()}")

    # The drop-in for the old queue: callbacks run on this loop, never inside notify().
    q = NotificationQueue()
    q.whitelist(1, "pipe")
    seen = []
    q.subscribe(1, seen.append, "printer")
    threading.Thread(target=lambda: [q.notify(1, a) for a in (7, 8, 9)]).start()
    while len(seen) < 3:
        await asyncio.sleep(0.001)
    q.unlist(1)
    while seen[-1] != -1:
        await asyncio.sleep(0.001)
    print(f"compat subscriber got {seen}")
    q.close()


if __name__ == "__main__":
    asyncio.run(main())
