// Flood, then unregister: a worker notifies one handle N times while a receiver drains its
// subscription until it gets an error; then the handle is unregistered. The receiver must end
// with `closed` only after taking everything buffered: received + dropped == N exactly, and
// nothing is left in the ring (API.md §2, §4).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "test_support.hpp"

using namespace herald;

namespace {

/// Notifications per round: HERALD_FLOOD_N, default 100,000.
std::uint64_t flood_count() {
  if (const char* env = std::getenv("HERALD_FLOOD_N")) return std::strtoull(env, nullptr, 10);
  return 100000;
}

/// Rounds per configuration: HERALD_FLOOD_ROUNDS if set (then not bounded by time), else as many
/// as fit in the stress duration, at least one.
struct Rounds {
  std::uint64_t fixed = 0;
  std::chrono::steady_clock::time_point until;
  std::uint64_t done = 0;
  Rounds() {
    if (const char* env = std::getenv("HERALD_FLOOD_ROUNDS")) fixed = std::strtoull(env, nullptr, 10);
    until = std::chrono::steady_clock::now() + test::stress_duration();
  }
  bool next() {
    const bool more = fixed != 0 ? done < fixed : (done == 0 || std::chrono::steady_clock::now() < until);
    if (more) ++done;
    return more;
  }
};

struct Drained {
  std::uint64_t received = 0;
  Errc last = Errc{};
  bool in_order = true;
};

Task<void> drain_coroutine(Subscription& s, Drained& out, EventLoop& loop) {
  std::uint64_t last_seq = 0;
  for (;;) {
    auto r = co_await s.recv();
    if (!r) {
      out.last = r.error();
      break;
    }
    ++out.received;
    out.in_order = out.in_order && r->seq > last_seq;
    last_seq = r->seq;
  }
  loop.stop();
}

void drain_blocking(Subscription& s, Drained& out) {
  std::uint64_t last_seq = 0;
  for (;;) {
    auto r = s.recv_blocking();
    if (!r) {
      out.last = r.error();
      return;
    }
    ++out.received;
    out.in_order = out.in_order && r->seq > last_seq;
    last_seq = r->seq;
  }
}

/// One round: returns true when the counts hold.
bool flood_round(Producers producers, Overflow overflow, bool coroutine, std::uint64_t n) {
  Kernel k;
  const Handle h = k.register_handle({.producers = producers}).value();
  Subscription s = k.subscribe(h, {.capacity = 1024, .overflow = overflow}).value();
  Drained drained;
  EventLoop loop;
  std::thread receiver;
  if (coroutine) {
    spawn(loop, drain_coroutine(s, drained, loop));
    receiver = std::thread([&] { loop.run(); });
  } else {
    receiver = std::thread([&] { drain_blocking(s, drained); });
  }
  std::thread worker([&] {
    for (std::uint64_t i = 0; i < n; ++i) (void)k.notify(h, static_cast<std::int64_t>(i));
  });
  worker.join();
  const bool unregistered = k.unregister_handle(h).has_value();
  receiver.join();
  const bool ok = unregistered && drained.last == Errc::closed && drained.in_order &&
                  s.size() == 0 && drained.received + s.dropped() == n;
  if (!ok) {
    MESSAGE("received " << drained.received << " dropped " << s.dropped() << " size " << s.size()
                        << " last " << static_cast<int>(drained.last) << " of " << n);
  }
  return ok;
}

}  // namespace

TEST_SUITE("stress: flood then unregister") {
  TEST_CASE("a receiver drained until closed after a flood loses nothing, in every mode") {
    const std::uint64_t n = flood_count();
    for (const Producers producers : {Producers::single, Producers::multi}) {
      for (const Overflow overflow : {Overflow::drop_newest, Overflow::keep_latest}) {
        for (const bool coroutine : {true, false}) {
          CAPTURE(static_cast<int>(producers));
          CAPTURE(static_cast<int>(overflow));
          CAPTURE(coroutine);
          Rounds rounds;
          std::uint64_t failed = 0;
          while (rounds.next()) failed += flood_round(producers, overflow, coroutine, n) ? 0 : 1;
          MESSAGE(rounds.done << " rounds, " << failed << " lost items");
          CHECK(failed == 0);
        }
      }
    }
  }
}
