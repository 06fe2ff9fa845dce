// Notifiers race consumers on one handle; every count in API.md §2 is checked exactly.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "core/latest_lanes.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

constexpr unsigned kMaxNotifiers = 4;

/// What one consumer saw on one subscription, with the per-notifier FIFO check built in.
struct Tally {
  std::uint64_t received = 0;
  std::array<std::int64_t, kMaxNotifiers> last{};  // last counter seen per notifier (1-based)
  bool fifo = true;
  bool seq_ok = true;
  std::uint64_t last_seq_single = 0;

  void take(const Notification& n, bool strictly_increasing_seq) {
    ++received;
    const auto notifier = static_cast<unsigned>(n.arg >> 40);
    const std::int64_t counter = n.arg & ((std::int64_t{1} << 40) - 1);
    if (notifier >= kMaxNotifiers || counter <= last[notifier]) {
      fifo = false;
    } else {
      last[notifier] = counter;
    }
    if (n.seq == 0 || (strictly_increasing_seq && n.seq <= last_seq_single)) seq_ok = false;
    last_seq_single = n.seq;
  }
};

struct Config {
  std::uint32_t capacity;
  Overflow overflow;
};

void run_counting_stress(Producers producers, unsigned notifiers) {
  const std::vector<Config> configs = {{1, Overflow::drop_newest},  {4, Overflow::drop_newest},
                                       {64, Overflow::drop_newest}, {4096, Overflow::drop_newest},
                                       {1, Overflow::keep_latest},  {4, Overflow::keep_latest},
                                       {64, Overflow::keep_latest}, {4096, Overflow::keep_latest}};
  Kernel k;
  const Handle h = k.register_handle({.producers = producers}).value();
  std::vector<Subscription> subs;
  for (const Config& c : configs)
    subs.push_back(k.subscribe(h, {.capacity = c.capacity, .overflow = c.overflow}).value());
  std::vector<Tally> tallies(subs.size());

  std::atomic<bool> stop_notifying{false};
  std::atomic<unsigned> notifiers_done{0};
  std::array<std::uint64_t, kMaxNotifiers> sent{};
  std::array<std::uint64_t, kMaxNotifiers> receipt_sum{};
  const auto until = std::chrono::steady_clock::now() + test::stress_duration();
  const unsigned consumers = 2;

  test::run_threads(notifiers + consumers + 1, [&](unsigned id) {
    if (id < notifiers) {
      std::uint64_t n = 0;
      std::uint64_t acc = 0;
      // At least one burst each, however late the thread is scheduled on a loaded machine.
      do {
        for (int burst = 0; burst < 64; ++burst) {
          ++n;
          const auto r = k.notify(h, (std::int64_t{id} << 40) | static_cast<std::int64_t>(n));
          acc += r.value().delivered + r->dropped;
        }
      } while (!stop_notifying.load(std::memory_order_relaxed));
      sent[id] = n;
      receipt_sum[id] = acc;
      notifiers_done.fetch_add(1);
    } else if (id < notifiers + consumers) {
      // Consumer c owns subscriptions c, c + consumers, ...; consumer 0 polls (try_recv and
      // batches), consumer 1 blocks in recv_blocking with short timeouts.
      const unsigned c = id - notifiers;
      std::array<Notification, 16> batch{};
      for (;;) {
        const bool finished = notifiers_done.load() == notifiers;
        bool any = false;
        for (std::size_t i = c; i < subs.size(); i += consumers) {
          const bool strict = producers == Producers::single;
          if (c == 0) {
            const std::size_t got = subs[i].try_recv_batch(batch);
            for (std::size_t j = 0; j < got; ++j) tallies[i].take(batch[j], strict);
            if (auto r = subs[i].try_recv()) {
              tallies[i].take(*r, strict);
              any = true;
            }
            any = any || got != 0;
          } else if (auto r = subs[i].recv_blocking({.timeout = 200us})) {
            tallies[i].take(*r, strict);
            any = true;
          }
        }
        if (finished && !any) break;  // drained after the last notify returned
      }
    } else {
      std::this_thread::sleep_until(until);
      stop_notifying = true;
    }
  });

  std::uint64_t total = 0;
  for (unsigned i = 0; i < notifiers; ++i) total += sent[i];
  std::uint64_t receipts = 0;
  for (unsigned i = 0; i < notifiers; ++i) receipts += receipt_sum[i];
  REQUIRE(total > 0);
  MESSAGE("notifications: " << total);
  CHECK(k.observe(h).value().seq == total);
  CHECK(receipts == total * subs.size());

  std::uint64_t delivered_and_dropped = 0;
  for (std::size_t i = 0; i < subs.size(); ++i) {
    CAPTURE(i);
    CAPTURE(configs[i].capacity);
    const Tally& t = tallies[i];
    CHECK(t.fifo);
    CHECK(t.seq_ok);
    CHECK(subs[i].size() == 0);
    CHECK(t.received > 0);                                            // no subscription starved
    CHECK(t.received + subs[i].size() + subs[i].dropped() == total);  // the counting rule
    delivered_and_dropped += t.received + subs[i].dropped();
  }
  const HandleStats s = k.stats(h).value();
  CHECK(s.notifications == total);
  CHECK(s.delivered + s.dropped == delivered_and_dropped);
}

}  // namespace

TEST_SUITE("stress: counting") {
  TEST_CASE("three notifiers and two consumers: received + size + dropped == observed") {
    run_counting_stress(Producers::multi, 3);
  }
  TEST_CASE("one notifier on a Producers::single handle: exact counts and strict FIFO") {
    run_counting_stress(Producers::single, 1);
  }

  TEST_CASE("a latest lane's readers never see a torn notification while its owner writes") {
    // The owner publishes on one handle, retargets to a new one every 1000 writes (seqs start
    // again at 1 there), and clears some; every arg encodes its handle and seq, so a read that
    // mixed two writes shows up as a mismatch. Readers also check that a handle's seqs never go
    // back (no handle is used twice).
    detail::LatestLane lane;
    std::atomic<bool> stop{false};
    auto arg_of = [](std::uint64_t h, std::uint64_t seq) {
      return static_cast<std::int64_t>((h << 40) ^ (seq * 2654435761U));
    };
    std::atomic<std::uint64_t> torn{0};
    std::atomic<std::uint64_t> complete{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r) {
      readers.emplace_back([&] {
        std::uint64_t last_handle = 0;
        std::uint64_t last_seq = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          std::uint64_t h = 0;
          Notification n{};
          if (!lane.read(h, n)) continue;
          complete.fetch_add(1, std::memory_order_relaxed);
          if (n.arg != arg_of(h, n.seq) || (h == last_handle && n.seq < last_seq))
            torn.fetch_add(1, std::memory_order_relaxed);
          last_handle = h;
          last_seq = n.seq;
        }
      });
    }
    const auto until = std::chrono::steady_clock::now() + test::stress_duration();
    std::uint64_t writes = 0;
    for (std::uint64_t h = 1; std::chrono::steady_clock::now() < until; ++h) {
      lane.retarget(h);
      for (std::uint64_t seq = 1; seq <= 1000; ++seq, ++writes) lane.publish(seq, arg_of(h, seq));
      if (h % 3 == 2) lane.clear();
    }
    stop = true;
    for (auto& t : readers) t.join();
    MESSAGE("lane writes: " << writes << ", complete reads: " << complete.load());
    CHECK(torn.load() == 0);
    CHECK(complete.load() > 0);
  }
}
