#include <doctest/doctest.h>

#include <atomic>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

// Waits until `n` waiters are parked on `h` (stats count linked waiters).
void await_parked(Kernel& k, Handle h, std::uint32_t n) {
  while (k.stats(h).value().waiters < n) std::this_thread::yield();
}

}  // namespace

TEST_SUITE("wait_blocking") {
  TEST_CASE_TEMPLATE("a past ticket completes at once with the latest notification", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    for (int i = 1; i <= 7; ++i) (void)k.notify(h, i * 100);
    const auto r = k.wait_blocking(h, Ticket{0}, {.timeout = 0ns});
    REQUIRE(r);
    CHECK(r->seq == 7);
    CHECK(r->arg == 700);
    CHECK(k.wait_blocking(h, Ticket{6}).value().seq == 7);
    CHECK(k.wait_blocking(h, Ticket{7}, {.timeout = 0ns}).error() == Errc::timed_out);
  }

  TEST_CASE("the latest is found when its notifier moved on to another handle or exited") {
    // Until a handle is first waited on, a multi-producer notify publishes its latest in the
    // notifier thread's lane; the lane is flushed to the handle's cells when the thread notifies
    // another handle, and outlives the thread.
    Kernel k;
    const Handle a = k.register_handle().value();
    const Handle b = k.register_handle().value();
    const Handle c = k.register_handle().value();
    std::thread([&] {
      (void)k.notify(a, 10);
      (void)k.notify(a, 20);
      (void)k.notify(b, 30);  // moves the lane from a to b
    }).join();
    const Notification got_a = k.wait_blocking(a, Ticket{0}, {.timeout = 0ns}).value();
    CHECK(got_a.seq == 2);
    CHECK(got_a.arg == 20);
    std::thread([&] { (void)k.notify(c, 40); }).join();  // exits with c's latest in its lane
    std::thread([&] {
      (void)k.notify(b, 50);  // a new thread, perhaps with the exited one's lane
    }).join();
    const Notification got_c = k.wait_blocking(c, Ticket{0}, {.timeout = 0ns}).value();
    CHECK(got_c.seq == 1);
    CHECK(got_c.arg == 40);
    const Notification got_b = k.wait_blocking(b, Ticket{1}, {.timeout = 0ns}).value();
    CHECK(got_b.seq == 2);
    CHECK(got_b.arg == 50);
    // Watched now: later notifies go to the cells, and a parked waiter is woken by them.
    std::thread late([&] {
      std::this_thread::sleep_for(10ms);
      (void)k.notify(a, 60);
    });
    const Notification again = k.wait_blocking(a, Ticket{2}, {.timeout = 5s}).value();
    late.join();
    CHECK(again.seq == 3);
    CHECK(again.arg == 60);
  }

  TEST_CASE("observe then wait has no lost wakeup") {
    Kernel k;
    const Handle h = k.register_handle().value();
    for (int round = 0; round < 200; ++round) {
      const Ticket t = k.observe(h).value();
      std::thread notifier([&] { (void)k.notify(h, round); });
      const auto r = k.wait_blocking(h, t, {.timeout = 10s});
      notifier.join();
      REQUIRE(r);
      CHECK(r->seq > t.seq);
    }
  }

  TEST_CASE("waiters are broadcast: one notify completes every parked waiter") {
    Kernel k;
    const Handle h = k.register_handle().value();
    constexpr unsigned kWaiters = 6;
    std::atomic<unsigned> completed{0};
    std::vector<std::thread> waiters;
    for (unsigned i = 0; i < kWaiters; ++i) {
      waiters.emplace_back([&] {
        const auto r = k.wait_blocking(h, Ticket{0});
        if (r && r->seq == 1 && r->arg == 42) completed.fetch_add(1);
      });
    }
    await_parked(k, h, kWaiters);
    const NotifyReceipt receipt = k.notify(h, 42).value();
    for (auto& t : waiters) t.join();
    CHECK(receipt.woken == kWaiters);
    CHECK(completed.load() == kWaiters);
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE("a waiter with a later ticket stays parked through earlier seqs") {
    Kernel k;
    const Handle h = k.register_handle().value();
    std::atomic<std::uint64_t> got{0};
    std::thread waiter([&] { got = k.wait_blocking(h, Ticket{2}).value().seq; });
    await_parked(k, h, 1);
    // A blocking waiter is woken by every notify to recheck its ticket (woken counts it), and
    // sleeps again while its ticket is ahead.
    CHECK(k.notify(h, 1).value().woken == 1);
    CHECK(k.notify(h, 2).value().woken == 1);
    std::this_thread::sleep_for(20ms);
    CHECK(got.load() == 0);
    CHECK(k.stats(h).value().waiters == 1);
    CHECK(k.notify(h, 3).value().woken == 1);
    waiter.join();
    CHECK(got.load() == 3);
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE("timeouts give timed_out and leave no waiter behind") {
    Kernel k;
    const Handle h = k.register_handle().value();
    CHECK(k.wait_blocking(h, Ticket{0}, {.timeout = 0ns}).error() == Errc::timed_out);
    const auto start = std::chrono::steady_clock::now();
    CHECK(k.wait_blocking(h, Ticket{0}, {.timeout = 20ms}).error() == Errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - start >= 20ms);
    CHECK(k.stats(h).value().waiters == 0);
    CHECK(k.notify(h, 1).value().woken == 0);
  }

  TEST_CASE("a stop request gives cancelled, before or during the wait") {
    Kernel k;
    const Handle h = k.register_handle().value();
    std::stop_source early;
    early.request_stop();
    const std::stop_token early_token = early.get_token();
    CHECK(k.wait_blocking(h, Ticket{0}, {.stop = &early_token}).error() == Errc::cancelled);

    std::stop_source source;
    const std::stop_token token = source.get_token();
    std::thread canceller([&] {
      await_parked(k, h, 1);
      source.request_stop();
    });
    CHECK(k.wait_blocking(h, Ticket{0}, {.stop = &token}).error() == Errc::cancelled);
    canceller.join();
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE("unregister completes parked waiters with closed") {
    Kernel k;
    const Handle h = k.register_handle().value();
    std::vector<std::thread> waiters;
    std::atomic<unsigned> closed{0};
    for (int i = 0; i < 3; ++i) {
      waiters.emplace_back([&] {
        if (k.wait_blocking(h, Ticket{0}).error() == Errc::closed) closed.fetch_add(1);
      });
    }
    await_parked(k, h, 3);
    REQUIRE(k.unregister_handle(h));
    for (auto& t : waiters) t.join();
    CHECK(closed.load() == 3);
  }

  TEST_CASE("beyond max_waiters a wait completes at once with limit_exceeded") {
    Kernel k;
    const Handle h = k.register_handle({.max_waiters = 2}).value();
    std::vector<std::thread> waiters;
    for (int i = 0; i < 2; ++i) waiters.emplace_back([&] { (void)k.wait_blocking(h, Ticket{0}); });
    await_parked(k, h, 2);
    CHECK(k.wait_blocking(h, Ticket{0}).error() == Errc::limit_exceeded);
    // A wait that is ready at once needs no place in the list.
    (void)k.notify(h, 1);
    for (auto& t : waiters) t.join();
    CHECK(k.wait_blocking(h, Ticket{0}).value().seq == 1);

    const Handle none = k.register_handle({.max_waiters = 0}).value();
    CHECK(k.wait_blocking(none, Ticket{0}).error() == Errc::limit_exceeded);
  }
}
