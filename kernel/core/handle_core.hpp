#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "config.hpp"
#include "core/latest_cells.hpp"
#include "herald/detail/wait_node.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"
#include "memory/memory_budget.hpp"
#include "subscription/subscription_record.hpp"
#include "wait/waiter_list.hpp"

namespace herald::detail {

/// The subscriptions of one handle as notify() sees them: an immutable array, replaced whole
/// (copy-on-write) by subscribe/unsubscribe and freed after an epoch grace period.
struct SubscriberList {
  std::uint32_t count;
  SubscriptionRecord* records[1];  // really `count` entries

  static SubscriberList* create(MemoryBudget& budget, std::uint32_t count) noexcept;
  /// A list one shorter than one being replaced: never refused by the memory limit.
  static SubscriberList* create_shrinking(MemoryBudget& budget, std::uint32_t count) noexcept;
  static void destroy(MemoryBudget& budget, SubscriberList* list) noexcept;
  static std::size_t footprint(std::uint32_t count) noexcept;
};

/// Everything the kernel keeps for one registered handle.
///
/// Producers: notify() (data plane, inside an epoch read section, lock-free while no waiter is
/// parked). Consumers: waiters (enlist/withdraw under `mutex_`) and subscriptions (their rings).
/// Control plane (under the kernel's control mutex): creation, the subscriber list, close().
///
/// Memory ordering: if notify() returns seq N, a waiter completed with N, and a subscription that
/// pops N, see every write the notifier made before that notify() (release/acquire through the
/// latest cells, the ring slot, or the waiter's state word).
class HandleCore {
 public:
  static HandleCore* create(MemoryBudget& budget, std::uint32_t index, std::uint32_t generation,
                            const HandleOptions& options) noexcept;
  static void destroy(MemoryBudget& budget, HandleCore* core) noexcept;

  // ---- data plane ----

  /// Any thread (one at a time for Producers::single). Never blocks while no waiter is parked,
  /// never allocates. O(subscribers + completed waiters).
  NotifyReceipt notify(std::int64_t arg) noexcept;
  /// The highest seq assigned so far.
  std::uint64_t observed() const noexcept { return seq_.load(std::memory_order_acquire); }
  /// Lock-free check for a published notification above `after`.
  bool latest_after(std::uint64_t after, Notification& out) const noexcept {
    return latest_.latest_after(after, out);
  }

  // ---- waiters ----

  enum class Enlisted : std::uint8_t { parked, ready, closed, limit };
  /// Links `node` unless a notification above its ticket is already published (then `ready`, with
  /// node.result filled), the handle is closed, or max_waiters are parked.
  Enlisted enlist(WaitNode& node) noexcept;
  /// Unlinks `node` if still linked; false when a completer has already detached it.
  bool withdraw(WaitNode& node) noexcept;

  // ---- control plane ----

  /// Unregister, step 1: no new waiter can enlist; every parked waiter completes with `closed`.
  void close_waiters() noexcept;
  SubscriberList* subscribers() const noexcept { return subs_.load(std::memory_order_acquire); }
  /// Publishes a new list (seq_cst: a notify that starts after this returns sees it).
  void set_subscribers(SubscriberList* list) noexcept {
    subs_.store(list, std::memory_order_seq_cst);
  }
  /// Folds an unsubscribed ring's counts into the handle's totals.
  void retire_counts(std::uint64_t delivered, std::uint64_t dropped) noexcept {
    retired_delivered_.fetch_add(delivered, std::memory_order_relaxed);
    retired_dropped_.fetch_add(dropped, std::memory_order_relaxed);
  }

  HandleStats stats() const noexcept;

  std::uint32_t index() const noexcept { return index_; }
  std::uint32_t generation() const noexcept { return generation_; }
  const HandleOptions& options() const noexcept { return options_; }  // debug_hint points inside
  std::uint32_t waiter_count() const noexcept { return waiters_.load(std::memory_order_relaxed); }

  // Control-plane links (kernel's live list), under the control mutex.
  HandleCore* live_prev = nullptr;
  HandleCore* live_next = nullptr;

 private:
  HandleCore(std::uint32_t index, std::uint32_t generation, const HandleOptions& options) noexcept;
  [[gnu::noinline]] void publish_locked(Notification n) noexcept;
  [[gnu::noinline]] std::uint32_t complete_waiters(Notification n) noexcept;
  bool latest_after_locked(std::uint64_t after, Notification& out) const noexcept;

  // The hot line: everything notify() reads or writes, so a notify on a handle that is out of
  // cache misses here once (and once in the table); the constructor asserts it fits.
  alignas(kCacheLine) std::atomic<std::uint64_t> seq_{0};
  std::atomic<SubscriberList*> subs_{nullptr};  // written by the control plane only
  std::atomic<std::uint32_t> waiters_{0};       // == waiter_list_.size(), readable without the lock
  const std::uint32_t generation_;
  const Producers producers_;
  LatestCells latest_;

  // Cold: immutable after creation, or used by the control plane and stats only.
  alignas(kCacheLine) const std::uint32_t index_;
  HandleOptions options_;
  std::atomic<std::uint64_t> retired_delivered_{0};
  std::atomic<std::uint64_t> retired_dropped_{0};
#ifndef NDEBUG
  std::atomic<std::uint32_t> single_notifier_{0};  // Producers::single misuse detector
#endif

  // The slow path.
  alignas(kCacheLine) mutable std::mutex mutex_;
  WaiterList waiter_list_;        // under mutex_
  bool closed_ = false;           // under mutex_
  Notification locked_latest_{};  // under mutex_: publish_locked() fallback
};

}  // namespace herald::detail
