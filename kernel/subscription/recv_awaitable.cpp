// RecvAwaitable: `co_await subscription.recv()`. Parks in the subscription's parker as a waker; a
// resolver only resumes it, and it takes from the ring on its own thread (PROTOCOLS.md §5).

#include <cassert>

#include "herald/awaitables.hpp"
#include "herald/executor.hpp"
#include "subscription/subscription_record.hpp"

namespace herald {

const detail::CoroResumption::Ops RecvAwaitable::kOps{&RecvAwaitable::withdraw,
                                                      &RecvAwaitable::settle};

RecvAwaitable::RecvAwaitable(detail::SubscriptionRecord* record, WaitOptions options) noexcept
    : CoroResumption(kOps, options), record_(record) {
  waker_.wake = &on_wake;
  waker_.context = this;
}

RecvAwaitable::~RecvAwaitable() {
  abandon();
  unlist();
}

bool RecvAwaitable::await_ready() noexcept {
  if (options_.stop != nullptr && options_.stop->stop_requested()) {
    outcome_ = Errc::cancelled;
    return true;
  }
  if (record_ == nullptr) {
    outcome_ = Errc::closed;
    return true;
  }
  if (take_from_ring()) return true;
  if (const Errc e = prepare(); e != Errc{}) {
    outcome_ = e;
    return true;
  }
  return false;
}

bool RecvAwaitable::await_suspend(std::coroutine_handle<> awaiting) noexcept {
  for (;;) {
    record_->suspended_receive = this;
    if (park()) break;
    record_->suspended_receive = nullptr;
    if (take_from_ring()) return false;
  }
  return suspend(awaiting);
}

Result<Notification> RecvAwaitable::await_resume() noexcept {
  unlist();
  assert(outcome_ && "every path that resumes a receive settles its outcome first");
  if (outcome_) return *outcome_;
  return Errc::closed;  // not reached (see the assertion); closed is the safe answer in release
}

void RecvAwaitable::unlist() noexcept {
  if (!subscription_gone_ && record_ != nullptr && record_->suspended_receive == this)
    record_->suspended_receive = nullptr;
}

bool RecvAwaitable::park() noexcept {
  detail::ConsumerParker& parker = record_->parker;
  parker.park_waker(&waker_);  // seq_cst fence inside
  // reason(): a stop or timer that fired while we were not parked found nothing to take, and will
  // not fire again (the Dekker pair of give_up()'s fence).
  if (!record_->ring.has_pending() && !record_->ring.closed() && reason() == Errc{}) return true;
  if (parker.take(&waker_)) {
    parker.unpark();
    return false;  // something is there: take it now
  }
  return true;  // a notifier or resolver took us already and is resolving us
}

bool RecvAwaitable::take_from_ring() noexcept {
  detail::SubscriptionRing& ring = record_->ring;
  Notification n{};
  if (ring.try_pop(n)) {
    outcome_ = n;
    return true;
  }
  if (!ring.closed()) return false;
  // Closed: every push happened-before `closed` (acquire), so one more look is final.
  outcome_ = ring.try_pop(n) ? Result<Notification>(n) : Result<Notification>(Errc::closed);
  return true;
}

bool RecvAwaitable::withdraw(CoroResumption* base) noexcept {
  auto* self = static_cast<RecvAwaitable*>(base);
  if (self->subscription_gone_) return false;  // resolved by the Subscription's destructor
  if (!self->record_->parker.take(&self->waker_)) return false;
  self->record_->parker.unpark();
  return true;
}

bool RecvAwaitable::settle(CoroResumption* base) noexcept {
  auto* self = static_cast<RecvAwaitable*>(base);
  // A resolver decided only that we must look again: take an item, or closed once drained, or
  // the resolver's reason, or park again.
  while (!self->outcome_) {
    // relaxed: written before the resolver's finish(), which our caller acquired; a stop or timer
    // that lost the waker to a notifier is seen here or by park()'s recheck.
    const Errc why = self->reason();
    if (self->subscription_gone_) {
      self->outcome_ = Errc::closed;
    } else if (self->take_from_ring()) {
      // outcome set
    } else if (why != Errc{}) {
      self->outcome_ = why;
    } else {
      // Woken but nothing to take (the kept item waits behind a notifier still writing): park
      // again; a later push resolves us once more.
      self->park_again();
      if (self->park()) return false;
      self->parked_in_vain();
    }
  }
  return true;
}

void RecvAwaitable::on_wake(detail::ParkedWaker* w) noexcept {
  static_cast<RecvAwaitable*>(w->context)->finish();
}

void RecvAwaitable::subscription_gone() noexcept {
  assert((executor_->running_in_this_thread() || current_executor() == nullptr) &&
         "destroy a Subscription with a suspended receive on the receive's executor thread");
  subscription_gone_ = true;
  cleanup();  // its timer and stop callback can no longer reach the subscription
  detail::ConsumerParker& parker = record_->parker;
  if (parker.take(&waker_)) {
    parker.unpark();
    finish();  // settles as closed
  }            // else a notifier took it and is posting it; its settling sees subscription_gone_
}

}  // namespace herald
