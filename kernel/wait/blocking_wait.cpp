// Kernel::wait_blocking: the lock-free fast path, enlisting a stack node, and parking on a futex.

#include <optional>
#include <stop_token>

#include "herald/kernel.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "reclaim/epoch.hpp"
#include "wait/futex.hpp"
#include "wait/spin.hpp"

namespace herald {
namespace {

using detail::HandleCore;
using detail::ReadGuard;
using detail::WaitNode;

void complete_blocking(WaitNode* node) noexcept {
  // seq_cst, not just release (which pairs with the waiter's acquire load, so result/error are
  // visible to it): the completion must be in S, before the grace period that unregister runs
  // after completing; a withdrawing owner's seq_cst check relies on that (PROTOCOLS.md §3).
  // After this store the node may be gone: only its address is used below.
  node->state.fetch_or(WaitNode::kDone, std::memory_order_seq_cst);
  detail::futex_wake_all(&node->state);
}

struct StopWake {
  WaitNode* node;
  void operator()() const noexcept {
    // The waiter sleeps on `state`; changing it makes a sleep that has not begun return at once.
    node->state.fetch_or(WaitNode::kCancelled, std::memory_order_relaxed);
    detail::futex_wake_all(&node->state);
  }
};

Result<Notification> outcome(const WaitNode& node) noexcept {
  if (node.error != Errc{}) return node.error;
  return node.result;
}

}  // namespace

Result<Notification> Kernel::wait_blocking(Handle h, Ticket after, WaitOptions options) noexcept {
  if (options.stop != nullptr && options.stop->stop_requested()) return Errc::cancelled;
  const auto deadline = detail::deadline_after(options.timeout);

  WaitNode node;
  node.ticket = after.seq;
  node.on_complete = &complete_blocking;
  HandleCore* core = nullptr;
  {
    ReadGuard guard;
    core = state_->table.lookup(h);
    if (core == nullptr) return Errc::unknown_handle;
    Notification ready{};
    if (core->latest_after(after.seq, ready)) return ready;  // lock-free fast path
  }
  if (options.timeout > std::chrono::nanoseconds::zero()) {
    // Spin before parking. Each poll is its own read section, so the spin never holds back
    // reclamation for longer than one poll; a handle unregistered meanwhile is reported below.
    Notification ready{};
    const bool got = detail::spin_before_park(
        [&] {
          ReadGuard guard;
          HandleCore* c = state_->table.lookup(h);
          return c != nullptr && c->latest_after(after.seq, ready);
        },
        [&] { return options.stop != nullptr && options.stop->stop_requested(); }, deadline);
    if (got) return ready;
  }
  {
    ReadGuard guard;
    core = state_->table.lookup(h);
    if (core == nullptr) return Errc::unknown_handle;
    Notification ready{};
    if (core->latest_after(after.seq, ready)) return ready;
    switch (core->enlist(node)) {
      case HandleCore::Enlisted::ready:
        return node.result;
      case HandleCore::Enlisted::closed:
        return Errc::closed;
      case HandleCore::Enlisted::limit:
        return Errc::limit_exceeded;
      case HandleCore::Enlisted::parked:
        break;
    }
  }

  // Parked. `core` stays allocated while the node is linked: unregister completes every linked
  // node before its grace period, so it is touched below only inside a ReadGuard after checking
  // the node is not complete.
  std::optional<std::stop_callback<StopWake>> on_stop;
  if (options.stop != nullptr) on_stop.emplace(*options.stop, StopWake{&node});

  Errc reason = Errc::timed_out;
  for (;;) {
    // acquire: pairs with complete_blocking's release.
    const std::uint32_t state = node.state.load(std::memory_order_acquire);
    if ((state & WaitNode::kDone) != 0) return outcome(node);
    if ((state & WaitNode::kCancelled) != 0) {
      reason = Errc::cancelled;
      break;
    }
    if (!detail::futex_wait(node.state, state, deadline)) break;  // timed out
  }

  HERALD_RACE_POINT(
      "blocking.give_up");  // timed out or cancelled: a notifier may be completing us right now
  {
    ReadGuard guard;
    // seq_cst: orders this check after the announcement; see WaitNode's lifecycle note.
    if ((node.state.load(std::memory_order_seq_cst) & WaitNode::kDone) == 0 &&
        core->withdraw(node)) {
      return reason;
    }
  }
  // A completer detached the node first and is finishing it (it never blocks): take its result.
  for (;;) {
    const std::uint32_t state = node.state.load(std::memory_order_acquire);
    if ((state & WaitNode::kDone) != 0) return outcome(node);
    detail::futex_wait(node.state, state, detail::Clock::time_point::max());
  }
}

}  // namespace herald
