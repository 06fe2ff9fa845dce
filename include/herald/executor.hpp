#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace herald {

/// Where coroutine waiters resume.
///
/// The kernel never resumes a coroutine on a notifier's thread: it hands the waiter's Work item to
/// the waiter's Executor with post(). A Work item lives inside the awaiter that posts it, so
/// posting allocates nothing.
class Executor {
 public:
  /// One unit of work; intrusive, owned by whoever posts it, valid until run() is called or it is
  /// withdrawn.
  struct Work {
    std::atomic<Work*> next{nullptr};  // executor-private link
    void (*run)(Work*) noexcept = nullptr;
  };

  /// Any thread. Never blocks, never allocates. Runs `work.run(&work)` later on the executor.
  virtual void post(Work& work) noexcept = 0;
  /// Called from the executor's own thread only: removes `work` if it is queued and not yet run.
  /// Returns false when it cannot (the default). Destroying a suspended coroutine whose completion
  /// is already posted relies on this, or, without it, on the executor running on another thread.
  virtual bool withdraw(Work& work) noexcept;
  /// True when the calling thread is the one running this executor now.
  virtual bool running_in_this_thread() const noexcept;

 protected:
  ~Executor() = default;
};

/// The executor running on this thread (set while EventLoop::run/poll runs), or nullptr.
Executor* current_executor() noexcept;

namespace detail {

struct LoopAccess;

/// A deadline in an EventLoop's timer heap; lives inside the awaiter that arms it.
struct TimerNode {
  static constexpr std::uint32_t kIdle = 0, kArmed = 1, kFiring = 2;
  std::chrono::steady_clock::time_point deadline{};
  void (*fire)(TimerNode*) noexcept = nullptr;  // called on the loop thread, outside the heap lock
  std::size_t heap_index = 0;                   // under the heap lock
  std::atomic<std::uint32_t> state{kIdle};
  void* context = nullptr;  // the owner's object
};

}  // namespace detail

/// A single-threaded event loop: an intrusive MPSC ready queue, a timer heap, and an eventfd it
/// parks on when idle.
///
/// post() may be called from any thread; everything else runs on the thread inside run()/poll().
/// native_handle() is an eventfd that is readable while work is pending, so an epoll or io_uring
/// loop can embed this one: wait for readability, then call poll().
///
/// Memory ordering: everything a thread wrote before post(w) is visible to w.run on the loop.
class EventLoop final : public Executor {
 public:
  EventLoop();
  /// Destroys the frames of unfinished spawned tasks; their pending waits are withdrawn first.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until stop(): work as it arrives, timers as they fall due; parks when idle.
  void run();
  /// Runs what is ready now and the timers now due, without blocking; returns how many work items
  /// and timers ran.
  std::size_t poll();
  /// Any thread. The current run() returns; if none is running, the next one returns at once.
  void stop() noexcept;
  /// The eventfd: readable while work is pending.
  int native_handle() const noexcept { return event_fd_; }

  void post(Work& work) noexcept override;
  bool withdraw(Work& work) noexcept override;
  bool running_in_this_thread() const noexcept override;

 private:
  // Timers and spawned tasks: used by the awaiters, spawn() and sync_wait() through LoopAccess.
  friend struct detail::LoopAccess;

  /// Any thread. Arms `timer` for timer.deadline; false only if the heap could not grow.
  [[nodiscard]] bool arm(detail::TimerNode& timer) noexcept;
  /// Any thread. Disarms `timer`; if it is firing on the loop thread right now, waits for that to
  /// finish (unless called from the loop thread, where it cannot be).
  void disarm(detail::TimerNode& timer) noexcept;
  /// Takes ownership of a spawned coroutine frame (see spawn()). Control plane: may allocate.
  void adopt(void* frame_address);
  /// Called by a spawned task as it finishes: forgets and destroys its frame.
  void release(void* frame_address) noexcept;
  /// Runs (parking when idle) until `done` is true; used by sync_wait().
  void run_until(const std::atomic<bool>& done);

  void push(Work& work) noexcept;  // the queue only, no signal
  Work* pop_ready() noexcept;      // the loop-private list first, then the queue
  Work* pop_queue() noexcept;
  std::size_t run_ready() noexcept;
  std::size_t run_timers() noexcept;
  std::chrono::steady_clock::time_point next_deadline() noexcept;
  /// Parks until work is posted or `deadline`; with wake_on_stop, also while stop() is pending.
  void wait_for_work(std::chrono::steady_clock::time_point deadline, bool wake_on_stop) noexcept;
  void clear_signal() noexcept;
  void heap_remove(std::size_t index) noexcept;
  void heap_up(std::size_t index) noexcept;
  void heap_down(std::size_t index) noexcept;

  // Vyukov's intrusive MPSC queue: producers exchange head_, the loop pops from tail_.
  alignas(64) std::atomic<Work*> head_;
  std::atomic<bool> signaled_{false};  // an eventfd write is outstanding
  alignas(64) Work* tail_;
  Work stub_;
  Work* local_head_ = nullptr;  // loop-thread list of items taken out of the queue by withdraw()
  Work* local_tail_ = nullptr;

  std::mutex timer_mutex_;
  std::vector<detail::TimerNode*> timers_;  // min-heap on deadline, under timer_mutex_

  std::mutex spawned_mutex_;
  std::vector<void*> spawned_;  // frames owned by this loop, under spawned_mutex_
  std::atomic<bool> stop_requested_{false};
  std::atomic<const void*> runner_{nullptr};  // the thread id token of the thread in run/poll
  int event_fd_ = -1;
};

namespace detail {

/// The kernel's and the task library's access to EventLoop internals (timers, owned frames, the
/// sync_wait driver): not part of the public contract.
struct LoopAccess {
  [[nodiscard]] static bool arm(EventLoop& loop, TimerNode& timer) noexcept {
    return loop.arm(timer);
  }
  static void disarm(EventLoop& loop, TimerNode& timer) noexcept { loop.disarm(timer); }
  static void adopt(EventLoop& loop, void* frame) { loop.adopt(frame); }
  static void release(EventLoop& loop, void* frame) noexcept { loop.release(frame); }
  static void run_until(EventLoop& loop, const std::atomic<bool>& done) { loop.run_until(done); }
};

}  // namespace detail

}  // namespace herald
