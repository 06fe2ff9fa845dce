#include <doctest/doctest.h>

#include <algorithm>
#include <mutex>
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
}
