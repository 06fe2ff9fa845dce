#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "config.hpp"
#include "core/latest_cells.hpp"
#include "core/latest_lanes.hpp"
#include "herald/detail/wait_node.hpp"
#include "herald/error.hpp"
#include "herald/handle.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"
#include "memory/memory_budget.hpp"
#include "subscription/subscription_record.hpp"

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
/// Producers: notify() (data plane, inside an epoch read section, lock-free; the mutex only in the
/// latest-cells fallback). Consumers: blocking waiters (an eventcount in `wake_`) and coroutine
/// waiters (a lock-free list), neither with a lock, and subscriptions (their rings). Control plane:
/// the subscriber list (under its table slot's lock), close_waiters() and drain_waiters()
/// (unregister, once it owns the core).
///
/// Memory ordering: if notify() returns seq N, a waiter completed with N, and a subscription that
/// pops N, see every write the notifier made before that notify() (release/acquire through the
/// latest cells, the ring slot, the wake word, or the node's claim).
class HandleCore {
 public:
  static HandleCore* create(MemoryBudget& budget, std::uint32_t index, std::uint32_t generation,
                            const HandleOptions& options) noexcept;
  static void destroy(MemoryBudget& budget, HandleCore* core) noexcept;

  // ---- data plane ----

  /// Any thread (one at a time for Producers::single). Never blocks, never allocates, takes no
  /// lock (but in the latest-cells fallback). O(subscribers + parked coroutine waits).
  /// unknown_handle when unregister has closed the handle (order_notifiers()). `lane`: the
  /// calling thread's latest lane (multi-producer only; nullptr: the cells), where the latest is
  /// published while no waiter has watched the handle, under `self` (this handle, which the
  /// caller looked up); the caller has flushed what the lane held for another handle.
  Result<NotifyReceipt> notify(std::int64_t arg, LatestLane* lane, Handle self) noexcept;
  /// The highest seq assigned so far, into `out`; false once unregister has closed the handle
  /// (the word then also counts refused notifies).
  bool observed(std::uint64_t& out) const noexcept {
    // acquire: the notify() that assigned it happens-before the caller's later reads.
    const std::uint64_t s = seq_.load(std::memory_order_acquire);
    out = s & kSeqMask;
    return (s & kSeqClosed) == 0;
  }
  /// Every waiter's first step: returns once notify() publishes in the cells and checks for
  /// waiters, and the cells hold the latest of every notify that did not (PROTOCOLS.md §2,
  /// "Watching"). The first caller gathers the lanes; later ones only load the ready bit.
  void watch(const LatestLanes& lanes) noexcept {
    // acquire: pairs with the gatherer's release of kSeqReady (the cells it published).
    if ((seq_.load(std::memory_order_acquire) & kSeqReady) != 0) [[likely]]
      return;
    watch_slow(lanes);
  }
  /// Publishes a notification this handle's notifier left in its lane (a flush when the lane
  /// moves to another handle): the cells keep the newest.
  void publish_from_lane(Notification n) noexcept {
    if (!latest_.publish_multi(n.seq, n.arg)) publish_locked(n);
  }
  Handle handle() const noexcept { return Handle::make(index_, generation_); }
  bool single_producer() const noexcept { return producers_ == Producers::single; }
  /// Lock-free check for a published notification above `after`; after watch().
  bool latest_after(std::uint64_t after, Notification& out) const noexcept {
    return latest_.latest_after(after, out);
  }

  // ---- waiters ----

  enum class Enlisted : std::uint8_t { parked, ready, closed, limit };

  /// Coroutine waits, a lock-free list: links `node` unless a notification above its ticket is
  /// already published (then `ready`, with node.result filled), the handle is closed, or
  /// max_waiters are parked. `parked` may already be completed (through node.on_complete) when it
  /// returns, if its recheck found a notification or the close.
  Enlisted enlist(WaitNode& node) noexcept;
  /// Takes `node` back and unlinks it; false when a completer has claimed it (and completes it).
  bool withdraw(WaitNode& node) noexcept;

  /// Blocking waits, an eventcount (PROTOCOLS.md §3): counts the caller in unless a notification
  /// above `ticket` is already published (`ready`, in `out`), the handle is closed, or the limit
  /// is reached. When `parked`, `epoch` is the wake epoch to sleep on, and the caller's count
  /// keeps this HandleCore allocated until leave_blocking().
  Enlisted enter_blocking(std::uint64_t ticket, Notification& out, std::uint32_t& epoch) noexcept;
  /// Sleeps while the wake epoch is `epoch` (or until `deadline`); false when the deadline passed.
  bool sleep_blocking(std::uint32_t epoch, std::chrono::steady_clock::time_point deadline) noexcept;
  /// The waiters' word (acquire: a waiter that reads a bumped epoch sees what its bumper
  /// published).
  std::uint64_t wake_word() const noexcept { return wake_.load(std::memory_order_acquire); }
  /// The cells, and the mutex-guarded fallback if it was ever used: what a blocking waiter
  /// rechecks after its fence or after reading a new epoch.
  bool latest_after_anywhere(std::uint64_t after, Notification& out) const noexcept;
  /// Wakes every sleeping blocking waiter to recheck (a stop request uses it).
  void wake_blocking() noexcept;
  /// Counts the caller out; its last touch of this HandleCore.
  void leave_blocking() noexcept;

  /// The seq word's closed bit: set by unregister's order_notifiers().
  static constexpr std::uint64_t kSeqClosed = std::uint64_t{1} << 63;
  /// Set by the first waiter (watch()): from its RMW on, notify() publishes in the cells and
  /// checks for waiters after its fence.
  static constexpr std::uint64_t kSeqWatched = std::uint64_t{1} << 62;
  /// Set once the first waiter has gathered every earlier notify's latest into the cells.
  static constexpr std::uint64_t kSeqReady = std::uint64_t{1} << 61;
  static constexpr std::uint64_t kSeqMask = kSeqReady - 1;  // the seq itself

  // The waiters' word: the high half is the wake epoch blocking waiters sleep on (a futex); the
  // low half counts parked blocking and coroutine waits and carries the closed bit.
  static constexpr std::uint64_t kBlockingOne = 1;
  static constexpr std::uint64_t kBlockingMax = 0xFFFF;
  static constexpr std::uint64_t kCoroOne = std::uint64_t{1} << 16;
  static constexpr std::uint64_t kCoroMax = 0x7FFF;
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 31;
  static constexpr std::uint64_t kEpochOne = std::uint64_t{1} << 32;
  static constexpr std::uint64_t kWaiterMask = kBlockingMax | (kCoroMax << 16);
  static constexpr std::uint32_t blocking_count(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>(w & kBlockingMax);
  }
  static constexpr std::uint32_t coro_count(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>((w >> 16) & kCoroMax);
  }
  static constexpr std::uint32_t epoch_of(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>(w >> 32);
  }

  // ---- control plane ----

  /// Unregister, step 1: no new waiter can enlist; every parked coroutine wait completes with
  /// `closed` and every sleeping blocking waiter wakes to find the handle closed.
  void close_waiters() noexcept;
  /// Unregister, before freeing: returns once every waiter has counted itself out (blocking ones
  /// woken by close_waiters(); coroutine owners still withdrawing, whose read section may have
  /// begun after the grace period did). None of them blocks.
  void drain_waiters() noexcept;
  SubscriberList* subscribers() const noexcept { return subs_.load(std::memory_order_acquire); }
  /// The control plane's half of the per-handle grace period (PROTOCOLS.md §4), called after it
  /// published a new subscriber list or unpublished the core, and followed by
  /// wait_for_sections(): an RMW on the seq word, so that every notify whose fetch_add came
  /// before it has its read section visible to the scan, and every later one sees what the caller
  /// published (and, with `closing`, the closed bit, and refuses). Returns the highest seq
  /// assigned before it.
  std::uint64_t order_notifiers(bool closing) noexcept {
    return seq_.fetch_or(closing ? kSeqClosed : 0, std::memory_order_acq_rel) & kSeqMask;
  }
  /// Publishes a new list (seq_cst: a notify that starts after this returns sees it).
  void set_subscribers(SubscriberList* list) noexcept {
    subs_.store(list, std::memory_order_seq_cst);
  }
  /// Folds an unsubscribed ring's counts into the handle's totals.
  void retire_counts(std::uint64_t delivered, std::uint64_t dropped) noexcept {
    retired_delivered_.fetch_add(delivered, std::memory_order_relaxed);
    retired_dropped_.fetch_add(dropped, std::memory_order_relaxed);
  }

  /// Under the slot's lock (or by unregister, which owns the core): reads the subscriber list.
  HandleStats stats() const noexcept;
  /// The bytes create() took for this core.
  std::size_t footprint() const noexcept { return sizeof(HandleCore) + options_.debug_hint.size(); }
  /// Unregistered cores awaiting their grace period are chained through this (KernelState).
  HandleCore*& retired_next() noexcept { return retired_next_; }

  std::uint32_t index() const noexcept { return index_; }
  std::uint32_t generation() const noexcept { return generation_; }
  const HandleOptions& options() const noexcept { return options_; }  // debug_hint points inside
  std::uint32_t waiter_count() const noexcept {
    const std::uint64_t w = wake_.load(std::memory_order_relaxed);
    return blocking_count(w) + coro_count(w);
  }

 private:
  HandleCore(std::uint32_t index, std::uint32_t generation, const HandleOptions& options) noexcept;
  [[gnu::noinline]] void publish_locked(Notification n) noexcept;
  [[gnu::noinline]] void watch_slow(const LatestLanes& lanes) noexcept;
  [[gnu::noinline]] std::uint32_t wake_waiters(Notification n, std::uint64_t w) noexcept;
  /// Detaches the coroutine list, completes the nodes `n` satisfies (every node when `closing`),
  /// drops withdrawn ones, relinks the rest, and repeats while a relinked node may have missed a
  /// notification or the close. `withdrawing`: the caller's own withdrawn node, unlinked and
  /// reported through `found` if this call detached it. Returns how many it completed.
  std::uint32_t sweep(Notification n, bool closing, WaitNode* withdrawing = nullptr,
                      bool* found = nullptr) noexcept;
  void push_chain(WaitNode* first, WaitNode* last) noexcept;
  /// Counts waiters out of `wake_` (release), waking drain_waiters() when the last one leaves a
  /// closed handle.
  void count_out(std::uint64_t amount) noexcept;
  void bump_epoch() noexcept;
  const void* epoch_address() const noexcept;
  const void* counts_address() const noexcept;
  bool latest_after_locked(std::uint64_t after, Notification& out) const noexcept;

  // The hot line: everything notify() reads or writes, so a notify on a handle that is out of
  // cache misses here once (and once in the table); the constructor asserts it fits.
  alignas(kCacheLine) std::atomic<std::uint64_t> seq_{0};
  std::atomic<SubscriberList*> subs_{nullptr};  // written by the control plane only
  std::atomic<std::uint64_t> wake_{0};          // the waiters' word (above)
  const std::uint32_t generation_;
  const Producers producers_;
  LatestCells latest_;

  // Cold: immutable after creation, or used by the control plane and stats only.
  alignas(kCacheLine) const std::uint32_t index_;
  HandleOptions options_;
  std::atomic<std::uint64_t> retired_delivered_{0};
  std::atomic<std::uint64_t> retired_dropped_{0};
  HandleCore* retired_next_ = nullptr;  // KernelState's retired stacks (written before the push)
#ifndef NDEBUG
  std::atomic<std::uint32_t> single_notifier_{0};  // Producers::single misuse detector
#endif

  // The slow path.
  alignas(kCacheLine) std::atomic<WaitNode*> coro_head_{nullptr};  // coroutine waits (a stack)
  mutable std::mutex mutex_;
  Notification locked_latest_{};          // under mutex_: publish_locked() fallback
  std::atomic<bool> locked_used_{false};  // set once publish_locked() has run
};

}  // namespace herald::detail
