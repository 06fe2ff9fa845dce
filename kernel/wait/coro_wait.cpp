// CoroWait: the state machine behind Kernel::wait and Subscription::recv (see awaitables.hpp).

#include <cassert>
#include <thread>

#include "herald/awaitables.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "reclaim/epoch.hpp"
#include "ring/subscription_ring.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

CoroWait::CoroWait(KernelState* kernel, Handle handle, Ticket after, bool observe_now,
                   WaitOptions options) noexcept
    : kind(Kind::handle),
      kernel(kernel),
      handle(handle),
      after(after),
      observe_now(observe_now),
      options(options) {}

CoroWait::CoroWait(SubscriptionRing* ring, WaitOptions options) noexcept
    : kind(Kind::ring), ring(ring), options(options) {}

bool CoroWait::ready() noexcept {
  if (options.stop != nullptr && options.stop->stop_requested()) {
    outcome = Errc::cancelled;
    return true;
  }
  Notification n{};
  if (kind == Kind::handle) {
    ReadGuard guard;
    HandleCore* c = kernel->table.lookup(handle);
    if (c == nullptr) {
      outcome = Errc::unknown_handle;
      return true;
    }
    if (observe_now) {
      after = Ticket{c->observed()};
      observe_now = false;
    }
    if (c->latest_after(after.seq, n)) {
      outcome = n;
      return true;
    }
  } else {
    if (ring == nullptr) {
      outcome = Errc::closed;
      return true;
    }
    if (take_from_ring()) return true;
  }
  executor = options.executor != nullptr ? options.executor : current_executor();
  if (executor == nullptr) {
    outcome = Errc::invalid_argument;  // nowhere to resume
    return true;
  }
  if (options.timeout != std::chrono::nanoseconds::max()) {
    timer_loop = dynamic_cast<EventLoop*>(executor);
    if (timer_loop == nullptr) {
      outcome = Errc::invalid_argument;  // timeouts need an EventLoop's timer heap
      return true;
    }
    if (options.timeout.count() <= 0) {
      outcome = Errc::timed_out;
      return true;
    }
  }
  return false;
}

bool CoroWait::rearm_receive() noexcept {
  // release: pairs with the acq_rel exchange of whoever takes it (notifier, timer, stop).
  ring->receiver_token.store(this, std::memory_order_release);
  ring->consumer_park(SubscriptionRing::kParkedCoroutine);  // seq_cst fence inside
  // `reason`: a stop or timer that fired while we were unparked (it found no receiver to take).
  if (!ring->has_pending() && !ring->closed() && reason.load(std::memory_order_relaxed) == Errc{})
    return true;
  if (ring->receiver_token.exchange(nullptr, std::memory_order_acq_rel) == this) {
    ring->consumer_unpark();
    return false;  // something is there: take it now
  }
  return true;  // a notifier took us back already and is resolving us
}

bool CoroWait::take_from_ring() noexcept {
  Notification n{};
  if (ring->try_pop(n)) {
    outcome = n;
    return true;
  }
  if (!ring->closed()) return false;
  // Closed: every push happened-before `closed` (acquire), so one more look is final.
  outcome = ring->try_pop(n) ? Result<Notification>(n) : Result<Notification>(Errc::closed);
  return true;
}

bool CoroWait::suspend(std::coroutine_handle<> awaiting) noexcept {
  continuation = awaiting;
  work.self = this;
  work.run = &on_resume;
  if (kind == Kind::handle) {
    node.ticket = after.seq;
    node.on_complete = &on_node_complete;
    node.context = this;
    ReadGuard guard;
    core = kernel->table.lookup(handle);
    if (core == nullptr) {
      outcome = Errc::unknown_handle;
      return false;
    }
    switch (core->enlist(node)) {
      case HandleCore::Enlisted::ready:
        outcome = node.result;
        return false;
      case HandleCore::Enlisted::closed:
        outcome = Errc::closed;
        return false;
      case HandleCore::Enlisted::limit:
        outcome = Errc::limit_exceeded;
        return false;
      case HandleCore::Enlisted::parked:
        break;
    }
  } else {
    for (;;) {
      ring->suspended_receive = this;
      if (rearm_receive()) break;
      ring->suspended_receive = nullptr;
      if (take_from_ring()) return false;
    }
  }
  HERALD_RACE_POINT("coro.armed");  // visible to resolvers, await_suspend not yet done
  // The wait is visible to resolvers now; from here on every outcome goes through `phase`.
  if (timer_loop != nullptr) {
    timer.context = this;
    timer.fire = &on_timer;
    timer.deadline = deadline_after(options.timeout);
    if (!LoopAccess::arm(*timer_loop, timer)) {
      reason.store(Errc::out_of_memory, std::memory_order_relaxed);
      if (withdraw()) {
        if (kind == Kind::handle) outcome = Errc::out_of_memory;
        finish();
      }
    }
  }
  if (options.stop != nullptr) stop.emplace(*options.stop, StopFn{this});
  // acq_rel: publishes the setup to a resolver that posts us; acquires a resolver's outcome.
  const std::uint32_t prev = phase.fetch_or(kSuspended, std::memory_order_acq_rel);
  if ((prev & kResolved) != 0) {
    // Resolved while arming (a notifier that pushed, a stop already requested, the timer that
    // could not be armed): nothing was posted; settle here, on this thread, as if resumed. A
    // receive resolved by a push has no outcome yet: it must look at the ring like on_resume().
    phase.fetch_or(kStarted, std::memory_order_relaxed);
    if (kind == Kind::ring && !settle_receive()) return true;  // parked again: stay suspended
    cleanup();
    return false;
  }
  return true;
}

bool CoroWait::settle_receive() noexcept {
  while (!outcome) {
    // relaxed: a resolver stores `reason` before its finish() (release RMW on `phase`), which
    // our caller acquired; a stop or timer that lost the receiver to a notifier is seen here or
    // by the recheck in rearm_receive() (the Dekker pair with StopFn/on_timer).
    const Errc why = reason.load(std::memory_order_relaxed);
    if (ring_gone) {
      outcome = Errc::closed;
    } else if (take_from_ring()) {
      // outcome set
    } else if (why != Errc{}) {
      outcome = why;
    } else {
      // Woken but nothing to take (the kept item waits behind a notifier still writing): park
      // again; a later push resolves us once more.
      phase.store(kSuspended, std::memory_order_release);
      if (rearm_receive()) return false;
      phase.fetch_or(kResolved | kStarted, std::memory_order_relaxed);
    }
  }
  return true;
}

void CoroWait::finish() noexcept {
  // seq_cst: releases the outcome to whoever resumes us and acquires await_suspend's setup
  // (acq_rel would do for that); in S as well, before the grace period of an unregister that
  // completes us, which withdraw()'s seq_cst check relies on (PROTOCOLS.md §3).
  const std::uint32_t prev = phase.fetch_or(kResolved, std::memory_order_seq_cst);
  HERALD_RACE_POINT("coro.resolved");                  // resolved, not yet posted
  if ((prev & kSuspended) != 0) executor->post(work);  // `this` may be gone after this call
}

bool CoroWait::withdraw() noexcept {
  HERALD_RACE_POINT("coro.withdraw");  // a timeout, stop or destruction racing a completer
  if (kind == Kind::ring) {
    return ring->receiver_token.exchange(nullptr, std::memory_order_acq_rel) == this;
  }
  ReadGuard guard;
  // seq_cst, after the announcement: if no completer has resolved us yet, unregister has not yet
  // reached its grace period, so `core` stays allocated while this guard is held.
  if ((phase.load(std::memory_order_seq_cst) & kResolved) != 0) return false;
  return core->withdraw(node);
}

void CoroWait::cleanup() noexcept {
  if (timer_loop != nullptr) LoopAccess::disarm(*timer_loop, timer);
  stop.reset();  // waits for a stop callback running on another thread
}

void CoroWait::on_node_complete(WaitNode* n) noexcept {
  auto* self = static_cast<CoroWait*>(n->context);
  self->outcome =
      n->error != Errc{} ? Result<Notification>(n->error) : Result<Notification>(n->result);
  self->finish();
}

void CoroWait::on_timer(TimerNode* t) noexcept {
  auto* self = static_cast<CoroWait*>(t->context);
  self->reason.store(Errc::timed_out, std::memory_order_relaxed);
  // seq_cst fence: Dekker with rearm_receive() (receiver store; fence; reason load): either
  // it sees the reason, or our withdraw() below finds it parked and takes it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (self->withdraw()) {
    if (self->kind == Kind::handle) self->outcome = Errc::timed_out;
    self->finish();
  }
}

void CoroWait::StopFn::operator()() const noexcept {
  self->reason.store(Errc::cancelled, std::memory_order_relaxed);
  // seq_cst fence: Dekker with rearm_receive() (receiver store; fence; reason load): either
  // it sees the reason, or our withdraw() below finds it parked and takes it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (self->withdraw()) {
    if (self->kind == Kind::handle) self->outcome = Errc::cancelled;
    self->finish();
  }
}

void CoroWait::on_resume(Executor::Work* w) noexcept {
  CoroWait* self = static_cast<Resume*>(w)->self;
  std::uint32_t p = self->phase.load(std::memory_order_acquire);
  do {
    if ((p & kAbandoned) != 0) {
      // release: the destructor waiting for this may now free the awaiter.
      self->phase.fetch_or(kDiscarded, std::memory_order_release);
      return;
    }
  } while (!self->phase.compare_exchange_weak(p, p | kStarted, std::memory_order_acq_rel));

  // A receive woken to look: take the item, or report why it gave up, or park again.
  if (self->kind == Kind::ring && !self->settle_receive()) return;
  if (self->kind == Kind::ring && !self->ring_gone) self->ring->suspended_receive = nullptr;
  self->cleanup();
  self->continuation.resume();
}

Result<Notification> CoroWait::resume() noexcept {
  if (kind == Kind::ring && ring != nullptr && !ring_gone && ring->suspended_receive == this)
    ring->suspended_receive = nullptr;
  assert(outcome && "every path that resumes a wait settles its outcome first");
  if (outcome) return *outcome;
  return Errc::closed;  // not reached (see the assertion); closed is the safe answer in release
}

CoroWait::~CoroWait() {
  const std::uint32_t p = phase.load(std::memory_order_acquire);
  if ((p & kSuspended) == 0 || (p & kStarted) != 0) return;  // never suspended, or resumed
  // The coroutine is being destroyed while suspended here.
  if (withdraw()) {
    cleanup();
    if (kind == Kind::ring) ring->suspended_receive = nullptr;
    return;
  }
  // A resolver won: it has posted, or is about to post, our resumption. Take it back.
  cleanup();
  // acquire: pairs with finish(); the resolver never blocks, so this wait is short.
  while ((phase.load(std::memory_order_acquire) & kResolved) == 0) std::this_thread::yield();
  if (kind == Kind::ring && !ring_gone) ring->suspended_receive = nullptr;
  std::uint32_t q = phase.load(std::memory_order_acquire);
  while (!phase.compare_exchange_weak(q, q | kAbandoned, std::memory_order_acq_rel)) {
  }
  assert((q & kStarted) == 0 && "a coroutine was destroyed while it was being resumed");
  // On the executor's thread the queued item is removed; elsewhere its run() discards it. The
  // resolver's post may still be landing, so retry until one of the two happens.
  while ((phase.load(std::memory_order_acquire) & kDiscarded) == 0) {
    if (executor->withdraw(work)) return;
    std::this_thread::yield();
  }
}

}  // namespace herald::detail
