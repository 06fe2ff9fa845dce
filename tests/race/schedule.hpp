#pragma once

// A small controlled scheduler for protocol tests (after folly's DeterministicSchedule and
// tokio's loom, at the granularity of the kernel's named race points).
//
// A scenario is a list of operations, each run on its own thread, and a check. A schedule says,
// for every operation after the first, at which race point of the operation before it that one
// is preempted: the earlier operation stops inside its window, the next one runs until it
// finishes (or blocks on the stopped one, e.g. on the handle's mutex or a grace period), and
// then the earlier one goes on. explore() runs every such schedule up to a bound on the points
// of each operation (exhaustive for two and three operations: every preemption point of each),
// or `random_schedules` seeded random ones. Operations that never reach their k-th point start
// the next one when they finish or block, so schedule k = "after" is covered too.
//
// Only one scenario thread runs at a time except when one is blocked on another; which thread
// runs is decided by the schedule, not by the OS, so a window the schedule names is hit every
// run. Blocking is detected by the absence of progress for kBlockedAfter, the one time-based
// element: a slow machine can only make the schedule less strict, never make a check pass that
// should fail. HERALD_SCHEDULE_TRACE=1 prints each schedule before it runs.
//
// Needs the herald_race build of the kernel (HERALD_RACE_INJECTION).

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "race_point.hpp"

namespace herald::test {

class Schedule {
 public:
  using Op = std::function<void()>;
  static constexpr auto kBlockedAfter = std::chrono::milliseconds(60);

  /// Runs `ops` with op i+1 started at the preempt[i]-th race point of op i (counting from 1;
  /// 0 = before op i begins).
  static void run(const std::vector<Op>& ops, const std::vector<int>& preempt) {
    Schedule s(ops.size(), preempt);
    current() = &s;
    detail::set_race_hook(&on_point);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      threads.emplace_back([&s, &ops, i] {
        role() = static_cast<int>(i);
        s.await_start(i);
        s.point(i, /*begin=*/true);  // preempt 0: the next op runs before this one
        ops[i]();
        s.finished(i);
      });
    }
    s.start(0);
    s.supervise();
    for (auto& t : threads) t.join();
    detail::set_race_hook(nullptr);
    current() = nullptr;
  }

  /// Every schedule of `ops` up to `max_points` preemption points per operation (exhaustive), or
  /// `random_schedules` random ones when it is nonzero. `make` builds a fresh fixture and returns
  /// its ops and check. Returns how many schedules ran.
  template <class Make>
  static int explore(Make make, int max_points, int random_schedules = 0, std::uint64_t seed = 1) {
    int runs = 0;
    const std::size_t n = make().ops.size();
    std::vector<int> preempt(n - 1, 0);
    if (random_schedules > 0) {
      std::mt19937_64 rng(seed);
      for (int r = 0; r < random_schedules; ++r) {
        for (int& p : preempt) p = static_cast<int>(rng() % (max_points + 1));
        run_one(make, preempt);
        ++runs;
      }
      return runs;
    }
    for (;;) {
      run_one(make, preempt);
      ++runs;
      std::size_t i = 0;  // odometer over preempt points
      while (i < preempt.size() && ++preempt[i] > max_points) preempt[i++] = 0;
      if (i == preempt.size()) return runs;
    }
  }

  struct Scenario {
    std::vector<Op> ops;
    std::function<void(const std::string& schedule)> check;
  };

 private:
  template <class Make>
  static void run_one(Make& make, const std::vector<int>& preempt) {
    Scenario sc = make();
    std::string name;
    for (int p : preempt) name += std::to_string(p) + " ";
    if (std::getenv("HERALD_SCHEDULE_TRACE") != nullptr)
      std::fprintf(stderr, "schedule: preempt at %s\n", name.c_str());
    run(sc.ops, preempt);
    sc.check(name);
  }

  Schedule(std::size_t n, const std::vector<int>& preempt)
      : preempt_(preempt), started_(n, false), done_(n, false), hits_(n, 0), progress_(n) {}

  static Schedule*& current() {
    static Schedule* s = nullptr;
    return s;
  }
  static int& role() {
    thread_local int r = -1;
    return r;
  }
  static void on_point(const char*) noexcept {
    Schedule* s = current();
    if (s != nullptr && role() >= 0) s->point(static_cast<std::size_t>(role()));
  }

  void await_start(std::size_t i) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return started_[i]; });
    progress_[i] = std::chrono::steady_clock::now();
  }
  void start(std::size_t i) {
    std::lock_guard lock(mutex_);
    start_locked(i);
  }
  void start_locked(std::size_t i) {
    if (i >= started_.size() || started_[i]) return;
    started_[i] = true;
    progress_[i] = std::chrono::steady_clock::now();
    cv_.notify_all();
  }
  void finished(std::size_t i) {
    std::lock_guard lock(mutex_);
    done_[i] = true;
    start_locked(i + 1);  // the next one, if its point was never reached
    cv_.notify_all();
  }
  /// Op i reached a race point: if it is the one the schedule names, run op i+1 now.
  void point(std::size_t i, bool begin = false) {
    std::unique_lock lock(mutex_);
    if (!begin) ++hits_[i];
    progress_[i] = std::chrono::steady_clock::now();
    if (i + 1 >= started_.size() || started_[i + 1] || hits_[i] != preempt_[i]) return;
    start_locked(i + 1);
    // Wait until op i+1 is done or blocked (on us, most likely); waiting counts as progress.
    while (!done_[i + 1] && !blocked(i + 1)) {
      cv_.wait_for(lock, std::chrono::milliseconds(5));
      progress_[i] = std::chrono::steady_clock::now();
    }
  }
  bool blocked(std::size_t i) const {
    return std::chrono::steady_clock::now() - progress_[i] > kBlockedAfter;
  }
  /// Starts op i+1 once op i finished or blocked before reaching its point. Gives up the whole
  /// process after kHung: an operation that never ends is a lost wakeup, and every op in a
  /// scenario bounds its own waits far below that.
  void supervise() {
    static constexpr auto kHung = std::chrono::seconds(30);
    const auto give_up = std::chrono::steady_clock::now() + kHung;
    std::unique_lock lock(mutex_);
    for (;;) {
      if (std::chrono::steady_clock::now() > give_up) {
        std::fprintf(stderr, "schedule: an operation hung for %lld s\n",
                     static_cast<long long>(kHung.count()));
        std::abort();
      }
      bool all = true;
      for (std::size_t i = 0; i < started_.size(); ++i) {
        all = all && done_[i];
        if (i + 1 < started_.size() && started_[i] && !started_[i + 1] && (done_[i] || blocked(i)))
          start_locked(i + 1);
      }
      if (all) return;
      cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
  }

  std::vector<int> preempt_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<bool> started_, done_;
  std::vector<int> hits_;
  std::vector<std::chrono::steady_clock::time_point> progress_;
};

}  // namespace herald::test
