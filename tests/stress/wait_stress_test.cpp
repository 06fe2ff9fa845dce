// Blocking waiters with short timeouts and stop requests race notifiers and unregister.
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

TEST_SUITE("stress: waiters") {
  TEST_CASE("first waiters race notifiers that publish in their lanes: nothing is missed") {
    // Each round: a fresh multi-producer handle, two notifiers notifying it (and, now and then,
    // another handle, which moves their lanes), and two waiters that start at once and follow
    // the handle from ticket 0 to the last seq. The first wait of a round marks the handle
    // while notifies are publishing in lanes; a notification missed there would leave a waiter
    // behind the last seq until its timeout.
    constexpr int kPerNotifier = 200;
    Kernel k;
    const Handle elsewhere = k.register_handle().value();
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    int rounds = 0;
    while (std::chrono::steady_clock::now() < until) {
      const Handle h = k.register_handle().value();
      std::atomic<int> go{0};
      std::atomic<int> missed{0};
      std::vector<std::thread> threads;
      for (int n = 0; n < 2; ++n) {
        threads.emplace_back([&, n] {
          go.fetch_add(1);
          while (go.load() < 4) {
          }
          for (int i = 1; i <= kPerNotifier; ++i) {
            (void)k.notify(h, n * kPerNotifier + i);
            if (i % 64 == n) (void)k.notify(elsewhere, i);
          }
        });
      }
      for (int w = 0; w < 2; ++w) {
        threads.emplace_back([&] {
          go.fetch_add(1);
          while (go.load() < 4) {
          }
          std::uint64_t seen = 0;
          while (seen < 2 * kPerNotifier) {
            const Result<Notification> r = k.wait_blocking(h, Ticket{seen}, {.timeout = 5s});
            if (!r) {
              missed.fetch_add(1);
              return;
            }
            REQUIRE(r->seq > seen);
            seen = r->seq;
          }
        });
      }
      for (std::thread& t : threads) t.join();
      REQUIRE(missed.load() == 0);
      REQUIRE(k.unregister_handle(h));
      ++rounds;
    }
    MESSAGE(rounds << " rounds");
    CHECK(rounds > 0);
  }

  TEST_CASE("waits that time out or are cancelled as notifiers complete them stay exact") {
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    Kernel k;
    const Handle h = k.register_handle({.max_waiters = 8}).value();
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> ok{0}, timed_out{0}, cancelled{0}, bad{0};
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    constexpr unsigned kWaiters = 4;
    test::run_threads(kWaiters + 2, [&](unsigned id) {
      std::mt19937_64 rng(seed + id);
      if (id < kWaiters) {
        while (!stop.load(std::memory_order_relaxed)) {
          const Ticket t = k.observe(h).value();
          std::stop_source source;
          const std::stop_token token = source.get_token();
          if (rng() % 8 == 0) source.request_stop();
          const auto r = k.wait_blocking(
              h, t, {.timeout = std::chrono::microseconds(rng() % 200), .stop = &token});
          if (r) {
            (r->seq > t.seq ? ok : bad).fetch_add(1);
          } else if (r.error() == Errc::timed_out) {
            timed_out.fetch_add(1);
          } else if (r.error() == Errc::cancelled) {
            cancelled.fetch_add(1);
          } else {
            bad.fetch_add(1);
          }
        }
      } else if (id == kWaiters) {
        while (!stop.load(std::memory_order_relaxed)) {
          (void)k.notify(h, 1);
          if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100));
        }
      } else {
        std::this_thread::sleep_until(until);
        stop = true;
      }
    });
    MESSAGE("ok " << ok.load() << ", timed out " << timed_out.load() << ", cancelled "
                  << cancelled.load());
    CHECK(bad.load() == 0);
    CHECK(ok.load() > 0);
    CHECK(timed_out.load() > 0);
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE("unregister races parked waiters and notifiers") {
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    Kernel k;
    std::uint64_t rounds = 0;
    while (std::chrono::steady_clock::now() < until) {
      ++rounds;
      const Handle h = k.register_handle().value();
      std::atomic<unsigned> finished{0};
      std::atomic<unsigned> bad{0};
      test::run_threads(4, [&](unsigned id) {
        if (id < 2) {
          for (int i = 0; i < 4; ++i) {
            const auto r = k.wait_blocking(h, Ticket{k.observe(h).value_or(Ticket{0}).seq});
            if (!r && r.error() != Errc::closed && r.error() != Errc::unknown_handle) bad++;
            if (!r) break;
          }
          finished++;
        } else if (id == 2) {
          for (int i = 0; i < 50; ++i) {
            auto r = k.notify(h, i);
            if (!r && r.error() != Errc::unknown_handle) bad++;
          }
        } else {
          std::this_thread::yield();
          CHECK(k.unregister_handle(h));
        }
      });
      CHECK(bad.load() == 0);
      CHECK(finished.load() == 2);
    }
    MESSAGE("rounds " << rounds);
    CHECK(k.stats().live_handles == 0);
    CHECK(k.stats().memory_used == 0);
  }
}
