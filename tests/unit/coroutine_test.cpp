#include <doctest/doctest.h>

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

/// Polls `loop` on this thread until `cond` holds (bounded: fails the test after 10 s).
template <class F>
void poll_until(EventLoop& loop, F cond) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    loop.poll();
    REQUIRE(std::chrono::steady_clock::now() < give_up);
    std::this_thread::yield();
  }
}

struct Outcome {
  bool done = false;
  Result<Notification> result = Errc::empty;
  std::thread::id thread{};
};

Task<void> wait_once(Kernel& k, Handle h, Ticket t, WaitOptions o, Outcome& out) {
  out.result = co_await k.wait(h, t, o);
  out.thread = std::this_thread::get_id();
  out.done = true;
}

Task<void> wait_next(Kernel& k, Handle h, Outcome& out) {
  out.result = co_await k.wait(h);
  out.done = true;
}

Task<void> recv_once(Subscription& s, WaitOptions o, Outcome& out) {
  out.result = co_await s.recv(o);
  out.thread = std::this_thread::get_id();
  out.done = true;
}

Task<int> value(int v) { co_return v; }
Task<int> add_one(int v) { co_return 1 + co_await value(v); }
Task<int> depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await depth(n - 1);
}
Task<void> throws() {
  throw std::runtime_error("boom");
  co_return;
}

/// Counts its own destruction: tells whether a frame holding one was destroyed.
struct FrameProbe {
  explicit FrameProbe(std::atomic<int>* d) : destroyed(d) {}
  FrameProbe(FrameProbe&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  FrameProbe(const FrameProbe&) = delete;
  ~FrameProbe() {
    if (destroyed != nullptr) destroyed->fetch_add(1);  // only the copy that lives in the frame
  }
  std::atomic<int>* destroyed;
};

/// An Executor that is not an EventLoop: runs work on its own thread.
class ThreadExecutor final : public Executor {
 public:
  ThreadExecutor()
      : thread_([this] {
          std::unique_lock lock(mutex_);
          for (;;) {
            cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;
            Work* w = queue_.front();
            queue_.pop_front();
            lock.unlock();
            w->run(w);
            lock.lock();
          }
        }) {}
  ~ThreadExecutor() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void post(Work& work) noexcept override {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(&work);
    }
    cv_.notify_one();
  }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Work*> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

TEST_SUITE("event loop and tasks") {
  TEST_CASE("sync_wait returns a task's value and rethrows its exception") {
    EventLoop loop;
    CHECK(sync_wait(loop, add_one(41)) == 42);
    CHECK_THROWS_AS(sync_wait(loop, throws()), std::runtime_error);
  }

  TEST_CASE("a Task chain 100k deep completes without growing the stack") {
    // Sanitizer instrumentation (ASan's and TSan's function entry/exit hooks) defeats the tail
    // call that symmetric transfer compiles to, so those builds check a shallower chain.
    EventLoop loop;
    CHECK(sync_wait(loop, depth(test::kDeepChain)) == test::kDeepChain);
  }

  TEST_CASE("spawned tasks start when the loop runs and their frames are freed when they end") {
    EventLoop loop;
    std::atomic<int> destroyed{0};
    std::atomic<int> ran{0};
    auto task = [](std::atomic<int>* ran, FrameProbe) -> Task<void> {
      ran->fetch_add(1);
      co_return;
    };
    for (int i = 0; i < 3; ++i) spawn(loop, task(&ran, FrameProbe{&destroyed}));
    CHECK(ran.load() == 0);  // lazy: nothing ran yet
    CHECK(destroyed.load() == 0);
    CHECK(loop.poll() == 3);
    CHECK(ran.load() == 3);
    CHECK(destroyed.load() == 3);
  }

  TEST_CASE("post from another thread runs on the loop; native_handle is readable while pending") {
    EventLoop loop;
    struct Count : Executor::Work {
      std::atomic<int>* n;
    };
    std::atomic<int> n{0};
    Count w;
    w.n = &n;
    w.run = [](Executor::Work* self) noexcept { static_cast<Count*>(self)->n->fetch_add(1); };
    pollfd pfd{loop.native_handle(), POLLIN, 0};
    CHECK(::poll(&pfd, 1, 0) == 0);  // idle: not readable
    std::thread([&] { loop.post(w); }).join();
    CHECK(::poll(&pfd, 1, 0) == 1);  // pending: readable
    CHECK(loop.poll() == 1);
    CHECK(n.load() == 1);
    pfd.revents = 0;
    CHECK(::poll(&pfd, 1, 0) == 0);
  }

  TEST_CASE("a stop() pending during sync_wait parks, and is left for the next run()") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    loop.stop();
    auto waiter = [](Kernel& k, Handle h) -> Task<std::int64_t> {
      co_return (co_await k.wait(h, Ticket{0})).value().arg;
    };
    std::thread notifier([&] {
      std::this_thread::sleep_for(50ms);
      (void)k.notify(h, 8);
    });
    const auto cpu_before = std::clock();
    CHECK(sync_wait(loop, waiter(k, h)) == 8);
    notifier.join();
    // Parked, not spinning: far less than the 50 ms it waited in CPU time.
    CHECK(static_cast<double>(std::clock() - cpu_before) / CLOCKS_PER_SEC < 0.03);
    loop.run();  // the stop request is still pending: returns at once
  }

  TEST_CASE("stop() before run() makes the next run() return at once") {
    EventLoop loop;
    loop.stop();
    loop.run();  // returns
    std::thread stopper([&] {
      std::this_thread::sleep_for(20ms);
      loop.stop();
    });
    loop.run();  // parks, then returns on stop()
    stopper.join();
    CHECK(current_executor() == nullptr);
  }
}

TEST_SUITE("coroutine waits") {
  TEST_CASE("a past ticket completes at once") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    (void)k.notify(h, 5);
    (void)k.notify(h, 6);
    Outcome out;
    spawn(loop, wait_once(k, h, Ticket{0}, {}, out));
    loop.poll();
    REQUIRE(out.done);
    CHECK(out.result.value() == Notification{2, 6});
  }

  TEST_CASE("the coroutine resumes on the loop thread, after the notifier has returned") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Outcome out;
    spawn(loop, wait_once(k, h, Ticket{0}, {}, out));
    loop.poll();
    REQUIRE_FALSE(out.done);
    CHECK(k.stats(h).value().waiters == 1);
    NotifyReceipt receipt{};
    std::thread::id notifier_id;
    std::thread notifier([&] {
      notifier_id = std::this_thread::get_id();
      receipt = k.notify(h, 7).value();
    });
    notifier.join();  // notify() returned...
    CHECK(receipt.woken == 1);
    CHECK_FALSE(out.done);  // ...and the coroutine has not run: it was posted, not resumed inline
    loop.poll();
    REQUIRE(out.done);
    CHECK(out.result.value().arg == 7);
    CHECK(out.thread == std::this_thread::get_id());
    CHECK(out.thread != notifier_id);
  }

  TEST_CASE("wait(h) waits for the next notification after the co_await") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    (void)k.notify(h, 1);
    Outcome out;
    spawn(loop, wait_next(k, h, out));
    loop.poll();
    CHECK_FALSE(out.done);
    (void)k.notify(h, 2);
    loop.poll();
    REQUIRE(out.done);
    CHECK(out.result.value().seq == 2);
  }

  TEST_CASE("waiters are broadcast") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    std::vector<Outcome> outs(5);
    for (auto& o : outs) spawn(loop, wait_once(k, h, Ticket{0}, {}, o));
    loop.poll();
    CHECK(k.notify(h, 3).value().woken == 5);
    loop.poll();
    for (auto& o : outs) CHECK(o.result.value().arg == 3);
  }

  TEST_CASE("timeouts give timed_out and withdraw the waiter") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Outcome out;
    const auto start = std::chrono::steady_clock::now();
    spawn(loop, wait_once(k, h, Ticket{0}, {.timeout = 20ms}, out));
    poll_until(loop, [&] { return out.done; });
    CHECK(out.result.error() == Errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - start >= 20ms);
    CHECK(k.stats(h).value().waiters == 0);
    CHECK(k.notify(h, 1).value().woken == 0);

    Outcome zero;
    spawn(loop, wait_once(k, h, Ticket{1}, {.timeout = 0ns}, zero));
    loop.poll();
    CHECK(zero.result.error() == Errc::timed_out);
  }

  TEST_CASE("a stop request gives cancelled, before or while suspended") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    std::stop_source early;
    early.request_stop();
    const std::stop_token early_token = early.get_token();
    Outcome a;
    spawn(loop, wait_once(k, h, Ticket{0}, {.stop = &early_token}, a));
    loop.poll();
    CHECK(a.result.error() == Errc::cancelled);

    std::stop_source source;
    const std::stop_token token = source.get_token();
    Outcome b;
    spawn(loop, wait_once(k, h, Ticket{0}, {.stop = &token}, b));
    loop.poll();
    REQUIRE_FALSE(b.done);
    std::thread([&] { source.request_stop(); }).join();
    CHECK_FALSE(b.done);  // posted to the loop, not resumed on the requesting thread
    loop.poll();
    CHECK(b.result.error() == Errc::cancelled);
    CHECK(k.stats(h).value().waiters == 0);
  }

  TEST_CASE("unregister completes coroutine waiters with closed") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Outcome out;
    spawn(loop, wait_once(k, h, Ticket{0}, {}, out));
    loop.poll();
    REQUIRE(k.unregister_handle(h));
    loop.poll();
    CHECK(out.result.error() == Errc::closed);
  }

  TEST_CASE("errors: unknown handle, max_waiters, nowhere to resume, timeout without a loop") {
    Kernel k;
    EventLoop loop;
    Outcome forged;
    spawn(loop, wait_once(k, Handle::from_raw(99), Ticket{0}, {}, forged));
    loop.poll();
    CHECK(forged.result.error() == Errc::unknown_handle);

    const Handle h = k.register_handle({.max_waiters = 1}).value();
    Outcome first, second;
    spawn(loop, wait_once(k, h, Ticket{0}, {}, first));
    spawn(loop, wait_once(k, h, Ticket{0}, {}, second));
    loop.poll();
    CHECK(second.result.error() == Errc::limit_exceeded);
    (void)k.notify(h, 1);
    loop.poll();
    CHECK(first.result.has_value());

    // Started by hand on a thread with no executor: there is nowhere to resume.
    Outcome orphan;
    auto task = wait_once(k, h, Ticket{5}, {}, orphan);
    auto frame = task.release();
    frame.resume();
    CHECK(orphan.result.error() == Errc::invalid_argument);
    frame.destroy();

    ThreadExecutor other;
    Outcome no_timer;
    spawn(loop, wait_once(k, h, Ticket{5}, {.timeout = 1s, .executor = &other}, no_timer));
    loop.poll();
    CHECK(no_timer.result.error() == Errc::invalid_argument);
  }

  TEST_CASE("options.executor chooses where the waiter resumes") {
    Kernel k;
    EventLoop loop;
    ThreadExecutor other;
    const Handle h = k.register_handle().value();
    std::atomic<bool> done{false};
    std::thread::id resumed_on;
    auto task = [](Kernel& k, Handle h, Executor* ex, std::thread::id& on,
                   std::atomic<bool>& done) -> Task<void> {
      (void)co_await k.wait(h, Ticket{0}, {.executor = ex});
      on = std::this_thread::get_id();
      done = true;
    };
    spawn(loop, task(k, h, &other, resumed_on, done));
    loop.poll();
    (void)k.notify(h, 1);
    while (!done.load()) std::this_thread::yield();
    CHECK(resumed_on == other.id());
    // The task finished on the other executor; the loop still owns and frees its frame.
  }

  TEST_CASE("destroying a loop withdraws the waits of its suspended tasks") {
    Kernel k;
    const Handle h = k.register_handle().value();
    std::atomic<int> destroyed{0};
    Outcome parked, posted;
    {
      EventLoop loop;
      auto task = [](Kernel& k, Handle h, Ticket t, Outcome& out, FrameProbe) -> Task<void> {
        out.result = co_await k.wait(h, t, {.timeout = 1h});
        out.done = true;
      };
      spawn(loop, task(k, h, Ticket{0}, parked, FrameProbe{&destroyed}));
      spawn(loop, task(k, h, Ticket{100}, posted, FrameProbe{&destroyed}));
      loop.poll();
      CHECK(k.stats(h).value().waiters == 2);
      // Complete the first: its resumption is now queued on the loop, which never runs it.
      CHECK(k.notify(h, 1).value().woken == 1);
      CHECK(destroyed.load() == 0);
    }
    CHECK_FALSE(parked.done);
    CHECK_FALSE(posted.done);
    CHECK(destroyed.load() == 2);
    CHECK(k.stats(h).value().waiters == 0);
    CHECK(k.notify(h, 2).value().woken == 0);
  }

  TEST_CASE("a spawned task that never started is freed with its loop") {
    std::atomic<int> destroyed{0};
    {
      EventLoop loop;
      auto task = [](FrameProbe) -> Task<void> { co_return; };
      spawn(loop, task(FrameProbe{&destroyed}));
    }
    CHECK(destroyed.load() == 1);
  }
}

TEST_SUITE("coroutine receive") {
  TEST_CASE("recv resumes on the loop with each notification in order") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    std::vector<std::int64_t> got;
    auto consumer = [](Subscription& s, std::vector<std::int64_t>& got) -> Task<void> {
      for (int i = 0; i < 3; ++i) got.push_back((co_await s.recv()).value().arg);
    };
    spawn(loop, consumer(s, got));
    loop.poll();
    CHECK(got.empty());
    std::thread([&] {
      for (int i = 1; i <= 3; ++i) (void)k.notify(h, i);
    }).join();
    loop.poll();
    CHECK(got == std::vector<std::int64_t>{1, 2, 3});
  }

  TEST_CASE("a receive that times out leaves a later item buffered") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    Outcome first;
    spawn(loop, recv_once(s, {.timeout = 10ms}, first));
    poll_until(loop, [&] { return first.done; });
    CHECK(first.result.error() == Errc::timed_out);
    (void)k.notify(h, 9);
    CHECK(s.size() == 1);
    Outcome second;
    spawn(loop, recv_once(s, {}, second));
    loop.poll();
    CHECK(second.result.value().arg == 9);
  }

  TEST_CASE("recv gives cancelled and closed") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    std::stop_source source;
    const std::stop_token token = source.get_token();
    Outcome cancelled;
    spawn(loop, recv_once(s, {.stop = &token}, cancelled));
    loop.poll();
    source.request_stop();
    loop.poll();
    CHECK(cancelled.result.error() == Errc::cancelled);

    Outcome closed;
    spawn(loop, recv_once(s, {}, closed));
    loop.poll();
    (void)k.notify(h, 1);
    REQUIRE(k.unregister_handle(h));
    loop.poll();
    CHECK(closed.result.value().arg == 1);  // buffered before the unregister: delivered first
    Outcome after;
    spawn(loop, recv_once(s, {}, after));
    loop.poll();
    CHECK(after.result.error() == Errc::closed);
  }

  TEST_CASE("destroying a Subscription with a suspended receiver completes it with closed") {
    Kernel k;
    EventLoop loop;
    const Handle h = k.register_handle().value();
    auto s = std::make_unique<Subscription>(k.subscribe(h).value());
    Outcome out;
    spawn(loop, recv_once(*s, {.timeout = 1h}, out));
    loop.poll();
    REQUIRE_FALSE(out.done);
    s.reset();
    CHECK(k.stats(h).value().subscriptions == 0);
    loop.poll();
    CHECK(out.result.error() == Errc::closed);
    (void)k.notify(h, 1);  // nothing reaches the old ring
  }

  TEST_CASE("destroying a loop with a suspended receiver withdraws it") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    Outcome out;
    {
      EventLoop loop;
      spawn(loop, recv_once(s, {.timeout = 1h}, out));
      loop.poll();
    }
    CHECK_FALSE(out.done);
    (void)k.notify(h, 4);  // the ring has no receiver to resolve any more
    CHECK(s.try_recv().value().arg == 4);
  }
}
