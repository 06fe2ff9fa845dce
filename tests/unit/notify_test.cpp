#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;

TEST_SUITE("notify") {
  TEST_CASE("the data plane is noexcept") {
    Kernel k;
    Handle h;
    Subscription s;
    static_assert(noexcept(k.notify(h, 1)));
    static_assert(noexcept(k.observe(h)));
    static_assert(noexcept(k.wait_blocking(h, Ticket{0})));
    static_assert(noexcept(k.stats(h)));
    static_assert(noexcept(s.try_recv()));
    static_assert(noexcept(s.recv_blocking()));
    static_assert(noexcept(s.size()));
    static_assert(noexcept(s.dropped()));
  }

  TEST_CASE_TEMPLATE("sequence numbers run 1, 2, 3 and observe returns the highest", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    CHECK(k.observe(h).value().seq == 0);
    for (std::uint64_t i = 1; i <= 100; ++i) {
      const NotifyReceipt r = k.notify(h, static_cast<std::int64_t>(i * 10)).value();
      CHECK(r.seq == i);
      CHECK(r.delivered == 0);
      CHECK(r.dropped == 0);
      CHECK(r.woken == 0);
      CHECK(k.observe(h).value().seq == i);
    }
    CHECK(k.stats(h).value().notifications == 100);
  }

  TEST_CASE("concurrent notifiers get unique seqs with no gaps") {
    Kernel k;
    const Handle h = k.register_handle().value();
    constexpr unsigned kThreads = 4;
    constexpr unsigned kPerThread = 20000;
    std::vector<std::vector<std::uint64_t>> seqs(kThreads);
    test::run_threads(kThreads, [&](unsigned t) {
      seqs[t].reserve(kPerThread);
      for (unsigned i = 0; i < kPerThread; ++i) seqs[t].push_back(k.notify(h, t).value().seq);
    });
    std::vector<std::uint64_t> all;
    for (auto& v : seqs) {
      CHECK(std::is_sorted(v.begin(), v.end()));  // each thread sees its own seqs increase
      all.insert(all.end(), v.begin(), v.end());
    }
    std::sort(all.begin(), all.end());
    REQUIRE(all.size() == kThreads * kPerThread);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i] == i + 1);
    CHECK(k.observe(h).value().seq == kThreads * kPerThread);
  }

  TEST_CASE("notify on separate handles numbers each handle on its own") {
    Kernel k;
    const Handle a = k.register_handle().value();
    const Handle b = k.register_handle().value();
    CHECK(k.notify(a, 0).value().seq == 1);
    CHECK(k.notify(a, 0).value().seq == 2);
    CHECK(k.notify(b, 0).value().seq == 1);
    CHECK(k.observe(a).value().seq == 2);
    CHECK(k.observe(b).value().seq == 1);
  }

  TEST_CASE_TEMPLATE("every path of notify writes its whole receipt", P, test::SingleProducer,
                     test::MultiProducer) {
    // notify() constructs its result in the caller's slot from an out-of-line function, a
    // different one per path: each must write every field, whatever the slot held before.
    Kernel k;
    const Handle a = k.register_handle({.producers = P::value}).value();
    const Handle b = k.register_handle({.producers = P::value}).value();
    const auto notify = [&k](Handle h, std::int64_t arg) {
      // The result is constructed in `slot` (a prvalue initialises it directly), which holds
      // garbage before.
      alignas(Result<NotifyReceipt>) unsigned char slot[sizeof(Result<NotifyReceipt>)];
      std::memset(slot, 0xab, sizeof slot);
      auto* r = ::new (static_cast<void*>(slot)) Result<NotifyReceipt>(k.notify(h, arg));
      Result<NotifyReceipt> copy = *r;
      r->~Result();
      return copy;
    };
    const auto expect = [](const Result<NotifyReceipt>& r, std::uint64_t seq,
                           std::uint32_t delivered, std::uint32_t dropped, std::uint32_t woken) {
      REQUIRE(r.has_value());
      CHECK(r->seq == seq);
      CHECK(r->delivered == delivered);
      CHECK(r->dropped == dropped);
      CHECK(r->woken == woken);
    };
    // A thread's first notify (it claims its epoch record), then the common path.
    std::thread([&] { expect(notify(a, 1), 1, 0, 0, 0); }).join();
    expect(notify(a, 2), 2, 0, 0, 0);
    // The lane changing handle, back and forth; a wait then finds each handle's latest.
    for (std::uint64_t i = 1; i <= 3; ++i) {
      expect(notify(b, static_cast<std::int64_t>(100 + i)), i, 0, 0, 0);
      expect(notify(a, static_cast<std::int64_t>(200 + i)), 2 + i, 0, 0, 0);
    }
    CHECK(k.wait_blocking(a, Ticket{0}).value().arg == 203);
    CHECK(k.wait_blocking(b, Ticket{0}).value().arg == 103);
    // Watched now (the waits above): published in the cells, nobody parked.
    expect(notify(a, 7), 6, 0, 0, 0);
    // Delivery: one subscription with room, then full; none once it is gone, and again with a
    // new one (the seq word says whether a list exists).
    {
      Subscription s = k.subscribe(b, {.capacity = 1}).value();
      expect(notify(b, 8), 4, 1, 0, 0);
      expect(notify(b, 9), 5, 0, 1, 0);
      CHECK(s.try_recv().value().arg == 8);
    }
    expect(notify(b, 10), 6, 0, 0, 0);
    Subscription s = k.subscribe(b, {.capacity = 2}).value();
    Subscription t = k.subscribe(b, {.capacity = 2}).value();
    expect(notify(b, 11), 7, 2, 0, 0);
    t = Subscription{};  // back to one
    expect(notify(b, 12), 8, 1, 0, 0);
    CHECK(s.try_recv().value().seq == 7);
    CHECK(s.try_recv().value().seq == 8);
    CHECK(k.observe(b).value().seq == 8);
    // A parked waiter woken.
    std::thread waiter([&] { CHECK(k.wait_blocking(a, Ticket{6}).value().seq == 7); });
    while (k.stats(a).value().waiters == 0) std::this_thread::yield();
    expect(notify(a, 10), 7, 0, 0, 1);
    waiter.join();
    // Refused: a forged handle, then an unregistered one; each counted, with an error's status.
    Result<NotifyReceipt> r = notify(Handle::from_raw(0x7777'0000'0003), 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == Errc::unknown_handle);
    REQUIRE(k.unregister_handle(a).has_value());
    r = notify(a, 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == Errc::unknown_handle);
    CHECK(k.stats().rejected == 2);
  }
}
