// Small protocol scenarios explored under every schedule of their race points (schedule.hpp):
// notify against a wait's enlist, notify against unregister, a receive against a stop and a
// notify, unsubscribe against notify; then seeded random schedules of larger mixes.
#include <doctest/doctest.h>

#include <poll.h>

#include <memory>
#include <optional>
#include <stop_token>

#include "schedule.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using test::Schedule;

namespace {

constexpr int kMaxPoints = 8;  // every race point a short operation reaches, with room to spare

Task<void> recv_once(Subscription& s, WaitOptions o, std::optional<Result<Notification>>& out) {
  out = co_await s.recv(o);
}

Task<void> wait_once(Kernel& k, Handle h, std::optional<Result<Notification>>& out) {
  out = co_await k.wait(h, Ticket{0});
}

Task<void> wait_with(Kernel& k, Handle h, Ticket t, WaitOptions o,
                     std::optional<Result<Notification>>& out) {
  out = co_await k.wait(h, t, o);
}

/// Runs `task` on a fresh EventLoop on this thread until `out` is set (bounded: 3 s, then the
/// check reports a hung wait).
/// The loop outlives every scenario thread (it is the fixture's): a notifier may still be inside
/// post() when the receive has already resumed.
template <class T>
void drive(EventLoop& loop, Task<void> task, const std::optional<T>& out) {
  spawn(loop, std::move(task));
  const auto give_up = std::chrono::steady_clock::now() + 3s;
  while (!out.has_value() && std::chrono::steady_clock::now() < give_up) {
    if (loop.poll() == 0) std::this_thread::yield();
  }
}

struct Fixture {
  EventLoop loop;  // declared first: destroyed last, after the kernel's subscriptions
  Kernel k;
  Handle h{};
  Subscription s;
  Subscription other;  // a second subscriber, for scenarios that unsubscribe it
  std::stop_source stop;
  std::stop_token token = stop.get_token();
  std::optional<Result<Notification>> got;
  std::optional<Result<NotifyReceipt>> sent;
  std::optional<Result<void>> unregistered;
  std::optional<Result<void>> unregistered_too;    // a second, racing unregister
  std::optional<Result<Subscription>> subscribed;  // a racing subscribe
  explicit Fixture(Producers p, std::uint32_t capacity = 4) {
    h = k.register_handle({.producers = p}).value();
    s = k.subscribe(h, {.capacity = capacity}).value();
  }
};

}  // namespace

TEST_SUITE("schedules: every interleaving of a scenario's race points") {
  TEST_CASE_TEMPLATE("a coroutine receive against a notify always hands out the item", P,
                     test::SingleProducer, test::MultiProducer) {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(P::value);
          return Schedule::Scenario{
              {[f] { drive(f->loop, recv_once(f->s, {}, f->got), f->got); },
               [f] { f->sent = f->k.notify(f->h, 7); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                REQUIRE(f->got->has_value());  // the old loss: closed with the item buffered
                CHECK((*f->got)->arg == 7);
                CHECK(f->s.size() == 0);
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("a coroutine receive against a notify and an unregister: the item, then closed") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          return Schedule::Scenario{
              {[f] { drive(f->loop, recv_once(f->s, {}, f->got), f->got); },
               [f] { f->sent = f->k.notify(f->h, 7); },
               [f] { f->unregistered = f->k.unregister_handle(f->h); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                REQUIRE(f->unregistered.has_value());
                CHECK(f->unregistered->has_value());
                const bool delivered = f->sent->has_value() && (*f->sent)->delivered == 1;
                if (f->got->has_value()) {
                  CHECK(delivered);
                  CHECK((*f->got)->arg == 7);
                } else {
                  CHECK(f->got->error() == Errc::closed);
                  CHECK(f->s.size() == (delivered ? 1u : 0u));  // closed only once drained...
                  CHECK_FALSE(delivered);                       // ...so never with it buffered
                }
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("a coroutine receive against a stop and a notify: the item or cancelled, never lost") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          return Schedule::Scenario{
              {[f] { drive(f->loop, recv_once(f->s, {.stop = &f->token}, f->got), f->got); },
               [f] { f->stop.request_stop(); }, [f] { f->sent = f->k.notify(f->h, 7); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                if (f->got->has_value()) {
                  CHECK((*f->got)->arg == 7);
                  CHECK(f->s.size() == 0);
                } else {
                  CHECK(f->got->error() == Errc::cancelled);
                  CHECK(f->s.size() == 1);  // an item that arrived as it gave up stays buffered
                }
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("a blocking wait against a notify and an unregister never misses its wakeup") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          return Schedule::Scenario{
              {[f] { f->got = f->k.wait_blocking(f->h, Ticket{0}, {.timeout = 3s}); },
               [f] { f->sent = f->k.notify(f->h, 7); },
               [f] { f->unregistered = f->k.unregister_handle(f->h); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                if (f->got->has_value()) {
                  CHECK((*f->got)->seq == 1);
                  CHECK((*f->got)->arg == 7);
                } else {
                  // closed (parked when unregistered) or unknown_handle (looked after it);
                  // timed_out would be a lost wakeup.
                  CHECK(
                      (f->got->error() == Errc::closed || f->got->error() == Errc::unknown_handle));
                }
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("first waits against a notify that publishes in its lane: both get it, none hangs") {
    // A multi-producer handle nobody has waited on: its notifies publish in the notifier's lane.
    // The first wait marks the handle and gathers the lanes, the second waits for that; with
    // `move`, the notifier then notifies another handle, which flushes its lane to the cells.
    for (const bool move : {false, true}) {
      CAPTURE(move);
      struct Bare {
        Kernel k;
        Handle h = k.register_handle().value();
        Handle other = k.register_handle().value();
        std::optional<Result<Notification>> first;
        std::optional<Result<Notification>> second;
      };
      const int runs = Schedule::explore(
          [move] {
            auto f = std::make_shared<Bare>();
            return Schedule::Scenario{
                {[f, move] {
                   (void)f->k.notify(f->h, 7);
                   if (move) (void)f->k.notify(f->other, 8);
                 },
                 [f] { f->first = f->k.wait_blocking(f->h, Ticket{0}, {.timeout = 3s}); },
                 [f] { f->second = f->k.wait_blocking(f->h, Ticket{0}, {.timeout = 3s}); }},
                [f](const std::string& schedule) {
                  CAPTURE(schedule);
                  for (const auto* got : {&f->first, &f->second}) {
                    REQUIRE(got->has_value());
                    REQUIRE((*got)->has_value());  // timed_out would be a missed notification
                    CHECK((**got)->seq == 1);
                    CHECK((**got)->arg == 7);
                  }
                }};
          },
          kMaxPoints);
      MESSAGE(runs << " schedules");
    }
  }

  TEST_CASE(
      "a blocking wait against a stop and a notify: the notification or cancelled, never hung") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          return Schedule::Scenario{
              {[f] {
                 f->got = f->k.wait_blocking(f->h, Ticket{0}, {.timeout = 3s, .stop = &f->token});
               },
               [f] { f->stop.request_stop(); }, [f] { f->sent = f->k.notify(f->h, 7); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                if (f->got->has_value()) {
                  CHECK((*f->got)->arg == 7);
                } else {
                  CHECK(f->got->error() == Errc::cancelled);  // timed_out would be a lost wake
                }
                CHECK(f->k.stats(f->h).value().waiters == 0);  // it counted itself out
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("blocking waits with tickets on both sides of a notify: exactly the right ones wake") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          auto ahead = std::make_shared<std::optional<Result<Notification>>>();
          return Schedule::Scenario{
              {[f] { f->got = f->k.wait_blocking(f->h, Ticket{0}, {.timeout = 3s}); },
               [f, ahead] { *ahead = f->k.wait_blocking(f->h, Ticket{1}, {.timeout = 20ms}); },
               [f] { f->sent = f->k.notify(f->h, 7); }},
              [f, ahead](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                REQUIRE(f->got->has_value());  // ticket 0: seq 1 wakes it, whatever the order
                CHECK((*f->got)->seq == 1);
                REQUIRE(ahead->has_value());
                CHECK((*ahead)->error() == Errc::timed_out);  // ticket 1: seq 1 must not end it
                CHECK(f->k.stats(f->h).value().waiters == 0);
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("a coroutine wait against a notify and an unregister never misses its wakeup") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::single);
          return Schedule::Scenario{{[f] { drive(f->loop, wait_once(f->k, f->h, f->got), f->got); },
                                     [f] { f->sent = f->k.notify(f->h, 7); },
                                     [f] { f->unregistered = f->k.unregister_handle(f->h); }},
                                    [f](const std::string& schedule) {
                                      CAPTURE(schedule);
                                      REQUIRE(f->got.has_value());
                                      if (f->got->has_value()) {
                                        CHECK((*f->got)->arg == 7);
                                      } else {
                                        CHECK((f->got->error() == Errc::closed ||
                                               f->got->error() == Errc::unknown_handle));
                                      }
                                    }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("unsubscribe against notify: every push is counted once, nothing freed in use") {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          f->other = f->k.subscribe(f->h).value();
          return Schedule::Scenario{{[f] {
                                       (void)f->k.notify(f->h, 1);
                                       f->sent = f->k.notify(f->h, 2);
                                     },
                                     [f] { f->other = Subscription(); }},
                                    [f](const std::string& schedule) {
                                      CAPTURE(schedule);
                                      const HandleStats st = f->k.stats(f->h).value();
                                      CHECK(st.notifications == 2);
                                      CHECK(st.subscriptions == 1);
                                      CHECK(f->s.size() == 2);
                                      // Two into the kept subscription, and between 0 and 2 into
                                      // the one that left.
                                      CHECK(st.delivered + st.dropped >= 2);
                                      CHECK(st.delivered + st.dropped <= 4);
                                    }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("unsubscribe against unregister and notify: every count lands once in the totals") {
    // Both run their grace periods outside the slot's lock: an unsubscribe may finish after the
    // handle is gone, and its record's counts then go to the kernel's totals. A multi-producer
    // notify is refused by the seq word's closed bit, a single-producer one by its reload of the
    // slot after its fence.
    for (const Producers mode : {Producers::multi, Producers::single}) {
      CAPTURE(mode == Producers::multi ? "multi" : "single");
      const int runs = Schedule::explore(
          [mode] {
            auto f = std::make_shared<Fixture>(mode);
            f->other = f->k.subscribe(f->h).value();
            return Schedule::Scenario{{[f] { f->other = Subscription(); },
                                       [f] { f->unregistered = f->k.unregister_handle(f->h); },
                                       [f] { f->sent = f->k.notify(f->h, 7); }},
                                      [f](const std::string& schedule) {
                                        CAPTURE(schedule);
                                        REQUIRE(f->unregistered.has_value());
                                        CHECK(f->unregistered->has_value());
                                        REQUIRE(f->sent.has_value());
                                        const KernelStats ks = f->k.stats();
                                        CHECK(ks.live_handles == 0);
                                        if (f->sent->has_value()) {
                                          const NotifyReceipt r = f->sent->value();
                                          CHECK(ks.notifications == 1);
                                          CHECK(ks.delivered == r.delivered);
                                          CHECK(ks.dropped == r.dropped);
                                          CHECK(f->s.size() == 1);
                                        } else {
                                          CHECK(f->sent->error() == Errc::unknown_handle);
                                          CHECK(ks.notifications == 0);
                                          CHECK(ks.delivered + ks.dropped == 0);
                                          CHECK(f->s.size() == 0);
                                        }
                                        while (f->s.try_recv().has_value()) {
                                        }
                                        CHECK(f->s.try_recv().error() == Errc::closed);
                                      }};
          },
          kMaxPoints);
      MESSAGE(runs << " schedules");
    }
  }

  TEST_CASE("subscribe against two unregisters: one unregister wins, the subscription is closed") {
    // No kernel-wide lock: the slot's lock picks the one unregister that takes the core, and
    // orders the subscribe's list change against that take.
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          f->s = Subscription();
          return Schedule::Scenario{
              {[f] { f->subscribed = f->k.subscribe(f->h, {.capacity = 2}); },
               [f] { f->unregistered = f->k.unregister_handle(f->h); },
               [f] { f->unregistered_too = f->k.unregister_handle(f->h); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->unregistered.has_value());
                REQUIRE(f->unregistered_too.has_value());
                CHECK(f->unregistered->has_value() != f->unregistered_too->has_value());
                const Result<void>& lost =
                    f->unregistered->has_value() ? *f->unregistered_too : *f->unregistered;
                if (!lost.has_value()) CHECK(lost.error() == Errc::unknown_handle);
                REQUIRE(f->subscribed.has_value());
                if (f->subscribed->has_value()) {
                  CHECK(f->subscribed->value().try_recv().error() == Errc::closed);
                } else {
                  CHECK(f->subscribed->error() == Errc::unknown_handle);
                }
                f->subscribed.reset();  // its record: the last reference goes here
                const KernelStats ks = f->k.stats();
                CHECK(ks.live_handles == 0);
                CHECK(ks.memory_used == 0);
              }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE_TEMPLATE("an empty receive arming the fd against a notify: readable iff buffered", P,
                     test::SingleProducer, test::MultiProducer) {
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(P::value);
          const int fd = f->s.pollable_fd();
          (void)f->k.notify(f->h, 1);  // readable now; the receive below takes it, then arms
          return Schedule::Scenario{{[f] {
                                       (void)f->s.try_recv();
                                       (void)f->s.try_recv();  // empty: drains and arms the fd
                                     },
                                     [f] { f->sent = f->k.notify(f->h, 2); }},
                                    [f, fd](const std::string& schedule) {
                                      CAPTURE(schedule);
                                      pollfd p{fd, POLLIN, 0};
                                      const bool readable = ::poll(&p, 1, 0) == 1;
                                      if (f->s.size() != 0)
                                        CHECK(readable);  // never asleep on a buffered item
                                      while (f->s.try_recv()) {
                                      }
                                      CHECK(::poll(&p, 1, 0) == 0);  // found empty: unreadable
                                    }};
        },
        kMaxPoints);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("coroutine waits on the lock-free list: a notify, a stop and a relinked waiter") {
    // One wait that the notify satisfies (or the stop cancels), one whose ticket is ahead (it is
    // detached and relinked, then times out), and an unregister: every schedule of the list's
    // detach, relink and withdraw windows resolves each wait exactly once.
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    struct Loops {
      EventLoop second;
      std::optional<Result<Notification>> ahead;
    };
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi);
          auto l = std::make_shared<Loops>();
          return Schedule::Scenario{
              {[f] {
                 drive(f->loop, wait_with(f->k, f->h, Ticket{0}, {.stop = &f->token}, f->got),
                       f->got);
               },
               [f, l] {
                 drive(l->second, wait_with(f->k, f->h, Ticket{1}, {.timeout = 30ms}, l->ahead),
                       l->ahead);
               },
               [f] { f->sent = f->k.notify(f->h, 7); }, [f] { f->stop.request_stop(); },
               [f] { f->unregistered = f->k.unregister_handle(f->h); }},
              [f, l](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                if (f->got->has_value()) {
                  CHECK((*f->got)->arg == 7);
                } else {
                  CHECK((f->got->error() == Errc::cancelled || f->got->error() == Errc::closed ||
                         f->got->error() == Errc::unknown_handle));
                }
                REQUIRE(l->ahead.has_value());
                REQUIRE(!l->ahead->has_value());  // seq 1 never passes ticket 1
                CHECK((l->ahead->error() == Errc::timed_out || l->ahead->error() == Errc::closed ||
                       l->ahead->error() == Errc::unknown_handle));
              }};
        },
        6, 60, seed);
    MESSAGE(runs << " schedules");
  }

  TEST_CASE("seeded random schedules of four operations keep every count") {
    const std::uint64_t seed = test::test_seed();
    MESSAGE("seed " << seed);
    const int runs = Schedule::explore(
        [] {
          auto f = std::make_shared<Fixture>(Producers::multi, 2);
          return Schedule::Scenario{
              {[f] { drive(f->loop, recv_once(f->s, {.stop = &f->token}, f->got), f->got); },
               [f] {
                 for (int i = 0; i < 3; ++i) (void)f->k.notify(f->h, i);
               },
               [f] { f->stop.request_stop(); },
               [f] { f->unregistered = f->k.unregister_handle(f->h); }},
              [f](const std::string& schedule) {
                CAPTURE(schedule);
                REQUIRE(f->got.has_value());
                const std::uint64_t received = f->got->has_value() ? 1 : 0;
                if (!f->got->has_value()) {
                  CHECK((f->got->error() == Errc::cancelled || f->got->error() == Errc::closed));
                  if (f->got->error() == Errc::closed) CHECK(f->s.size() == 0);
                }
                // Everything the handle saw before it went is received, buffered or dropped.
                const KernelStats ks = f->k.stats();
                CHECK(received + f->s.size() + f->s.dropped() == ks.delivered + ks.dropped);
              }};
        },
        6, 40, seed);
    MESSAGE(runs << " schedules");
  }
}
