// CoroResumption: the resumption protocol shared by WaitAwaitable and RecvAwaitable (see
// awaitables.hpp and PROTOCOLS.md §3).

#include <cassert>
#include <thread>

#include "herald/awaitables.hpp"
#include "race_point.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

Errc CoroResumption::prepare() noexcept {
  executor_ = options_.executor != nullptr ? options_.executor : current_executor();
  if (executor_ == nullptr) return Errc::invalid_argument;  // nowhere to resume
  if (options_.timeout != std::chrono::nanoseconds::max()) {
    timer_loop_ = dynamic_cast<EventLoop*>(executor_);
    if (timer_loop_ == nullptr) return Errc::invalid_argument;  // timeouts need a timer heap
    if (options_.timeout.count() <= 0) return Errc::timed_out;
  }
  return Errc{};
}

bool CoroResumption::suspend(std::coroutine_handle<> awaiting) noexcept {
  HERALD_RACE_POINT("coro.armed");  // visible to resolvers, await_suspend not yet done
  continuation_ = awaiting;
  work_.self = this;
  work_.run = &on_resume;
  // From here on every resolution goes through `phase_`.
  if (timer_loop_ != nullptr) {
    timer_.context = this;
    timer_.fire = &on_timer;
    timer_.deadline = deadline_after(options_.timeout);
    if (!LoopAccess::arm(*timer_loop_, timer_)) give_up(Errc::out_of_memory);
  }
  if (options_.stop != nullptr) stop_.emplace(*options_.stop, StopFn{this});
  // acq_rel: publishes the setup to a resolver that posts us; acquires a resolver's decision.
  const std::uint32_t prev = phase_.fetch_or(kSuspended, std::memory_order_acq_rel);
  if ((prev & kResolved) == 0) return true;
  // Resolved while arming (a notifier, a stop already requested, a timer that could not be
  // armed): nothing was posted. Settle here, on this thread, as on_resume() would.
  phase_.fetch_or(kStarted, std::memory_order_relaxed);
  if (!ops_->settle(this)) return true;  // parked again: stay suspended
  cleanup();
  return false;
}

void CoroResumption::finish() noexcept {
  // seq_cst: releases the resolver's writes to whoever settles us and acquires await_suspend's
  // setup (acq_rel would do for that); in S as well, before the grace period of an unregister
  // that completes us, which a withdrawing owner's seq_cst check relies on (PROTOCOLS.md §3).
  const std::uint32_t prev = phase_.fetch_or(kResolved, std::memory_order_seq_cst);
  HERALD_RACE_POINT("coro.resolved");                    // resolved, not yet posted
  if ((prev & kSuspended) != 0) executor_->post(work_);  // `this` may be gone after this call
}

void CoroResumption::park_again() noexcept {
  // release: pairs with the resolver's RMW in finish(), which then sees kSuspended and posts.
  phase_.store(kSuspended, std::memory_order_release);
}

void CoroResumption::parked_in_vain() noexcept {
  phase_.fetch_or(kResolved | kStarted, std::memory_order_relaxed);  // our own thread's view
}

void CoroResumption::give_up(Errc why) noexcept {
  reason_.store(why, std::memory_order_relaxed);
  // seq_cst fence: Dekker with a receive parking again (waker store; fence; reason load): either
  // it sees the reason, or our withdraw below finds it parked and takes it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  HERALD_RACE_POINT("coro.withdraw");  // a timeout, stop or failed arm racing a completer
  if (ops_->withdraw(this)) finish();
}

void CoroResumption::cleanup() noexcept {
  if (timer_loop_ != nullptr) LoopAccess::disarm(*timer_loop_, timer_);
  stop_.reset();  // waits for a stop callback running on another thread
}

void CoroResumption::on_timer(TimerNode* t) noexcept {
  static_cast<CoroResumption*>(t->context)->give_up(Errc::timed_out);
}

void CoroResumption::on_resume(Executor::Work* w) noexcept {
  CoroResumption* self = static_cast<Resume*>(w)->self;
  std::uint32_t p = self->phase_.load(std::memory_order_acquire);
  do {
    if ((p & kAbandoned) != 0) {
      // release: the destructor waiting for this may now free the awaiter.
      self->phase_.fetch_or(kDiscarded, std::memory_order_release);
      return;
    }
  } while (!self->phase_.compare_exchange_weak(p, p | kStarted, std::memory_order_acq_rel));
  if (!self->ops_->settle(self)) return;  // parked again
  self->cleanup();
  self->continuation_.resume();
}

void CoroResumption::abandon() noexcept {
  const std::uint32_t p = phase_.load(std::memory_order_acquire);
  if ((p & kSuspended) == 0 || (p & kStarted) != 0) return;  // never suspended, or resumed
  // The coroutine is being destroyed while suspended here.
  if (ops_->withdraw(this)) {
    cleanup();
    return;
  }
  // A resolver won: it has posted, or is about to post, our resumption. Take it back.
  cleanup();
  // acquire: pairs with finish(); the resolver never blocks, so this wait is short.
  while ((phase_.load(std::memory_order_acquire) & kResolved) == 0) std::this_thread::yield();
  std::uint32_t q = phase_.load(std::memory_order_acquire);
  while (!phase_.compare_exchange_weak(q, q | kAbandoned, std::memory_order_acq_rel)) {
  }
  assert((q & kStarted) == 0 && "a coroutine was destroyed while it was being resumed");
  // On the executor's thread the queued item is removed; elsewhere its run() discards it. The
  // resolver's post may still be landing, so retry until one of the two happens.
  while ((phase_.load(std::memory_order_acquire) & kDiscarded) == 0) {
    if (executor_->withdraw(work_)) return;
    std::this_thread::yield();
  }
}

}  // namespace herald::detail
