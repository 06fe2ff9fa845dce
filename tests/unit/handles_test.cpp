#include <doctest/doctest.h>

#include <random>
#include <stop_token>
#include <type_traits>
#include <unordered_set>

#include "test_support.hpp"

using namespace herald;

TEST_SUITE("handles") {
  TEST_CASE("the default handle is invalid and from_raw round-trips any value") {
    static_assert(std::is_trivially_copyable_v<Handle>);
    static_assert(sizeof(Handle) == 8);
    constexpr Handle none;
    static_assert(none.raw() == 0 && !none);
    static_assert(Handle::from_raw(42).raw() == 42);
    CHECK(Handle::from_raw(~0ull).raw() == ~0ull);
    std::unordered_set<Handle> set{Handle::from_raw(1), Handle::from_raw(2), Handle::from_raw(1)};
    CHECK(set.size() == 2);
  }

  TEST_CASE("registered handles are distinct, valid and live until unregistered") {
    Kernel k;
    std::unordered_set<Handle> seen;
    for (int i = 0; i < 100; ++i) {
      auto h = k.register_handle();
      REQUIRE(h);
      CHECK(static_cast<bool>(*h));
      CHECK(seen.insert(*h).second);
    }
    for (Handle h : seen) {
      CHECK(k.notify(h, 1));
      CHECK(k.unregister_handle(h));
      CHECK(k.notify(h, 1).error() == Errc::unknown_handle);
      CHECK(k.unregister_handle(h).error() == Errc::unknown_handle);
    }
    CHECK(k.stats().live_handles == 0);
  }

  TEST_CASE("a stale handle is rejected everywhere after its slot is reused") {
    Kernel k(KernelOptions{.max_handles = 1});
    const Handle old = k.register_handle().value();
    REQUIRE(k.unregister_handle(old));
    const Handle fresh = k.register_handle().value();
    CHECK(fresh.index() == old.index());  // the one slot is reused...
    CHECK(fresh != old);                  // ...under a new generation
    CHECK(k.notify(old, 1).error() == Errc::unknown_handle);
    CHECK(k.observe(old).error() == Errc::unknown_handle);
    CHECK(k.subscribe(old).error() == Errc::unknown_handle);
    CHECK(k.wait_blocking(old, Ticket{0}, {.timeout = std::chrono::milliseconds(1)}).error() ==
          Errc::unknown_handle);
    CHECK(k.stats(old).error() == Errc::unknown_handle);
    CHECK(k.unregister_handle(old).error() == Errc::unknown_handle);
    CHECK(k.notify(fresh, 1).value().seq == 1);
  }

  TEST_CASE("forged raw values are rejected by every entry point") {
    Kernel k(KernelOptions{.max_handles = 64});
    std::vector<Handle> live;
    for (int i = 0; i < 32; ++i) live.push_back(k.register_handle().value());
    std::mt19937_64 rng(herald::test::test_seed());
    std::vector<Handle> forged{Handle{}, Handle::from_raw(~0ull)};
    for (Handle h : live) {  // right slot, wrong generation; generation 0; index out of range
      forged.push_back(Handle::make(h.index(), h.generation() + 1));
      forged.push_back(Handle::make(h.index(), 0));
      forged.push_back(Handle::make(h.index() + 64, h.generation()));
    }
    for (int i = 0; i < 5000; ++i) forged.push_back(herald::test::forge(rng, live));
    for (Handle f : forged) {
      CHECK(k.notify(f, 1).error() == Errc::unknown_handle);
      CHECK(k.observe(f).error() == Errc::unknown_handle);
      CHECK(k.stats(f).error() == Errc::unknown_handle);
      CHECK(k.wait_blocking(f, Ticket{0}, {.timeout = std::chrono::nanoseconds(0)}).error() ==
            Errc::unknown_handle);
    }
    for (int i = 0; i < 200; ++i) {
      CHECK(k.subscribe(forged[i]).error() == Errc::unknown_handle);
      CHECK(k.unregister_handle(forged[i]).error() == Errc::unknown_handle);
    }
    CHECK(k.stats().live_handles == 32);
    CHECK(k.stats().rejected == forged.size());
    for (Handle h : live) CHECK(k.observe(h).value().seq == 0);
  }
}
