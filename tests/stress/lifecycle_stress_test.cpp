// Register, unregister, subscribe, destroy and notify race across threads on a shared pool of
// handles, with forged handles mixed in. Nothing may crash, and once quiet every total in
// KernelStats must equal what the callers were told, one receipt at a time.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <optional>
#include <random>
#include <vector>

#include "test_support.hpp"

using namespace herald;

namespace {

constexpr unsigned kPool = 16;

struct Totals {
  std::uint64_t accepted = 0, rejected = 0, observed = 0;
};

}  // namespace

TEST_SUITE("stress: lifecycle") {
  TEST_CASE("control plane and data plane race without losing a count") {
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    Kernel k(KernelOptions{.max_handles = 64, .max_subscription_capacity = 256});
    std::array<std::atomic<std::uint64_t>, kPool> pool{};
    std::atomic<bool> stop{false};
    constexpr unsigned kControl = 2;
    constexpr unsigned kNotifiers = 2;
    std::array<Totals, kNotifiers> totals{};
    std::atomic<std::uint64_t> registrations{0};
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();

    test::run_threads(kControl + kNotifiers + 1, [&](unsigned id) {
      std::mt19937_64 rng(seed + id);
      if (id < kControl) {
        std::vector<Subscription> mine;
        while (!stop.load(std::memory_order_relaxed)) {
          auto& slot = pool[rng() % kPool];
          switch (rng() % 6) {
            case 0: {  // register into an empty pool slot
              std::uint64_t empty = 0;
              auto h = k.register_handle({.producers = Producers::multi, .max_subscribers = 4});
              if (!h) break;
              registrations.fetch_add(1);
              if (!slot.compare_exchange_strong(empty, h->raw())) (void)k.unregister_handle(*h);
              break;
            }
            case 1: {  // unregister whatever is there
              const std::uint64_t raw = slot.exchange(0);
              if (raw != 0) CHECK(k.unregister_handle(Handle::from_raw(raw)));
              break;
            }
            case 2:
            case 3: {  // subscribe (the handle may vanish meanwhile)
              const Handle h = Handle::from_raw(slot.load());
              const auto cap = static_cast<std::uint32_t>(1u << (rng() % 9));
              auto s = k.subscribe(
                  h, {.capacity = cap,
                      .overflow = rng() % 2 ? Overflow::keep_latest : Overflow::drop_newest});
              if (s) {
                mine.push_back(std::move(s).value());
              } else {
                const Errc e = s.error();
                CHECK((e == Errc::unknown_handle || e == Errc::limit_exceeded));
              }
              break;
            }
            case 4:  // drop a subscription (racing notify and unregister)
              if (!mine.empty()) {
                std::swap(mine[rng() % mine.size()], mine.back());
                mine.pop_back();
              }
              break;
            default:  // drain a little
              for (auto& s : mine) {
                for (int i = 0; i < 8; ++i) {
                  auto r = s.try_recv();
                  if (!r) {
                    CHECK((r.error() == Errc::empty || r.error() == Errc::closed));
                    break;
                  }
                }
              }
          }
        }
      } else if (id < kControl + kNotifiers) {
        Totals& t = totals[id - kControl];
        while (!stop.load(std::memory_order_relaxed)) {
          const Handle h = rng() % 8 == 0 ? Handle::from_raw(rng())
                                          : Handle::from_raw(pool[rng() % kPool].load());
          if (auto r = k.notify(h, static_cast<std::int64_t>(rng()))) {
            ++t.accepted;
            t.observed += r->delivered + r->dropped;
          } else {
            CHECK(r.error() == Errc::unknown_handle);
            ++t.rejected;
          }
          (void)k.observe(h);
          (void)k.stats(h);
        }
      } else {
        std::this_thread::sleep_until(until);
        stop = true;
      }
    });

    Totals sum;
    for (const Totals& t : totals) {
      sum.accepted += t.accepted;
      sum.rejected += t.rejected;
      sum.observed += t.observed;
    }
    MESSAGE("registrations " << registrations.load() << ", accepted " << sum.accepted
                             << ", rejected " << sum.rejected);
    const KernelStats s = k.stats();
    CHECK(s.notifications == sum.accepted);
    CHECK(s.rejected == sum.rejected);
    CHECK(s.delivered + s.dropped == sum.observed);
    for (auto& slot : pool) {
      if (const std::uint64_t raw = slot.exchange(0))
        REQUIRE(k.unregister_handle(Handle::from_raw(raw)));
    }
    CHECK(k.stats().live_handles == 0);
    CHECK(k.stats().memory_used == 0);
    CHECK(k.stats().notifications == sum.accepted);
  }

  TEST_CASE("subscriptions destroyed while notifiers push into them") {
    Kernel k;
    const Handle h = k.register_handle().value();
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> observed{0};
    std::atomic<std::uint64_t> notified{0};
    std::uint64_t counted = 0;
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    test::run_threads(3, [&](unsigned id) {
      if (id < 2) {
        std::uint64_t local = 0;
        std::uint64_t calls = 0;
        std::uint64_t last = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          const auto r = k.notify(h, id).value();
          local += r.delivered + r.dropped;
          ++calls;
          // The list flag's RMWs share the seq word with these fetch_adds: seqs stay a count.
          CHECK(r.seq > last);
          last = r.seq;
        }
        observed.fetch_add(local);
        notified.fetch_add(calls);
      } else {
        std::uint64_t calls = 0;
        while (std::chrono::steady_clock::now() < until) {
          Subscription s = k.subscribe(h, {.capacity = 8}).value();
          // A notify that starts after subscribe() returned reaches the new ring (stored or, with
          // the ring full of the other notifiers' items, dropped), whatever the list was before.
          const auto mine = k.notify(h, 99).value();
          CHECK(mine.delivered + mine.dropped == 1);
          observed.fetch_add(mine.delivered + mine.dropped);
          ++calls;
          std::uint64_t received = 0;
          for (int i = 0; i < 16; ++i) received += s.try_recv() ? 1 : 0;
          std::this_thread::yield();
          // What this subscription observed before it goes: exact at the moment of unsubscribe.
          counted += received;
        }
        notified.fetch_add(calls);
        stop = true;
      }
    });
    const HandleStats s = k.stats(h).value();
    CHECK(s.subscriptions == 0);
    CHECK(s.delivered + s.dropped == observed.load());
    CHECK(s.delivered >= counted);
    CHECK(s.notifications == notified.load());
    CHECK(k.observe(h).value().seq == notified.load());
  }

  TEST_CASE("two unregisters, a subscribe, a notifier and stats race on one handle") {
    // Without a kernel-wide lock: the slot's lock makes exactly one unregister the owner and
    // orders the subscribe against it, and stats() scans the table while
    // cores leave it.
    Kernel k(KernelOptions{.max_handles = 8});
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    std::uint64_t rounds = 0, subscribed = 0, notified = 0, delivered = 0;
    while (std::chrono::steady_clock::now() < until || rounds < 50) {
      const Handle h = k.register_handle().value();
      std::atomic<unsigned> ready{0};
      std::array<bool, 2> won{};
      std::optional<Subscription> sub;
      std::uint64_t accepted = 0, pushed = 0;  // the notifier's receipts
      test::run_threads(5, [&](unsigned id) {
        ready.fetch_add(1);
        while (ready.load() < 5) std::this_thread::yield();
        switch (id) {
          case 0:
          case 1:
            won[id] = k.unregister_handle(h).has_value();
            break;
          case 2:
            if (auto s = k.subscribe(h, {.capacity = 4})) {
              sub.emplace(std::move(s).value());
            } else {
              CHECK(s.error() == Errc::unknown_handle);
            }
            break;
          case 3:
            for (int i = 0; i < 8; ++i) {
              if (auto r = k.notify(h, i)) {
                ++accepted;
                pushed += r->delivered + r->dropped;  // all for `sub`, the one subscription
              }
            }
            break;
          default:
            for (int i = 0; i < 4; ++i) {
              const KernelStats st = k.stats();
              CHECK(st.live_handles <= 1);
              CHECK(k.describe().find("\"live_handles\"") != std::string::npos);
            }
        }
      });
      CHECK(won[0] != won[1]);  // exactly one unregister succeeded
      if (sub) {
        ++subscribed;
        // Unregistered: the subscription hands out what it buffered, then `closed`.
        std::uint64_t got = 0;
        for (;;) {
          auto r = sub->try_recv();
          if (r) {
            ++got;
            continue;
          }
          CHECK(r.error() == Errc::closed);
          break;
        }
        CHECK(got + sub->dropped() == pushed);  // every push the receipts counted, nothing lost
        delivered += got;
        sub.reset();
      }
      notified += accepted;
      ++rounds;
    }
    MESSAGE("rounds " << rounds << ", subscribed " << subscribed << ", notified " << notified
                      << ", received " << delivered);
    const KernelStats st = k.stats();
    CHECK(st.live_handles == 0);
    CHECK(st.notifications == notified);
    CHECK(st.memory_used == 0);
  }
}
