#pragma once

#include <atomic>
#include <cassert>
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
#include "race_point.hpp"
#include "reclaim/epoch.hpp"
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
  /// unknown_handle when unregister has closed the handle (order_notifiers()), counted in
  /// `rejected` (the kernel's count). `lane`: the calling thread's latest lane (multi-producer
  /// only; nullptr: the cells), where the latest is published while no waiter has watched the
  /// handle; the caller has pointed it at this handle (LatestLane::retarget()) after flushing
  /// what it held for another. Called inside `section`, and leaves it before returning.
  /// Constructs the receipt (or unknown_handle) in `out` (placement new). `kSingle`: the
  /// handle's producer mode (single_producer()).
  template <bool kSingle>
  [[gnu::always_inline]] void notify(std::int64_t arg, LatestLane* lane,
                                     std::atomic<std::uint64_t>& rejected, ReadSection section,
                                     Result<NotifyReceipt>* out) noexcept;
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
  bool single_producer() const noexcept { return options_.producers == Producers::single; }
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
  /// Set while the subscriber list is not empty (set_subscribers()): a notify whose fetch_add
  /// returns it clear has no list to load, and reads nothing else on this line.
  static constexpr std::uint64_t kSeqListed = std::uint64_t{1} << 60;
  static constexpr std::uint64_t kSeqMask = kSeqListed - 1;  // the seq itself

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
  /// Publishes a new list (seq_cst: a notify that starts after this returns sees it), and says in
  /// the seq word whether there is one. The flag's RMW follows the store: a notify whose fetch_add
  /// reads the flag set (acquire, in the RMW's release sequence) loads this list or a later one; a
  /// notify whose fetch_add reads it clear came before it and loads none. Under the slot's lock
  /// (one caller at a time).
  void set_subscribers(SubscriberList* list) noexcept {
    // relaxed: only this caller writes the list (the lock).
    const bool had = subs_.load(std::memory_order_relaxed) != nullptr;
    subs_.store(list, std::memory_order_seq_cst);
    if (had == (list != nullptr)) return;  // a list replaced: the caller orders the notifiers
    if (list != nullptr) {
      seq_.fetch_or(kSeqListed, std::memory_order_acq_rel);
    } else {
      seq_.fetch_and(~kSeqListed, std::memory_order_acq_rel);
    }
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
  /// The same, from the hot line (HandleTable::lookup_to_notify()).
  std::uint32_t hot_generation() const noexcept { return hot_generation_; }
  const HandleOptions& options() const noexcept { return options_; }  // debug_hint points inside
  std::uint32_t waiter_count() const noexcept {
    const std::uint64_t w = wake_.load(std::memory_order_relaxed);
    return blocking_count(w) + coro_count(w);
  }

 private:
  HandleCore(std::uint32_t index, std::uint32_t generation, const HandleOptions& options) noexcept;
  [[gnu::noinline]] void publish_locked(Notification n) noexcept;
  /// The rest of a notify that has subscriptions to push to, waiters to check for, or (multi
  /// producer) publishes in the cells; each ends the read section and constructs the receipt in
  /// `out`. `old`: the seq word before the notify's fetch_add. Out of line, and tail-called with
  /// every argument in a register, so that notify()'s common path saves few.
  /// publish_and_deliver(): publishes in the cells (a multi-producer notify on a watched handle,
  /// or from a thread without a lane), then as deliver(): pushes to the subscriptions, fences,
  /// wakes.
  [[gnu::noinline]] void publish_and_deliver(std::uint64_t old, std::int64_t arg, LatestLane* lane,
                                             ReadSection section,
                                             Result<NotifyReceipt>* out) noexcept;
  template <bool kSingle>  // the handle's producer mode
  [[gnu::noinline]] void deliver(std::uint64_t old, std::int64_t arg, ReadSection section,
                                 Result<NotifyReceipt>* out) noexcept;
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

  // The hot line: everything notify() writes, and what it reads after its fetch_add; the
  // constructor asserts it fits.
  alignas(kCacheLine) std::atomic<std::uint64_t> seq_{0};
  std::atomic<SubscriberList*> subs_{nullptr};  // written by the control plane only
  std::atomic<std::uint64_t> wake_{0};          // the waiters' word (above)
  LatestCells latest_;
  const std::uint32_t hot_generation_;  // generation_, read here for a single producer

  // Cold: immutable after creation, or used by the control plane and stats only. The generation a
  // multi-producer notify checks before its fetch_add is here: no notifier writes this line, so
  // on a shared handle it stays in every notifier's cache, and the fetch_add is the notify's first
  // access to the line the other notifiers write (a read there first would fetch it shared, and
  // the fetch_add take it again).
  alignas(kCacheLine) const std::uint32_t generation_;
  const std::uint32_t index_;
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

// Inline, and written as one path with early returns: notify_into()'s common path makes no
// call, and keeps every value in a caller-saved register.
template <bool kSingle>
inline void HandleCore::notify(std::int64_t arg, LatestLane* lane,
                               std::atomic<std::uint64_t>& rejected, ReadSection section,
                               Result<NotifyReceipt>* out) noexcept {
  assert(kSingle == single_producer());
#ifndef NDEBUG
  assert((!kSingle || single_notifier_.exchange(1, std::memory_order_acquire) == 0) &&
         "two threads notified a Producers::single handle at once");
#endif
  // One RMW in both modes (uncontended with one producer). release: observe() (acquire) then
  // sees every write made before this notify(), which the observe -> check -> wait pattern relies
  // on, and the control plane's order_notifiers() sees this read section's announcement.
  // acquire: pairs with order_notifiers(), so a list it published is the one loaded below.
  // (The same instruction as relaxed on x86.)
  const std::uint64_t old = seq_.fetch_add(1, std::memory_order_acq_rel);
  if ((old & kSeqClosed) != 0) [[unlikely]] {
#ifndef NDEBUG
    if (kSingle) single_notifier_.store(0, std::memory_order_release);
#endif
    rejected.fetch_add(1, std::memory_order_relaxed);  // a count only: relaxed
    section.leave();
    ::new (static_cast<void*>(out)) Result<NotifyReceipt>(Errc::unknown_handle);
    return;  // unregister closed it first: refused, nothing published
  }
  const std::uint64_t seq = (old & kSeqMask) + 1;
  // Watched: a waiter may be parked or about to park, and finds the latest in the cells; this
  // notify must then check for waiters after its fence. Not watched: the first waiter gathers
  // what this notify publishes below, wherever it is (watch_slow()).
  const bool watched = (old & kSeqWatched) != 0;
  HERALD_RACE_POINT("notify.took_seq");  // seq taken, latest not yet published
  if constexpr (kSingle) {
    latest_.publish_single(seq, arg);  // the only writer of the cells
  } else if (lane != nullptr && !watched) [[likely]] {
    lane->publish(seq, arg);  // plain stores on this thread's own line
  } else {
    return publish_and_deliver(old, arg, lane, section, out);
  }
  HERALD_RACE_POINT("notify.published");  // latest published, subscriptions not yet pushed
  // Nobody to push to or wake unless the word says a list exists (set_subscribers()) or a waiter
  // has watched the handle (a waiter counts itself in only after watch()).
  if ((old & (kSeqListed | kSeqWatched)) == 0) [[likely]] {
#ifndef NDEBUG
    if (kSingle) single_notifier_.store(0, std::memory_order_release);
#endif
    section.leave();
    ::new (static_cast<void*>(out)) Result<NotifyReceipt>(std::in_place, seq, 0U, 0U, 0U);
    return;
  }
  return deliver<kSingle>(old, arg, section, out);
}

template <bool kSingle>
void HandleCore::deliver(std::uint64_t old, std::int64_t arg, ReadSection section,
                         Result<NotifyReceipt>* out) noexcept {
  const Notification n{(old & kSeqMask) + 1, arg};
  const bool watched = (old & kSeqWatched) != 0;
  // seq_cst: a notify that starts after subscribe() returned sees its ring (the flag, above, says
  // the same through the fetch_add); the list stays allocated until this read section ends
  // (order_notifiers(), PROTOCOLS.md §4). Listed but nullptr: the list was emptied since.
  SubscriberList* subs = (old & kSeqListed) != 0 ? subs_.load(std::memory_order_seq_cst) : nullptr;
  // The counts stay in registers and the receipt is written once, at the end: a caller reading a
  // receipt assembled from narrower stores would stall until the store buffer drained, and with
  // it the stores to ring slots that the consumer's core holds.
  std::uint32_t delivered = 0;
  std::uint32_t dropped = 0;
  if (subs != nullptr) {
    SubscriptionRecord* const* record = subs->records;
    SubscriptionRecord* const* end = record + subs->count;
    for (; record != end; ++record) {
      SubscriptionRing& ring = (*record)->ring;
      const bool stored = kSingle ? ring.push_single(n) : ring.push_multi(n);
      delivered += stored ? 1 : 0;
      dropped += stored ? 0 : 1;
    }
  }

  HERALD_RACE_POINT("notify.pushed");  // pushed, parked waiters/consumers not yet checked
  // seq_cst fence: the Dekker pair of enlist()'s fence and of ConsumerParker::park_*(): either
  // they see what we published above, or we see them parked below.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::uint32_t woken = 0;
  if (watched) {
    // relaxed: the fence above orders it (the Dekker pair); it is on the line notify already
    // holds.
    const std::uint64_t w = wake_.load(std::memory_order_relaxed);
    if ((w & kWaiterMask) != 0) [[unlikely]]
      woken = wake_waiters(n, w);
  }
  if (subs != nullptr) {
    for (std::uint32_t i = 0; i < subs->count; ++i) subs->records[i]->parker.wake_if_parked();
  }
#ifndef NDEBUG
  if (kSingle) single_notifier_.store(0, std::memory_order_release);
#endif
  section.leave();
  ::new (static_cast<void*>(out))
      Result<NotifyReceipt>(std::in_place, n.seq, delivered, dropped, woken);
}

}  // namespace herald::detail
