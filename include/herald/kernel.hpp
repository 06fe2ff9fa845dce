#pragma once

#include <cstdint>
#include <string>

#include "herald/awaitables.hpp"
#include "herald/error.hpp"
#include "herald/handle.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"
#include "herald/subscription.hpp"

namespace herald {

namespace detail {
class KernelState;
/// Kernel::notify(), constructing its result in `out` (placement new). Out of line; its common
/// path makes no call, so it saves few registers (every store a notify makes is one the next
/// notify's locked instruction waits for).
void notify_into(KernelState& s, std::uint64_t h, std::int64_t arg,
                 Result<NotifyReceipt>* out) noexcept;
}  // namespace detail

/// The notification kernel: a registry of handles, each a source that worker threads notify and
/// that clients wait on or subscribe to.
///
/// Every member is thread-safe. The control plane (register, unregister, subscribe, and a
/// Subscription's destructor) may take the kernel's mutex and allocate (through mimalloc, within
/// KernelOptions::memory_limit). The data plane (notify, observe, try_recv, completing waits)
/// never allocates, never runs client code, and takes no lock while no waiter is parked on the
/// handle, with one exception: a multi-producer notify that finds both latest cells held by
/// older notifiers preempted mid-publish publishes under the handle's mutex. Unregistering waits
/// for a grace period: every notify that could still reach the handle's memory has returned
/// before it is freed.
///
/// Not copyable, not movable. Subscriptions and pending waits must not outlive it.
///
/// Memory ordering: if notify(h, a) returns seq N, then a waiter that completes with N (or a
/// later seq), and a subscription that receives N, see every write the notifier made before
/// notify().
class Kernel {
 public:
  /// Allocates the handle table (max_handles slots) up front; throws std::bad_alloc if it cannot.
  explicit Kernel(const KernelOptions& options = {});
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  // ---- control plane ----

  /// limit_exceeded beyond max_handles; out_of_memory beyond memory_limit.
  [[nodiscard]] Result<Handle> register_handle(const HandleOptions& options = {});
  /// On return every operation on `h` gives unknown_handle, pending waits have completed with
  /// closed, and subscriptions hand out what they buffered, then closed. unknown_handle if `h` is
  /// not live.
  Result<void> unregister_handle(Handle h);
  /// invalid_argument for capacity 0 or above max_subscription_capacity; limit_exceeded beyond
  /// the handle's max_subscribers; out_of_memory beyond memory_limit, and for any capacity above
  /// 2^31 (its power-of-two ring, 2^32 slots, cannot exist); unknown_handle.
  [[nodiscard]] Result<Subscription> subscribe(Handle h, const SubscriptionOptions& options = {});

  // ---- data plane ----

  /// Any thread. No lock unless waiters are parked (or the latest-cells fallback, see the class
  /// comment); never allocates, runs no client code. O(subscribers + waiters completed).
  /// unknown_handle if `h` is not live.
  [[nodiscard]] Result<NotifyReceipt> notify(Handle h, std::int64_t arg) noexcept {
    // The caller's slot (NRVO), which notify_into() constructs before it returns.
    // NOLINTNEXTLINE(clang-analyzer-optin.cplusplus.UninitializedObject)
    Result<NotifyReceipt> r{detail::ConstructedByCallee{}};
    detail::notify_into(*state_, h.raw(), arg, &r);
    return r;
  }
  /// Any thread. Lock-free. The highest seq assigned on `h` so far.
  [[nodiscard]] Result<Ticket> observe(Handle h) const noexcept;
  /// Blocks the calling thread until a notification with seq > after.seq is published (returns
  /// the latest one), `h` is unregistered (closed), the timeout passes (timed_out), the stop
  /// token fires (cancelled), or max_waiters are already parked (limit_exceeded, at once).
  /// Returns at once without a lock when one is already published. The waiter node lives on this
  /// stack.
  [[nodiscard]] Result<Notification> wait_blocking(Handle h, Ticket after,
                                                   WaitOptions options = {}) noexcept;
  /// `co_await wait(h, after, options)` -> Result<Notification>: the coroutine form of
  /// wait_blocking. Resumes on options.executor or the current executor, never on the notifier's
  /// thread; the waiter node lives in the awaiter. See WaitAwaitable.
  WaitAwaitable wait(Handle h, Ticket after, WaitOptions options = {}) noexcept {
    return WaitAwaitable(state_, h, after, false, options);
  }
  /// `co_await wait(h)`: waits for the next notification after observe(h) at the co_await.
  WaitAwaitable wait(Handle h) noexcept { return WaitAwaitable(state_, h, Ticket{0}, true, {}); }

  // ---- observers ----

  /// Totals over the kernel's life (a snapshot while notifiers run).
  KernelStats stats() const noexcept;
  /// The handle's counts (a snapshot); unknown_handle if `h` is not live.
  [[nodiscard]] Result<HandleStats> stats(Handle h) const noexcept;
  /// One JSON object: options, live handles (hint, options, seq, waiters, subscriptions with
  /// hint/capacity/size/dropped), totals.
  std::string describe() const;
  const KernelOptions& options() const noexcept;

 private:
  detail::KernelState* state_;
};

}  // namespace herald
