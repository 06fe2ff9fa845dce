// fuzz_lifecycle_mt: the input's operations are split across two threads that share a pool of
// handles; what must hold under concurrency is checked once both are quiet: no crash, the kernel's
// totals equal what the callers were told receipt by receipt, and memory returns to its baseline.
#include <herald/herald.hpp>

#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using namespace herald;

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "fuzz_lifecycle_mt: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

constexpr std::size_t kPool = 4;

struct Totals {
  std::uint64_t accepted = 0, rejected = 0, observed = 0;
};

void worker(Kernel& k, std::array<std::atomic<std::uint64_t>, kPool>& pool,
            const std::uint8_t* data, std::size_t size, Totals& t) {
  std::vector<Subscription> subs;
  for (std::size_t i = 0; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i] % 10;
    const std::uint8_t a = data[i + 1];
    auto& slot = pool[a % kPool];
    const Handle h = Handle::from_raw(slot.load());
    switch (op) {
      case 0: {
        auto r = k.register_handle(
            {.producers = Producers::multi, .max_waiters = 2, .max_subscribers = 3});
        if (!r) {
          FUZZ_CHECK(r.error() == Errc::limit_exceeded || r.error() == Errc::out_of_memory);
          break;
        }
        std::uint64_t empty = 0;
        if (!slot.compare_exchange_strong(empty, r->raw())) FUZZ_CHECK(k.unregister_handle(*r));
        break;
      }
      case 1:
        if (const std::uint64_t raw = slot.exchange(0))
          FUZZ_CHECK(k.unregister_handle(Handle::from_raw(raw)));
        break;
      case 2:
      case 3: {
        auto r = k.notify(op == 2 ? h : Handle::from_raw(h.raw() ^ (std::uint64_t{a} << 32)), a);
        if (r) {
          ++t.accepted;
          t.observed += r->delivered + r->dropped;
        } else {
          FUZZ_CHECK(r.error() == Errc::unknown_handle);
          ++t.rejected;
        }
        break;
      }
      case 4: {
        auto s = k.subscribe(
            h, {.capacity = 1u + a % 16,
                .overflow = (a & 1) != 0 ? Overflow::keep_latest : Overflow::drop_newest});
        if (s) {
          subs.push_back(std::move(s).value());
        } else {
          const Errc e = s.error();
          FUZZ_CHECK(e == Errc::unknown_handle || e == Errc::limit_exceeded ||
                     e == Errc::out_of_memory);
        }
        break;
      }
      case 5:
        if (!subs.empty()) subs.erase(subs.begin() + a % subs.size());
        break;
      case 6:
        for (auto& s : subs) {
          auto r = s.try_recv();
          FUZZ_CHECK(r || r.error() == Errc::empty || r.error() == Errc::closed);
        }
        break;
      case 7: {
        auto r = k.observe(h);
        FUZZ_CHECK(r || r.error() == Errc::unknown_handle);
        break;
      }
      case 8: {
        auto r = k.wait_blocking(h, Ticket{a % 4u}, {.timeout = std::chrono::nanoseconds(0)});
        FUZZ_CHECK(r || r.error() == Errc::unknown_handle || r.error() == Errc::timed_out ||
                   r.error() == Errc::closed || r.error() == Errc::limit_exceeded);
        if (r) FUZZ_CHECK(r->seq > a % 4u);
        break;
      }
      default: {
        auto r = k.stats(h);
        FUZZ_CHECK(r || r.error() == Errc::unknown_handle);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  Kernel k(
      KernelOptions{.max_handles = 3, .max_subscription_capacity = 16, .memory_limit = 16 * 1024});
  std::array<std::atomic<std::uint64_t>, kPool> pool{};
  std::array<Totals, 2> totals{};
  // The first byte chooses where the input splits between the threads.
  const std::size_t split = 1 + (data[0] * (size - 1)) / 256;
  std::barrier start(2);
  std::thread other([&] {
    start.arrive_and_wait();
    worker(k, pool, data + split, size - split, totals[1]);
  });
  start.arrive_and_wait();
  worker(k, pool, data + 1, split - 1, totals[0]);
  other.join();

  const KernelStats s = k.stats();
  FUZZ_CHECK(s.notifications == totals[0].accepted + totals[1].accepted);
  FUZZ_CHECK(s.rejected == totals[0].rejected + totals[1].rejected);
  FUZZ_CHECK(s.delivered + s.dropped == totals[0].observed + totals[1].observed);
  for (auto& slot : pool)
    if (const std::uint64_t raw = slot.exchange(0))
      FUZZ_CHECK(k.unregister_handle(Handle::from_raw(raw)));
  FUZZ_CHECK(k.stats().live_handles == 0);
  FUZZ_CHECK(k.stats().memory_used == 0);
  return 0;
}
