// TaskNotifier and TaskStream: semantic 3 (a stream that missed its terminal message across a
// redis-server restart still ends with the right state, through its poll) and semantic 4 (no
// Redis at all: polling alone, with the backoff measured), in both the blocking and the
// coroutine form.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <herald/herald.hpp>
#include <herald/redis_bridge.hpp>

#include "bridge/bridge_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using herald::test::eventually;
using herald::test::json_number;
using herald::test::json_true;
using herald::test::RedisServer;

namespace {

using Clock = std::chrono::steady_clock;

/// The caller's durable store, as poll_state sees it: one state per id, every poll timed.
class Store {
 public:
  void set(const std::string& id, TaskState s) {
    std::lock_guard lock(mutex_);
    states_[id] = s;
  }
  std::optional<TaskState> poll(std::string_view id) {
    std::lock_guard lock(mutex_);
    polls_.push_back(Clock::now());
    if (after_polls_ > 0 && polls_.size() >= after_polls_) states_[std::string(id)] = then_;
    const auto it = states_.find(std::string(id));
    if (it == states_.end()) return std::nullopt;
    return it->second;
  }
  /// From the n-th poll on, the state is `s`.
  void change_at_poll(std::size_t n, TaskState s) {
    std::lock_guard lock(mutex_);
    after_polls_ = n;
    then_ = s;
  }
  std::vector<Clock::time_point> polls() {
    std::lock_guard lock(mutex_);
    return polls_;
  }
  TaskNotifier::PollState fn() {
    return [this](std::string_view id) { return poll(id); };
  }

 private:
  std::mutex mutex_;
  std::map<std::string, TaskState> states_;
  std::vector<Clock::time_point> polls_;
  std::size_t after_polls_ = 0;
  TaskState then_{};
};

std::vector<double> gaps_ms(const std::vector<Clock::time_point>& t) {
  std::vector<double> g;
  for (std::size_t i = 1; i < t.size(); ++i)
    g.push_back(std::chrono::duration<double, std::milli>(t[i] - t[i - 1]).count());
  return g;
}

RedisOptions fast_options(const RedisServer& server) {
  RedisOptions o;
  o.url = server.url();
  o.prefix = "herald-test";
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.connect_timeout = 500ms;
  o.command_timeout = 300ms;
  o.health_interval = 100ms;
  return o;
}

/// Every state of `stream` until it ends (closed), on the loop.
Task<std::vector<TaskState>> drain(TaskStream& stream) {
  std::vector<TaskState> seen;
  for (;;) {
    Result<TaskState> s = co_await stream.next();
    if (!s) break;
    seen.push_back(*s);
  }
  co_return seen;
}

}  // namespace

TEST_SUITE("task notifier") {
  TEST_CASE("without Redis every stream completes by polling alone; the interval backs off x2") {
    Kernel kernel;
    Store store;
    store.set("job", TaskState::pending);
    store.change_at_poll(5, TaskState::completed);
    TaskNotifier notifier(kernel, nullptr, store.fn());
    CHECK(notifier.notify_task_updated("job", TaskState::running));  // nothing to publish
    TaskStream stream = notifier.subscribe_to_task("job", 20s);
    CHECK(stream.next_blocking(1s).value() == TaskState::pending);  // the first poll, at once
    CHECK(stream.next_blocking(5s).value() == TaskState::completed);
    CHECK(stream.done());
    CHECK(stream.next_blocking(1s).error() == Errc::closed);
    const auto g = gaps_ms(store.polls());
    REQUIRE(g.size() == 4);
    MESSAGE("poll gaps (ms): " << g[0] << " " << g[1] << " " << g[2] << " " << g[3]);
    const double expected[] = {100, 200, 400, 800};
    for (int i = 0; i < 4; ++i) {
      CHECK(g[i] >= expected[i] - 1);
      CHECK(g[i] <= expected[i] * 1.5 + 150);  // slack for a loaded machine
    }
  }

  TEST_CASE("the polling interval stops doubling at poll_max") {
    Kernel kernel;
    Store store;
    store.set("job", TaskState::running);
    store.change_at_poll(9, TaskState::failed);
    TaskNotifier notifier(kernel, nullptr, store.fn(), TaskNotifierOptions{10ms, 40ms});
    TaskStream stream = notifier.subscribe_to_task("job", 20s);
    CHECK(stream.next_blocking(1s).value() == TaskState::running);
    CHECK(stream.next_blocking(5s).value() == TaskState::failed);
    const auto g = gaps_ms(store.polls());
    REQUIRE(g.size() == 8);
    const double expected[] = {10, 20, 40, 40, 40, 40, 40, 40};
    for (int i = 0; i < 8; ++i) {
      CAPTURE(i);
      CHECK(g[i] >= expected[i] - 1);
      CHECK(g[i] <= expected[i] * 1.5 + 150);  // slack for a loaded machine
    }
    CHECK(stream.polls() == 9);
  }

  TEST_CASE("a stream ends with timed_out when its expiry passes; next_blocking's own timeout") {
    Kernel kernel;
    Store store;
    store.set("slow", TaskState::running);
    TaskNotifier notifier(kernel, nullptr, store.fn(), TaskNotifierOptions{20ms, 40ms});
    const auto t0 = Clock::now();
    TaskStream stream = notifier.subscribe_to_task("slow", 300ms);
    CHECK(stream.next_blocking(1s).value() == TaskState::running);
    CHECK(stream.next_blocking(50ms).error() ==
          Errc::timed_out);  // the caller's bound, not the end
    CHECK_FALSE(stream.done());
    CHECK(stream.next_blocking(5s).value() == TaskState::timed_out);
    CHECK(Clock::now() - t0 >= 300ms);
    CHECK(Clock::now() - t0 < 2s);
    CHECK(stream.next_blocking(1s).error() == Errc::closed);
    // An id that makes no valid channel name.
    TaskStream bad = notifier.subscribe_to_task("two words", 1s);
    CHECK(bad.next_blocking(1s).error() == Errc::invalid_argument);
    CHECK(notifier.notify_task_updated("two words", TaskState::running).error() ==
          Errc::invalid_argument);
    CHECK(notifier.notify_execution_updated("", TaskState::running).error() ==
          Errc::invalid_argument);
    TaskStream empty;
    CHECK(empty.next_blocking(1ms).error() == Errc::closed);
  }

  TEST_CASE("co_await stream.next() yields the same states on an event loop") {
    Kernel kernel;
    Store store;
    store.set("exec-1", TaskState::pending);
    store.change_at_poll(3, TaskState::running);
    TaskNotifier notifier(kernel, nullptr, store.fn(), TaskNotifierOptions{10ms, 20ms});
    TaskStream stream = notifier.subscribe_to_execution("exec-1", 400ms);
    EventLoop loop;
    const auto seen = sync_wait(loop, drain(stream));
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == TaskState::pending);
    CHECK(seen[1] == TaskState::running);
    CHECK(seen[2] == TaskState::timed_out);
  }

  TEST_CASE("a task stream follows messages through Redis, in both forms") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    // The loop outlives the bridge: its subscriber thread may still be inside the loop's post()
    // (writing its eventfd) after the coroutine it woke has finished.
    EventLoop loop;
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    Store store;
    store.set("t1", TaskState::pending);
    store.set("e1", TaskState::pending);
    // Polls would take 30 s: every change below arrives as a message.
    TaskNotifier notifier(kernel, bridge.get(), store.fn(), TaskNotifierOptions{30s, 30s});
    TaskStream stream = notifier.subscribe_to_task("t1", 20s);
    CHECK(stream.next_blocking(1s).value() == TaskState::pending);
    REQUIRE(notifier.notify_task_updated("t1", TaskState::running));
    CHECK(stream.next_blocking(5s).value() == TaskState::running);
    REQUIRE(notifier.notify_task_updated("t1", TaskState::running));  // no change: not yielded
    REQUIRE(notifier.notify_task_updated("t1", TaskState::cancelled));
    CHECK(stream.next_blocking(5s).value() == TaskState::cancelled);
    CHECK(stream.next_blocking(1s).error() == Errc::closed);
    CHECK(stream.polls() == 1);

    TaskStream exec = notifier.subscribe_to_execution("e1", 20s);
    std::thread publisher([&] {
      std::this_thread::sleep_for(50ms);
      (void)notifier.notify_execution_updated("e1", TaskState::running);
      std::this_thread::sleep_for(50ms);
      (void)notifier.notify_execution_updated("e1", TaskState::completed);
    });
    const auto seen = sync_wait(loop, drain(exec));
    publisher.join();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == TaskState::pending);
    CHECK(seen[1] == TaskState::running);
    CHECK(seen[2] == TaskState::completed);
    CHECK(exec.polls() == 1);
  }

  TEST_CASE("a stream that missed its terminal message across a restart ends by its poll") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    Store store;
    store.set("job-9", TaskState::pending);
    // Polling while down would take 30 s: only the poll after the reconnect can end this stream.
    TaskNotifier notifier(kernel, bridge.get(), store.fn(), TaskNotifierOptions{30s, 30s});
    TaskStream stream = notifier.subscribe_to_task("job-9", 20s);
    CHECK(stream.next_blocking(1s).value() == TaskState::pending);
    REQUIRE(notifier.notify_task_updated("job-9", TaskState::running));
    CHECK(stream.next_blocking(5s).value() == TaskState::running);
    CHECK(stream.polls() == 1);

    server.kill_now();
    REQUIRE(eventually(
        [&] {
          const std::string st = bridge->stats();
          return !json_true(st, "publisher_connected") && !json_true(st, "subscriber_connected");
        },
        5s));
    store.set("job-9", TaskState::completed);
    // The terminal message is lost: the link is down.
    CHECK(notifier.notify_task_completed("job-9").error() == Errc::closed);
    CHECK(stream.next_blocking(200ms).error() == Errc::timed_out);
    REQUIRE(server.start());
    const auto t0 = Clock::now();
    auto s = stream.next_blocking(10s);
    REQUIRE(s.has_value());
    CHECK(*s == TaskState::completed);
    CHECK(Clock::now() - t0 < 5s);
    CHECK(stream.polls() == 2);  // the first one, and the one after the reconnect
    CHECK(json_number(bridge->stats(), "reconnects") >= 1);
    CHECK(json_number(bridge->stats(), "resyncs") >= 1);
  }
}
