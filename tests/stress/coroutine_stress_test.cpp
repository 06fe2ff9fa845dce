// Coroutine waiters and receivers on an EventLoop race notifier threads, timeouts and stop
// requests. Every wait resumes exactly once with a valid outcome; receivers count exactly.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

constexpr int kWaiters = 6;

struct Tallies {
  std::atomic<std::uint64_t> ok{0}, timed_out{0}, cancelled{0}, bad{0}, resumed{0}, awaited{0};
};

/// A stop source a canceller thread may fire while its coroutine waits, replaced per wait.
struct StopSlot {
  std::mutex mutex;
  std::stop_source source;
};

Task<void> waiter(Kernel& k, Handle h, StopSlot& slot, std::uint64_t seed,
                  const std::atomic<bool>& stop, Tallies& t, std::atomic<int>& running) {
  std::mt19937_64 rng(seed);
  while (!stop.load(std::memory_order_relaxed)) {
    std::stop_token token;
    {
      std::lock_guard lock(slot.mutex);
      slot.source = std::stop_source();
      token = slot.source.get_token();
    }
    const Ticket ticket = k.observe(h).value();
    t.awaited.fetch_add(1);
    const auto r = co_await k.wait(
        h, ticket, {.timeout = std::chrono::microseconds(1 + rng() % 300), .stop = &token});
    t.resumed.fetch_add(1);
    if (r) {
      (r->seq > ticket.seq ? t.ok : t.bad).fetch_add(1);
    } else if (r.error() == Errc::timed_out) {
      t.timed_out.fetch_add(1);
    } else if (r.error() == Errc::cancelled) {
      t.cancelled.fetch_add(1);
    } else {
      t.bad.fetch_add(1);
    }
  }
  running.fetch_sub(1);
}

Task<void> receiver(Subscription& s, std::uint64_t seed, const std::atomic<bool>& stop,
                    std::atomic<std::uint64_t>& received, std::atomic<int>& running) {
  std::mt19937_64 rng(seed);
  std::uint64_t last_seq = 0;
  bool in_order = true;
  for (;;) {
    const bool finishing = stop.load(std::memory_order_acquire);
    const auto r = co_await s.recv({.timeout = std::chrono::microseconds(1 + rng() % 200)});
    if (r) {
      received.fetch_add(1);
      in_order = in_order && r->seq > last_seq;  // one notifier per handle: strictly increasing
      last_seq = r->seq;
    } else if (finishing) {
      break;  // drained after the notifiers stopped
    }
  }
  CHECK(in_order);
  running.fetch_sub(1);
}

}  // namespace

TEST_SUITE("stress: coroutines") {
  TEST_CASE("coroutine waits racing notify, timeouts and stop requests resume exactly once") {
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    Kernel k;
    const Handle h = k.register_handle({.max_waiters = 64}).value();
    EventLoop loop;
    std::atomic<bool> stop{false};
    std::atomic<int> running{kWaiters};
    Tallies t;
    std::array<StopSlot, kWaiters> slots;
    for (int i = 0; i < kWaiters; ++i)
      spawn(loop, waiter(k, h, slots[i], seed + i, stop, t, running));

    std::thread notifier([&] {
      std::mt19937_64 rng(seed ^ 1);
      while (!stop.load()) {
        (void)k.notify(h, 1);
        if (rng() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      }
    });
    std::thread canceller([&] {
      std::mt19937_64 rng(seed ^ 2);
      while (!stop.load()) {
        StopSlot& slot = slots[rng() % kWaiters];
        {
          std::lock_guard lock(slot.mutex);
          slot.source.request_stop();
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
      }
    });
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    while (std::chrono::steady_clock::now() < until) loop.poll();
    stop = true;
    notifier.join();
    canceller.join();
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (running.load() != 0 && std::chrono::steady_clock::now() < give_up) loop.poll();
    REQUIRE(running.load() == 0);
    MESSAGE("ok " << t.ok.load() << ", timed out " << t.timed_out.load() << ", cancelled "
                  << t.cancelled.load());
    CHECK(t.bad.load() == 0);
    CHECK(t.resumed.load() == t.awaited.load());
    CHECK(t.ok.load() > 0);
    CHECK(t.timed_out.load() > 0);
    CHECK(t.cancelled.load() > 0);
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE(
      "coroutine receivers with timeouts lose nothing: received + size + dropped == observed") {
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    Kernel k;
    constexpr int kHandles = 3;
    std::vector<Handle> hs;
    std::vector<Subscription> subs;
    for (int i = 0; i < kHandles; ++i) {
      hs.push_back(
          k.register_handle({.producers = i == 0 ? Producers::single : Producers::multi}).value());
      subs.push_back(k.subscribe(hs.back(), {.capacity = 8u << i,
                                             .overflow = i == 2 ? Overflow::keep_latest
                                                                : Overflow::drop_newest})
                         .value());
    }
    EventLoop loop;
    std::atomic<bool> stop{false};
    std::atomic<int> running{kHandles};
    std::array<std::atomic<std::uint64_t>, kHandles> received{};
    for (int i = 0; i < kHandles; ++i)
      spawn(loop, receiver(subs[i], seed + i, stop, received[i], running));
    std::array<std::uint64_t, kHandles> sent{};
    std::thread notifier([&] {
      std::mt19937_64 rng(seed ^ 3);
      while (!stop.load()) {
        const int i = static_cast<int>(rng() % kHandles);
        (void)k.notify(hs[i], 0);
        ++sent[i];
        if (rng() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100));
      }
    });
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    while (std::chrono::steady_clock::now() < until) loop.poll();
    stop.store(true, std::memory_order_release);
    notifier.join();
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (running.load() != 0 && std::chrono::steady_clock::now() < give_up) loop.poll();
    REQUIRE(running.load() == 0);
    for (int i = 0; i < kHandles; ++i) {
      CAPTURE(i);
      CHECK(sent[i] > 0);
      CHECK(received[i].load() + subs[i].size() + subs[i].dropped() == sent[i]);
    }
  }
}
