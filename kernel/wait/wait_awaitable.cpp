// WaitAwaitable: `co_await kernel.wait(h, ticket)`. The node lives in the awaiter and is pushed
// on the handle's lock-free waiter list; a completer claims it and fills the outcome from it.

#include <cassert>

#include "herald/awaitables.hpp"
#include "kernel_state.hpp"
#include "reclaim/epoch.hpp"

namespace herald {

using detail::HandleCore;
using detail::ReadGuard;

const detail::CoroResumption::Ops WaitAwaitable::kOps{&WaitAwaitable::withdraw,
                                                      &WaitAwaitable::settle};

WaitAwaitable::WaitAwaitable(detail::KernelState* kernel, Handle h, Ticket after, bool observe_now,
                             WaitOptions options) noexcept
    : CoroResumption(kOps, options),
      kernel_(kernel),
      handle_(h),
      after_(after),
      observe_now_(observe_now) {}

bool WaitAwaitable::await_ready() noexcept {
  if (options_.stop != nullptr && options_.stop->stop_requested()) {
    outcome_ = Errc::cancelled;
    return true;
  }
  {
    ReadGuard guard;
    HandleCore* c = kernel_->table.lookup(handle_);
    if (c == nullptr) {
      outcome_ = Errc::unknown_handle;
      return true;
    }
    c->watch(kernel_->lanes);  // from here notifies publish in the cells and check for waiters
    if (observe_now_) {
      if (!c->observed(after_.seq)) {
        outcome_ = Errc::unknown_handle;  // being unregistered: as if it already were
        return true;
      }
      observe_now_ = false;
    }
    Notification n{};
    if (c->latest_after(after_.seq, n)) {
      outcome_ = n;
      return true;
    }
  }
  if (const Errc e = prepare(); e != Errc{}) {
    outcome_ = e;
    return true;
  }
  return false;
}

bool WaitAwaitable::await_suspend(std::coroutine_handle<> awaiting) noexcept {
  node_.ticket = after_.seq;
  node_.on_complete = &on_node_complete;
  node_.context = this;
  {
    ReadGuard guard;
    core_ = kernel_->table.lookup(handle_);
    if (core_ == nullptr) {
      outcome_ = Errc::unknown_handle;
      return false;
    }
    switch (core_->enlist(node_)) {
      case HandleCore::Enlisted::ready:
        outcome_ = node_.result;
        return false;
      case HandleCore::Enlisted::closed:
        outcome_ = Errc::closed;
        return false;
      case HandleCore::Enlisted::limit:
        outcome_ = Errc::limit_exceeded;
        return false;
      case HandleCore::Enlisted::parked:
        break;
    }
  }
  return suspend(awaiting);
}

Result<Notification> WaitAwaitable::await_resume() noexcept {
  assert(outcome_ && "every path that resumes a wait settles its outcome first");
  if (outcome_) return *outcome_;
  return Errc::closed;  // not reached (see the assertion); closed is the safe answer in release
}

bool WaitAwaitable::withdraw(CoroResumption* base) noexcept {
  auto* self = static_cast<WaitAwaitable*>(base);
  ReadGuard guard;
  // A resolved wait is never touched again. Otherwise `core_` stays allocated while we withdraw:
  // either unregister has not reached its grace period (which then waits for this guard), or
  // our node is still counted in the handle's wake word, which unregister drains before freeing
  // and which withdraw() releases last (PROTOCOLS.md §3).
  if (self->resolved()) return false;
  return self->core_->withdraw(self->node_);
}

bool WaitAwaitable::settle(CoroResumption* base) noexcept {
  auto* self = static_cast<WaitAwaitable*>(base);
  // A completer filled the outcome from the node; the timer, a stop or a failed timer arm left
  // its reason (written before its finish(), which our caller acquired).
  if (!self->outcome_) self->outcome_ = self->reason();
  return true;
}

void WaitAwaitable::on_node_complete(detail::WaitNode* n) noexcept {
  auto* self = static_cast<WaitAwaitable*>(n->context);
  self->outcome_ =
      n->error != Errc{} ? Result<Notification>(n->error) : Result<Notification>(n->result);
  self->finish();
}

}  // namespace herald
