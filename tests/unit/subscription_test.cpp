#include <doctest/doctest.h>

#include <array>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

std::vector<Notification> drain(Subscription& s) {
  std::vector<Notification> out;
  for (auto r = s.try_recv(); r; r = s.try_recv()) out.push_back(*r);
  return out;
}

}  // namespace

TEST_SUITE("subscription") {
  TEST_CASE_TEMPLATE("a subscription sees what is notified after subscribe, in order", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    (void)k.notify(h, -1);  // before subscribe: not observed
    Subscription s = k.subscribe(h).value();
    CHECK(s);
    CHECK(s.handle() == h);
    CHECK(s.try_recv().error() == Errc::empty);
    for (int i = 0; i < 10; ++i) {
      const auto r = k.notify(h, i).value();
      CHECK(r.delivered == 1);
      CHECK(r.dropped == 0);
    }
    CHECK(s.size() == 10);
    const auto got = drain(s);
    REQUIRE(got.size() == 10);
    for (int i = 0; i < 10; ++i) {
      CHECK(got[i].seq == static_cast<std::uint64_t>(i + 2));
      CHECK(got[i].arg == i);
    }
    CHECK(s.size() == 0);
    CHECK(s.dropped() == 0);
  }

  TEST_CASE_TEMPLATE("drop_newest keeps the oldest and counts every drop", P, test::SingleProducer,
                     test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    std::uint32_t dropped_receipts = 0;
    for (int i = 1; i <= 10; ++i) dropped_receipts += k.notify(h, i).value().dropped;
    CHECK(dropped_receipts == 6);
    CHECK(s.size() == 4);
    CHECK(s.dropped() == 6);
    const auto got = drain(s);
    REQUIRE(got.size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(got[i].arg == i + 1);
    // Room again: the next one is buffered.
    CHECK(k.notify(h, 11).value().delivered == 1);
    CHECK(s.try_recv().value().arg == 11);
    CHECK(got.size() + s.size() + s.dropped() + 1 == 11);
  }

  TEST_CASE_TEMPLATE("keep_latest delivers the buffered ones, then the newest", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    Subscription s = k.subscribe(h, {.capacity = 4, .overflow = Overflow::keep_latest}).value();
    for (int i = 1; i <= 10; ++i) CHECK(k.notify(h, i).value().delivered == 1);
    CHECK(s.size() == 5);     // four in the ring, one aside
    CHECK(s.dropped() == 5);  // 5..9 were each displaced
    const auto got = drain(s);
    REQUIRE(got.size() == 5);
    CHECK(got[0].arg == 1);
    CHECK(got[3].arg == 4);
    CHECK(got[4].arg == 10);
    CHECK(got[4].seq == 10);
    CHECK(got.size() + s.size() + s.dropped() == 10);
  }

  TEST_CASE("keep_latest keeps one notifier's order when the ring drains between notifies") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h, {.capacity = 2, .overflow = Overflow::keep_latest}).value();
    (void)k.notify(h, 1);
    (void)k.notify(h, 2);
    (void)k.notify(h, 3);                  // aside
    CHECK(s.try_recv().value().arg == 1);  // room in the ring now...
    (void)k.notify(h, 4);                  // ...but 3 is aside, so 4 replaces it
    CHECK(s.try_recv().value().arg == 2);
    CHECK(s.try_recv().value().arg == 4);
    CHECK(s.try_recv().error() == Errc::empty);
    CHECK(s.dropped() == 1);
  }

  TEST_CASE("capacity rounds up to a power of two") {
    Kernel k;
    const Handle h = k.register_handle().value();
    CHECK(k.subscribe(h, {.capacity = 3}).value().capacity() == 4);
    CHECK(k.subscribe(h, {.capacity = 1}).value().capacity() == 1);
    CHECK(k.subscribe(h, {.capacity = 1000}).value().capacity() == 1024);
  }

  TEST_CASE("a capacity-1 ring works across many laps") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h, {.capacity = 1}).value();
    for (int i = 0; i < 1000; ++i) {
      CHECK(k.notify(h, i).value().delivered == 1);
      CHECK(k.notify(h, i).value().dropped == 1);
      CHECK(s.try_recv().value().arg == i);
    }
    CHECK(s.dropped() == 1000);
  }

  TEST_CASE("try_recv_batch takes up to the span's size, oldest first") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h, {.capacity = 8, .overflow = Overflow::keep_latest}).value();
    for (int i = 1; i <= 12; ++i) (void)k.notify(h, i);
    std::array<Notification, 5> buf{};
    CHECK(s.try_recv_batch(buf) == 5);
    CHECK(buf[0].arg == 1);
    CHECK(buf[4].arg == 5);
    CHECK(s.try_recv_batch(buf) == 4);  // 6, 7, 8 and the kept 12
    CHECK(buf[2].arg == 8);
    CHECK(buf[3].arg == 12);
    CHECK(s.try_recv_batch(buf) == 0);
    CHECK(s.try_recv_batch(std::span<Notification>{}) == 0);
  }

  TEST_CASE("each subscription counts on its own") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription small = k.subscribe(h, {.capacity = 2}).value();
    Subscription big = k.subscribe(h, {.capacity = 64}).value();
    for (int i = 0; i < 10; ++i) {
      const auto r = k.notify(h, i).value();
      CHECK(r.delivered + r.dropped == 2);
    }
    CHECK(small.dropped() == 8);
    CHECK(big.dropped() == 0);
    CHECK(drain(big).size() == 10);
  }

  TEST_CASE("after unregister a subscription hands out what it buffered, then closed") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    (void)k.notify(h, 1);
    (void)k.notify(h, 2);
    REQUIRE(k.unregister_handle(h));
    CHECK(s.try_recv().value().arg == 1);
    CHECK(s.recv_blocking().value().arg == 2);
    CHECK(s.try_recv().error() == Errc::closed);
    CHECK(s.recv_blocking().error() == Errc::closed);
    std::array<Notification, 4> buf{};
    CHECK(s.try_recv_batch(buf) == 0);
  }

  TEST_CASE("an empty or moved-from subscription holds nothing") {
    Subscription none;
    CHECK_FALSE(none);
    CHECK(none.try_recv().error() == Errc::closed);
    CHECK(none.recv_blocking().error() == Errc::closed);
    CHECK(none.size() == 0);
    CHECK(none.dropped() == 0);

    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription a = k.subscribe(h).value();
    Subscription b = std::move(a);
    CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move)
    CHECK(b);
    (void)k.notify(h, 5);
    CHECK(b.try_recv().value().arg == 5);
    a = std::move(b);
    (void)k.notify(h, 6);
    CHECK(a.try_recv().value().arg == 6);
    a = Subscription{};  // unsubscribes
    CHECK(k.stats(h).value().subscriptions == 0);
    CHECK(k.notify(h, 7).value().delivered == 0);
  }

  TEST_CASE("a subscription may outlive its handle and be destroyed afterwards") {
    Kernel k;
    const auto baseline = k.stats().memory_used;
    {
      const Handle h = k.register_handle().value();
      Subscription s = k.subscribe(h).value();
      (void)k.notify(h, 1);
      REQUIRE(k.unregister_handle(h));
      CHECK(k.stats().memory_used > baseline);  // the ring lives on for its consumer
    }
    CHECK(k.stats().memory_used == baseline);
  }

  TEST_CASE("recv_blocking wakes on a notification from another thread") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    std::thread notifier([&] {
      std::this_thread::sleep_for(20ms);
      (void)k.notify(h, 99);
    });
    const auto r = s.recv_blocking();
    notifier.join();
    REQUIRE(r);
    CHECK(r->arg == 99);
  }

  TEST_CASE("recv_blocking gives timed_out, cancelled and closed") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    CHECK(s.recv_blocking({.timeout = 0ns}).error() == Errc::timed_out);
    CHECK(s.recv_blocking({.timeout = 5ms}).error() == Errc::timed_out);

    std::stop_source stopped;
    stopped.request_stop();
    const std::stop_token already = stopped.get_token();
    CHECK(s.recv_blocking({.stop = &already}).error() == Errc::cancelled);

    std::stop_source source;
    const std::stop_token token = source.get_token();
    std::thread canceller([&] {
      std::this_thread::sleep_for(20ms);
      source.request_stop();
    });
    CHECK(s.recv_blocking({.stop = &token}).error() == Errc::cancelled);
    canceller.join();

    std::thread unregisterer([&] {
      std::this_thread::sleep_for(20ms);
      (void)k.unregister_handle(h);
    });
    CHECK(s.recv_blocking().error() == Errc::closed);
    unregisterer.join();
  }

  TEST_CASE("a receive that times out leaves later items for the next receive") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    CHECK(s.recv_blocking({.timeout = 1ms}).error() == Errc::timed_out);
    (void)k.notify(h, 1);
    CHECK(s.size() == 1);
    CHECK(s.recv_blocking({.timeout = 1ms}).value().arg == 1);
  }
}
