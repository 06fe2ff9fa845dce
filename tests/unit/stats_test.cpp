#include <doctest/doctest.h>

#include <string>

#include "test_support.hpp"

using namespace herald;

TEST_SUITE("stats") {
  TEST_CASE("handle stats agree with what happened") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription small = k.subscribe(h, {.capacity = 2}).value();
    Subscription kept = k.subscribe(h, {.capacity = 2, .overflow = Overflow::keep_latest}).value();
    for (int i = 0; i < 10; ++i) (void)k.notify(h, i);
    const HandleStats s = k.stats(h).value();
    CHECK(s.notifications == 10);
    CHECK(s.subscriptions == 2);
    CHECK(s.waiters == 0);
    // small: 2 buffered, 8 dropped; kept: 2 buffered + 1 aside, 7 displaced.
    CHECK(s.delivered == 5);
    CHECK(s.dropped == 15);
    CHECK(s.delivered + s.dropped == 2 * 10);
    // Counts survive unsubscribing.
    small = Subscription{};
    const HandleStats after = k.stats(h).value();
    CHECK(after.delivered == 5);
    CHECK(after.dropped == 15);
    CHECK(after.subscriptions == 1);
  }

  TEST_CASE("kernel stats add up live and unregistered handles, and rejected notifies") {
    Kernel k;
    const Handle a = k.register_handle().value();
    const Handle b = k.register_handle().value();
    Subscription sa = k.subscribe(a, {.capacity = 4}).value();
    for (int i = 0; i < 6; ++i) (void)k.notify(a, i);
    for (int i = 0; i < 3; ++i) (void)k.notify(b, i);
    (void)k.notify(Handle::from_raw(12345), 0);
    REQUIRE(k.unregister_handle(b));
    const KernelStats s = k.stats();
    CHECK(s.live_handles == 1);
    CHECK(s.notifications == 9);
    CHECK(s.rejected == 1);
    CHECK(s.delivered == 4);
    CHECK(s.dropped == 2);
    CHECK(s.memory_used > 0);
    REQUIRE(k.unregister_handle(a));
    CHECK(k.stats().notifications == 9);
    CHECK(k.stats().delivered == 4);
  }

  TEST_CASE("describe() lists options, handles, subscriptions and totals as JSON") {
    Kernel k(KernelOptions{.max_handles = 16});
    const Handle h = k.register_handle({.debug_hint = "disk \"io\"\n", .max_waiters = 5}).value();
    Subscription s =
        k.subscribe(h, {.capacity = 3, .overflow = Overflow::keep_latest, .debug_hint = "ui"})
            .value();
    (void)k.notify(h, 1);
    const std::string json = k.describe();
    CHECK(json.front() == '{');
    CHECK(json.back() == '}');
    CHECK(json.find("\"max_handles\":16") != std::string::npos);
    CHECK(json.find("\"hint\":\"disk \\\"io\\\"\\n\"") != std::string::npos);
    CHECK(json.find("\"max_waiters\":5") != std::string::npos);
    CHECK(json.find("\"seq\":1") != std::string::npos);
    CHECK(json.find("\"hint\":\"ui\"") != std::string::npos);
    CHECK(json.find("\"capacity\":4") != std::string::npos);
    CHECK(json.find("\"overflow\":\"keep_latest\"") != std::string::npos);
    CHECK(json.find("\"size\":1") != std::string::npos);
    CHECK(json.find("\"live_handles\":1") != std::string::npos);
    CHECK(json.find(std::to_string(h.raw())) != std::string::npos);
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < json.size(); ++i) {
      const char c = json[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
        CHECK(static_cast<unsigned char>(c) >= 0x20);
        continue;
      }
      if (c == '"') in_string = true;
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      CHECK(depth >= 0);
    }
    CHECK(depth == 0);
  }
}
