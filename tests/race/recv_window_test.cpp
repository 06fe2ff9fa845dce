// Deterministic reproductions of protocol windows: the test installs a race hook (see
// kernel/race_point.hpp) that runs another operation at exactly the named point, so a window that
// random delays hit only sometimes is hit on every run.
#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <stop_token>

#include "race_point.hpp"
#include "test_support.hpp"

using namespace herald;

namespace {

/// What the hook does when the receive reaches "coro.armed" (published to resolvers, its
/// await_suspend not yet done), once.
struct Window {
  Kernel* kernel = nullptr;
  Handle handle{};
  int notifies = 0;                  // notify this many times
  std::stop_source* stop = nullptr;  // then request a stop, if set
  bool unregister = false;           // then unregister the handle
  int fired = 0;
};
Window g_window;

void on_race_point(const char* where) noexcept {
  if (std::strcmp(where, "coro.armed") != 0 || g_window.fired++ != 0) return;
  for (int i = 0; i < g_window.notifies; ++i)
    (void)g_window.kernel->notify(g_window.handle, 40 + i);
  if (g_window.stop != nullptr) g_window.stop->request_stop();
  if (g_window.unregister) (void)g_window.kernel->unregister_handle(g_window.handle);
}

/// Installs the hook for one scope.
struct HookScope {
  explicit HookScope(Window w) {
    g_window = w;
    detail::set_race_hook(&on_race_point);
  }
  ~HookScope() { detail::set_race_hook(nullptr); }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;
};

Task<void> recv_once(Subscription& s, WaitOptions o, std::optional<Result<Notification>>& out) {
  out = co_await s.recv(o);
}

}  // namespace

TEST_SUITE("race windows: coroutine receive") {
  TEST_CASE_TEMPLATE("a push that resolves a receive while it arms hands out the item", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    EventLoop loop;
    std::optional<Result<Notification>> got;
    {
      HookScope hook({.kernel = &k, .handle = h, .notifies = 1});
      sync_wait(loop, recv_once(s, {}, got));
      CHECK(g_window.fired >= 1);
    }
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());  // it was `closed` with the item still buffered
    CHECK((*got)->arg == 40);
    CHECK(s.size() == 0);
  }

  TEST_CASE("a receive resolved while it arms with a full ring hands out every item, then closed") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    EventLoop loop;
    std::optional<Result<Notification>> got;
    {
      HookScope hook({.kernel = &k, .handle = h, .notifies = 6, .unregister = true});
      sync_wait(loop, recv_once(s, {}, got));
    }
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->arg == 40);
    int received = 1;
    for (;;) {
      std::optional<Result<Notification>> next;
      sync_wait(loop, recv_once(s, {}, next));
      REQUIRE(next.has_value());
      if (!next->has_value()) {
        CHECK(next->error() == Errc::closed);
        break;
      }
      ++received;
    }
    CHECK(received == 4);
    CHECK(received + s.dropped() == 6);
  }

  TEST_CASE("a stop requested while a receive arms gives cancelled, never closed") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    EventLoop loop;
    std::stop_source source;
    const std::stop_token token = source.get_token();
    std::optional<Result<Notification>> got;
    {
      HookScope hook({.kernel = &k, .handle = h, .stop = &source});
      sync_wait(loop, recv_once(s, {.stop = &token}, got));
    }
    REQUIRE(got.has_value());
    REQUIRE_FALSE(got->has_value());
    CHECK(got->error() == Errc::cancelled);
  }

  TEST_CASE("a push and a stop while a receive arms: the item wins and stays counted") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    EventLoop loop;
    std::stop_source source;
    const std::stop_token token = source.get_token();
    std::optional<Result<Notification>> got;
    {
      HookScope hook({.kernel = &k, .handle = h, .notifies = 1, .stop = &source});
      sync_wait(loop, recv_once(s, {.stop = &token}, got));
    }
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->arg == 40);
    CHECK(s.size() == 0);
  }
}

namespace {

/// Runs one notify the first time a sweep holds the whole coroutine list ("waiters.held").
struct HeldWindow {
  Kernel* kernel = nullptr;
  Handle handle{};
  int fired = 0;
};
HeldWindow g_held;

void on_held(const char* where) noexcept {
  if (std::strcmp(where, "waiters.held") != 0 || g_held.fired++ != 0) return;
  (void)g_held.kernel->notify(g_held.handle, 9);  // finds the list empty: the holder must see it
}

Task<void> wait_once(Kernel& k, Handle h, Ticket t, WaitOptions o,
                     std::optional<Result<Notification>>& out) {
  out = co_await k.wait(h, t, o);
}

}  // namespace

TEST_SUITE("race windows: coroutine waits") {
  TEST_CASE("a notify that finds the list held by a withdrawing waiter still completes the rest") {
    using namespace std::chrono_literals;
    Kernel k;
    const Handle h = k.register_handle({}).value();
    EventLoop loop;
    std::optional<Result<Notification>> first, ahead;
    spawn(loop, wait_once(k, h, Ticket{0}, {}, first));
    spawn(loop, wait_once(k, h, Ticket{5}, {.timeout = 10ms}, ahead));
    while (k.stats(h).value().waiters != 2) loop.poll();
    g_held = HeldWindow{.kernel = &k, .handle = h};
    detail::set_race_hook(&on_held);
    // The second wait times out and withdraws: its sweep holds the first wait's node when the
    // notify runs, relinks it, and must then see the notification the notify published.
    const auto give_up = std::chrono::steady_clock::now() + 3s;
    while (!(first.has_value() && ahead.has_value()) && std::chrono::steady_clock::now() < give_up)
      loop.poll();
    detail::set_race_hook(nullptr);
    CHECK(g_held.fired >= 1);
    REQUIRE(ahead.has_value());
    CHECK(ahead->error() == Errc::timed_out);
    REQUIRE(first.has_value());  // a lost wakeup leaves it parked
    REQUIRE(first->has_value());
    CHECK((*first)->arg == 9);
    CHECK(k.stats(h).value().waiters == 0);
  }
}
