// The Dispatcher: woken by the queue's kernel handle or polling with backoff; N workers on
// threads or an EventLoop; outcomes; lease extension for long handlers; graceful stop().
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <herald/outbox.hpp>

#include "outbox/outbox_support.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using herald::test::bytes;
using herald::test::raw_sql;
using herald::test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

/// Waits up to `limit` for pred(); true if it held.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

struct Recorder {
  std::mutex mutex;
  std::map<std::string, int> runs;
  void add(const std::string& id) {
    std::lock_guard lock(mutex);
    ++runs[id];
  }
  std::size_t distinct() {
    std::lock_guard lock(mutex);
    return runs.size();
  }
};

OutboxOptions kernel_options(Kernel& k) {
  OutboxOptions o;
  o.notify = NotifyMode::kernel;
  o.kernel = &k;
  o.retry.initial = 1ms;
  o.retry.max = 5ms;
  o.retry.jitter = 0;
  return o;
}

}  // namespace

TEST_SUITE("outbox dispatcher") {
  TEST_CASE("NotifyMode::kernel: an idle worker wakes on the enqueue at once, without polling") {
    TempDir dir;
    Kernel kernel;
    auto box = Outbox::open(dir.file("q.db"), kernel_options(kernel)).value();
    std::atomic<std::int64_t> started_ns{0};
    Dispatcher d(*box, {.queue = "q", .poll_max = 60s}, [&](const Entry&) {
      started_ns = Clock::now().time_since_epoch().count();
      return HandlerOutcome::done();
    });
    REQUIRE(d.start());
    std::this_thread::sleep_for(50ms);  // the worker is parked on the handle now
    const auto t0 = Clock::now();
    REQUIRE(box->enqueue("q", "a", bytes("p"))->notified);
    REQUIRE(eventually([&] { return d.stats().acked == 1; }));
    const auto latency = Clock::duration(started_ns.load()) - t0.time_since_epoch();
    CHECK(latency < 2s);  // the poll would have waited 60 s
    CHECK(d.stats().wakeups >= 1);
    CHECK(d.stats().polls == 0);
    d.stop();
    CHECK(box->list("q", {}).value().empty());
  }

  TEST_CASE(
      "NotifyMode::none: the dispatcher polls with backoff and finds rows another connection "
      "wrote") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = Outbox::open(path).value();
    auto writer = Outbox::open(path).value();  // another connection: as another process
    Recorder rec;
    Dispatcher d(*box, {.queue = "q", .poll_initial = 5ms, .poll_max = 40ms}, [&](const Entry& e) {
      rec.add(e.id);
      return HandlerOutcome::done();
    });
    CHECK(d.describe().find("\"wakes_on\":\"polling\"") != std::string::npos);
    REQUIRE(d.start());
    std::this_thread::sleep_for(100ms);
    CHECK(d.stats().polls >= 2);  // 5, 10, 20, 40, 40 ... ms
    for (int i = 0; i < 5; ++i) REQUIRE(writer->enqueue("q", "e" + std::to_string(i), bytes("p")));
    REQUIRE(eventually([&] { return d.stats().acked == 5; }));
    d.stop();
    CHECK(rec.distinct() == 5);
  }

  TEST_CASE("a kernel-mode dispatcher also notices rows from another process within poll_max") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    Kernel kernel;
    auto box = Outbox::open(path, kernel_options(kernel)).value();
    auto other_process = Outbox::open(path).value();  // quiet: notifies nobody here
    Dispatcher d(*box, {.queue = "q", .poll_max = 30ms},
                 [&](const Entry&) { return HandlerOutcome::done(); });
    REQUIRE(d.start());
    REQUIRE(other_process->enqueue("q", "foreign", bytes("p")));
    REQUIRE(eventually([&] { return d.stats().acked == 1; }, 5s));
    d.stop();
  }

  TEST_CASE("N worker threads handle every entry once and ack it") {
    TempDir dir;
    Kernel kernel;
    auto box = Outbox::open(dir.file("q.db"), kernel_options(kernel)).value();
    Recorder rec;
    Dispatcher d(*box, {.queue = "q", .workers = 4, .batch = 3}, [&](const Entry& e) {
      rec.add(e.id);
      return HandlerOutcome::done();
    });
    REQUIRE(d.start());
    CHECK(d.start().error() == Errc::invalid_argument);  // already started
    constexpr int kEntries = 200;
    for (int i = 0; i < kEntries; ++i)
      REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes("p")));
    REQUIRE(eventually([&] { return d.stats().acked == kEntries; }));
    d.stop();
    CHECK(rec.distinct() == kEntries);
    for (const auto& run : rec.runs) CHECK_MESSAGE(run.second == 1, run.first);
    CHECK(d.stats().claimed == kEntries);
    CHECK(d.stats().errors == 0);
  }

  TEST_CASE(
      "handler outcomes: retry re-queues, dead and max_attempts dead-letter, a throw is a retry") {
    TempDir dir;
    Kernel kernel;
    OutboxOptions o = kernel_options(kernel);
    o.retry.max_attempts = 3;
    auto box = Outbox::open(dir.file("q.db"), o).value();
    Recorder rec;
    Dispatcher d(*box, {.queue = "q", .poll_max = 20ms}, [&](const Entry& e) -> HandlerOutcome {
      rec.add(e.id);
      if (e.id == "flaky" && e.attempts < 2) throw std::runtime_error("flaky failure");
      if (e.id == "poison") return HandlerOutcome::dead("cannot parse");
      if (e.id == "always") return HandlerOutcome::retry("still down");
      return HandlerOutcome::done();
    });
    REQUIRE(d.start());
    for (const char* id : {"ok", "flaky", "poison", "always"})
      REQUIRE(box->enqueue("q", id, bytes("p")));
    REQUIRE(eventually([&] { return box->list("q", EntryStatus::failed).value().size() == 2; }));
    d.stop();
    auto failed = box->list("q", EntryStatus::failed).value();
    std::map<std::string, Entry> by_id;
    for (auto& e : failed) by_id.emplace(e.id, e);
    CHECK(by_id.at("poison").last_error == "cannot parse");
    CHECK(by_id.at("poison").attempts == 1);
    CHECK(by_id.at("always").attempts == 3);
    CHECK(by_id.at("always").last_error == "still down");
    CHECK(rec.runs["flaky"] == 2);
    CHECK(d.stats().acked == 2);
    CHECK(d.stats().dead == 2);
    CHECK(d.stats().retried == 3);  // flaky once, always twice
  }

  TEST_CASE(
      "a long handler keeps its lease: the keeper extends it and no other claimer gets the entry") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    Kernel kernel;
    auto box = Outbox::open(path, kernel_options(kernel)).value();
    auto rival = Outbox::open(path).value();
    std::atomic<bool> in_handler{false};
    Dispatcher d(*box, {.queue = "q", .lease = 60ms}, [&](const Entry&) {
      in_handler = true;
      std::this_thread::sleep_for(300ms);  // five leases long
      return HandlerOutcome::done();
    });
    REQUIRE(d.start());
    REQUIRE(box->enqueue("q", "long", bytes("p")));
    REQUIRE(eventually([&] { return in_handler.load(); }));
    for (int i = 0; i < 8; ++i) {
      CHECK(rival->claim("q", "rival", 1).value().empty());
      std::this_thread::sleep_for(30ms);
    }
    REQUIRE(eventually([&] { return d.stats().acked == 1; }));
    CHECK(d.stats().extended >= 3);
    d.stop();
  }

  TEST_CASE(
      "stop(): the running handler finishes and is acked; claimed entries not started are "
      "released") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    Kernel kernel;
    auto box = Outbox::open(path, kernel_options(kernel)).value();
    for (int i = 0; i < 5; ++i) REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes("p")));
    std::atomic<int> started{0};
    std::atomic<bool> finished{false};
    Dispatcher d(*box, {.queue = "q", .batch = 5}, [&](const Entry&) {
      ++started;
      std::this_thread::sleep_for(150ms);
      finished = true;
      return HandlerOutcome::done();
    });
    REQUIRE(d.start());
    REQUIRE(eventually([&] { return started.load() == 1; }));
    d.stop();
    CHECK(finished.load());
    CHECK(started.load() == 1);
    CHECK(d.stopped());
    CHECK(d.stats().acked == 1);
    CHECK(d.stats().released == 4);
    auto left = box->list("q", {}).value();
    REQUIRE(left.size() == 4);
    for (const Entry& e : left) {
      CHECK(e.status == EntryStatus::queued);
      CHECK(e.attempts == 0);
    }
    d.stop();  // idempotent
  }

  TEST_CASE(
      "workers as coroutines on an EventLoop, woken by the kernel handle, stopped from another "
      "thread") {
    TempDir dir;
    Kernel kernel;
    auto box = Outbox::open(dir.file("q.db"), kernel_options(kernel)).value();
    EventLoop loop;
    Recorder rec;
    std::thread::id handler_thread;
    Dispatcher d(*box, {.queue = "q", .workers = 2}, [&](const Entry& e) {
      handler_thread = std::this_thread::get_id();
      rec.add(e.id);
      return HandlerOutcome::done();
    });
    REQUIRE(d.start(loop));
    std::thread::id loop_thread;
    std::thread runner([&] {
      loop_thread = std::this_thread::get_id();
      loop.run();
    });
    constexpr int kEntries = 50;
    for (int i = 0; i < kEntries; ++i)
      REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes("p")));
    REQUIRE(eventually([&] { return d.stats().acked == kEntries; }));
    d.stop();
    loop.stop();
    runner.join();
    CHECK(d.stopped());
    CHECK(handler_thread == loop_thread);
    CHECK(rec.distinct() == kEntries);
  }

  TEST_CASE("a dispatcher without a queue, workers or handler is refused") {
    TempDir dir;
    auto box = Outbox::open(dir.file("q.db")).value();
    Dispatcher no_queue(*box, {}, [](const Entry&) { return HandlerOutcome::done(); });
    CHECK(no_queue.start().error() == Errc::invalid_argument);
    Dispatcher no_workers(*box, {.queue = "q", .workers = 0},
                          [](const Entry&) { return HandlerOutcome::done(); });
    CHECK(no_workers.start().error() == Errc::invalid_argument);
    Dispatcher no_handler(*box, {.queue = "q"}, nullptr);
    CHECK(no_handler.start().error() == Errc::invalid_argument);
    CHECK_FALSE(no_queue.owner().empty());
    CHECK(no_queue.owner() != no_workers.owner());
  }
}
