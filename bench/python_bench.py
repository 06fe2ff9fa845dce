#!/usr/bin/env python3
"""herald from Python: notify throughput, and the asyncio wake latency (a thread notifies, a task
awaiting s.recv() resumes) against a bare eventfd + loop.add_reader and against the old queue's
call_soon_threadsafe path, all in the same process and run.

  PYTHONPATH=build/release/python /usr/bin/python3 bench/python_bench.py [--rounds N] [--out F]

Writes JSON (default bench/results/python_bench.json) and prints a table. Goals: notify >= 1 M
calls/s; herald's wake p50 <= 1.5x the bare eventfd's; faster than call_soon_threadsafe.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time

import herald

GOALS = {
    "notify_calls_per_s": ">= 1e6",
    "wake_p50_herald_over_eventfd": "<= 1.5",
    "wake_p50_herald_over_call_soon_threadsafe": "< 1.0",
}


def bench_notify(calls):
    k = herald.Kernel()
    h = k.register(debug_hint="bench")
    notify = k.notify
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(calls):
            notify(h, i)
        best = max(best, calls / (time.perf_counter() - t0))
    k.close()
    return best


def percentiles(samples_ns):
    s = sorted(samples_ns)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000.0  # noqa: E731
    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "mean_us": statistics.fmean(s) / 1000.0}


def run_rounds(loop, rounds, fire, wait_one):
    """A notifier thread fires one event per round, after the loop has gone idle; the task
    measures from the fire to its resumption."""
    samples = []
    ack = threading.Semaphore(0)
    sent = [0]

    def notifier():
        for _ in range(rounds):
            time.sleep(0.0002)  # let the loop park in epoll
            sent[0] = time.perf_counter_ns()
            fire()
            if not ack.acquire(timeout=10):
                return

    async def consumer():
        t = threading.Thread(target=notifier)
        t.start()
        for _ in range(rounds):
            await wait_one()
            samples.append(time.perf_counter_ns() - sent[0])
            ack.release()
        t.join()

    loop.run_until_complete(consumer())
    return percentiles(samples)


def bench_herald(loop, rounds):
    k = herald.Kernel()
    h = k.register()
    s = k.subscribe(h, capacity=16)
    result = run_rounds(loop, rounds, lambda: k.notify(h, 0), s.recv)
    s.close()
    k.close()
    return result


def bench_eventfd(loop, rounds):
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    waiter = [None]

    def readable():
        os.eventfd_read(fd)
        w = waiter[0]
        if w is not None and not w.done():
            w.set_result(None)

    async def wait_one():
        waiter[0] = loop.create_future()
        await waiter[0]

    loop.add_reader(fd, readable)
    try:
        return run_rounds(loop, rounds, lambda: os.eventfd_write(fd, 1), wait_one)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def bench_call_soon_threadsafe(loop, rounds):
    """The old queue's path: the waiter registers an asyncio.Event under the lock; notify takes
    the lock, copies the waiters and wakes each with loop.call_soon_threadsafe(event.set)."""
    lock = threading.Lock()
    waiting = set()

    def notify():
        with lock:
            clients = list(waiting)
            waiting.clear()
        for client_loop, event in clients:
            client_loop.call_soon_threadsafe(event.set)

    async def wait_one():
        event = asyncio.Event()
        with lock:
            waiting.add((loop, event))
        await event.wait()

    return run_rounds(loop, rounds, notify, wait_one)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "python_bench.json"))
    args = parser.parse_args()

    notify_rate = bench_notify(args.calls)
    loop = asyncio.new_event_loop()
    wake = {}
    # Interleaved, twice each, best p50 kept per implementation: the machine is shared.
    for _ in range(2):
        for name, fn in (("herald", bench_herald), ("eventfd", bench_eventfd),
                         ("call_soon_threadsafe", bench_call_soon_threadsafe)):
            r = fn(loop, args.rounds)
            if name not in wake or r["p50_us"] < wake[name]["p50_us"]:
                wake[name] = r
    loop.close()

    ratios = {
        "wake_p50_herald_over_eventfd": wake["herald"]["p50_us"] / wake["eventfd"]["p50_us"],
        "wake_p99_herald_over_eventfd": wake["herald"]["p99_us"] / wake["eventfd"]["p99_us"],
        "wake_p50_herald_over_call_soon_threadsafe":
            wake["herald"]["p50_us"] / wake["call_soon_threadsafe"]["p50_us"],
    }
    doc = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "notify_calls_per_s": notify_rate,
        "wake_latency": wake,
        "ratios": ratios,
        "goals": GOALS,
        "met": {
            "notify_calls_per_s": notify_rate >= 1e6,
            "wake_p50_herald_over_eventfd": ratios["wake_p50_herald_over_eventfd"] <= 1.5,
            "wake_p50_herald_over_call_soon_threadsafe":
                ratios["wake_p50_herald_over_call_soon_threadsafe"] < 1.0,
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print_report(doc)


def print_report(doc):
    print(f"herald Python bench ({doc['python']}, {doc['machine']}): {doc['command']}")
    print(f"  k.notify from Python: {doc['notify_calls_per_s'] / 1e6:.2f} M calls/s "
          f"(goal {GOALS['notify_calls_per_s']}: {'met' if doc['met']['notify_calls_per_s'] else 'MISSED'})")
    print("  asyncio wake latency, thread notify -> task resumes (us):")
    for name, r in doc["wake_latency"].items():
        print(f"    {name:22s} p50 {r['p50_us']:8.1f}  p99 {r['p99_us']:8.1f}")
    for key in ("wake_p50_herald_over_eventfd", "wake_p50_herald_over_call_soon_threadsafe"):
        print(f"  {key}: {doc['ratios'][key]:.2f} (goal {GOALS[key]}: "
              f"{'met' if doc['met'][key] else 'MISSED'})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--print":
        with open(sys.argv[2]) as f:
            print_report(json.load(f))
    else:
        main()
