#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "config.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"
#include "race_point.hpp"

namespace herald::detail {

/// The bounded channel behind one Subscription: notifiers push, the subscription's one consumer
/// pops. A pure ring: it knows nothing of parking, coroutines or ownership (SubscriptionRecord
/// holds it with the consumer's parker; notify() goes core -> ring -> parker).
///
/// Producers: notify() on the handle, inside an epoch read section. The ring takes the handle's
/// Producers mode and has a slot layout for each:
///
/// - Producers::single (push_single): a slot is {seq, arg}. Because one notifier pushes in seq
///   order, the slot of the consumer's position holds its item exactly when its seq is above the
///   last seq the consumer popped; the consumer never writes a slot. The producer knows a slot is
///   free from the consumer's head, which it caches and reloads only when the cache says full.
///   So in the steady state the consumer writes only its head line and the producer only slots
///   and its own line: a push costs no read of a line the consumer writes.
/// - Producers::multi (push_multi): Vyukov per-slot turns with rigtorp's lap encoding (so that
///   capacity 1 works). The slot of position p, in lap L = p / capacity, is free for the producer
///   at p when turn == 2L and holds its item when turn == 2L + 1; the consumer frees it for the
///   next lap with 2L + 2. Producers claim positions with a CAS on the tail.
///
/// Overflow::keep_latest keeps one item aside when the ring is full. While an item is aside every
/// new one replaces it (counted as dropped), and the consumer takes it only once no ring position
/// is claimed ahead of it; together these keep each notifier's items in FIFO order.
///
/// Counting (API.md §2), exact at every quiescent point:
///   observed = tail + kept + dropped;  received = head + side_taken;
///   size = (tail - head) + side_full;  so received + size + dropped == observed.
///
/// Memory ordering: a push writes the item, then publishes it with a release store (the slot's
/// seq, or its turn); a pop loads that with acquire before reading the item, so it sees
/// everything the notifier wrote before notify(). A pop frees the slot with a release store (of
/// head, or of the turn) that the producer acquires before overwriting the slot, so the
/// consumer's read of the old item happens-before its overwrite.
///
/// Placement: constructed by its owner at the end of a block with slot_bytes(capacity) bytes
/// right after it; init_slots() fills them before the ring is published.
class SubscriptionRing {
 public:
  /// Producers::multi: a Vyukov slot, padded to 32 bytes so that none straddles two cache lines
  /// (24 bytes would put every third slot across a line boundary: two lines per push and pop).
  struct alignas(32) Slot {
    std::atomic<std::uint64_t> turn;
    std::uint64_t seq;
    std::int64_t arg;
  };
  /// Producers::single: the item itself; a seq above the consumer's last one marks it full.
  struct SeqSlot {
    std::atomic<std::uint64_t> seq;
    std::int64_t arg;
  };

  /// `capacity` must be a power of two.
  SubscriptionRing(std::uint32_t capacity, Overflow overflow, Producers producers) noexcept;
  SubscriptionRing(const SubscriptionRing&) = delete;
  SubscriptionRing& operator=(const SubscriptionRing&) = delete;
  /// The bytes of slots that follow the ring.
  static std::size_t slot_bytes(std::uint32_t capacity, Producers producers) noexcept;
  /// Constructs the slots (all empty). Before the ring is published to notifiers.
  void init_slots() noexcept;

  // ---- producer side (notify, inside a read section) ----

  /// Returns true if the item was buffered (or kept aside), false if it was dropped. Either way it
  /// is counted.
  bool push_single(Notification n) noexcept;
  bool push_multi(Notification n) noexcept;

  // ---- consumer side (the Subscription's owner) ----

  bool try_pop(Notification& out) noexcept;
  std::size_t pop_batch(std::span<Notification> out) noexcept;
  /// True when a pop would find something now. A position claimed by a notifier that is still
  /// writing it does not count: that notifier wakes a parked consumer after it publishes.
  bool has_pending() const noexcept;

  // ---- closing (control plane) ----

  /// After the handle is unregistered and no notifier can reach this ring any more (the owner then
  /// wakes a parked consumer).
  void close() noexcept { closed_.store(1, std::memory_order_release); }
  /// acquire: pairs with close(); once true, every push that will ever happen is visible.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire) != 0; }

  // ---- observers (snapshots while producers run) ----

  std::size_t size() const noexcept;
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Items buffered for the consumer over the ring's life (received, buffered now, or pending).
  std::uint64_t delivered() const noexcept {
    return tail_.load(std::memory_order_relaxed) + kept_.load(std::memory_order_relaxed);
  }
  std::uint32_t capacity() const noexcept { return capacity_; }
  Overflow overflow() const noexcept { return overflow_; }
  Producers producers() const noexcept { return producers_; }

 private:
  /// True when the ring position `h` (the consumer's head) holds its item.
  bool ready_at(std::uint64_t h) const noexcept;
  /// Copies out the item of ring position `h` if it is there (consumer only). A multi-producer
  /// slot is freed here; a single-producer slot when the caller then stores head past it.
  template <bool kSingle>
  bool take_at(std::uint64_t h, Notification& out) noexcept;
  template <bool kSingle>
  bool try_pop_as(Notification& out) noexcept;
  template <bool kSingle>
  std::size_t pop_batch_as(std::span<Notification> out) noexcept;
  enum class Aside : std::uint8_t { none, taken, ring_first };
  bool keep_aside(Notification n) noexcept;
  /// The consumer's take of the kept item, which waits behind every claimed ring position:
  /// ring_first when the ring head (position h) has filled meanwhile and must be popped first,
  /// none while a notifier is still writing an older item.
  Aside take_aside(std::uint64_t h, Notification& out) noexcept;
  Slot* slots() noexcept { return reinterpret_cast<Slot*>(this + 1); }
  const Slot* slots() const noexcept { return reinterpret_cast<const Slot*>(this + 1); }
  SeqSlot* seq_slots() noexcept { return reinterpret_cast<SeqSlot*>(this + 1); }
  const SeqSlot* seq_slots() const noexcept { return reinterpret_cast<const SeqSlot*>(this + 1); }
  bool single() const noexcept { return producers_ == Producers::single; }
  /// The turn value that marks position p's slot free for p's lap.
  std::uint64_t free_turn(std::uint64_t p) const noexcept { return (p >> shift_) << 1; }

  // Producer line: claimed by every push.
  alignas(kCacheLine) std::atomic<std::uint64_t> tail_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::uint64_t head_cache_ = 0;  // Producers::single: the producer's copy of head_

  // Consumer line.
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
  std::uint64_t last_seq_ = 0;  // Producers::single: the seq of the last ring item popped

  // The kept-aside item (keep_latest only): written under side_lock_.
  alignas(kCacheLine) std::atomic<std::uint32_t> side_lock_{0};
  std::atomic<std::uint32_t> side_full_{0};
  std::atomic<std::uint64_t> kept_{0};
  std::atomic<std::uint64_t> side_taken_{0};  // written by the consumer only
  std::uint64_t side_seq_ = 0;
  std::int64_t side_arg_ = 0;

  // Cold, immutable after construction (closed_ set once).
  alignas(kCacheLine) std::atomic<std::uint32_t> closed_{0};
  const std::uint32_t capacity_;
  const std::uint64_t mask_;
  const std::uint32_t shift_;  // log2(capacity)
  const Overflow overflow_;
  const Producers producers_;
};

// Inline: notify()'s delivery loop calls it for every subscription.
inline bool SubscriptionRing::push_single(Notification n) noexcept {
  // acquire: pairs with the release in keep_aside(); only routes, reads no side data.
  if (overflow_ == Overflow::keep_latest && side_full_.load(std::memory_order_acquire) != 0)
    return keep_aside(n);
  const std::uint64_t t = tail_.load(std::memory_order_relaxed);  // only this producer writes it
  if (t - head_cache_ >= capacity_) {
    // (1s) acquire: pairs with (4s) in the pops, so the consumer's reads of every slot below
    // head are done before we overwrite one.
    head_cache_ = head_.load(std::memory_order_acquire);
    if (t - head_cache_ >= capacity_) {
      if (overflow_ == Overflow::keep_latest) return keep_aside(n);
      // One producer: a plain increment is enough; readers take snapshots.
      dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return false;
    }
  }
  SeqSlot& slot = seq_slots()[t & mask_];
  slot.arg = n.arg;
  slot.seq.store(n.seq, std::memory_order_release);  // (2s) publishes; pairs with (3s)
  // relaxed: for size() snapshots, and for take_aside(), which reads it under the side lock
  // that a later keep_aside() of this producer releases.
  tail_.store(t + 1, std::memory_order_relaxed);
  return true;
}

inline bool SubscriptionRing::push_multi(Notification n) noexcept {
  // acquire: as in push_single, pairs with the release in keep_aside(). It only routes: once an
  // item is aside, every later push goes aside too (FIFO per notifier); the side fields
  // themselves are read and written under side_lock_.
  if (overflow_ == Overflow::keep_latest && side_full_.load(std::memory_order_acquire) != 0)
    return keep_aside(n);
  std::uint64_t t = tail_.load(std::memory_order_relaxed);
  for (;;) {
    Slot& slot = slots()[t & mask_];
    // (1) acquire: as in push_single.
    const std::uint64_t turn = slot.turn.load(std::memory_order_acquire);
    const auto lag = static_cast<std::int64_t>(turn - free_turn(t));
    if (lag == 0) {
      // relaxed: the CAS only makes the claim of position t unique; the item is published by (2)
      // and the slot was freed for us by (4), which (1) acquired.
      if (tail_.compare_exchange_weak(t, t + 1, std::memory_order_relaxed)) {
        HERALD_RACE_POINT(
            "ring.claimed");  // claimed, not yet written: the consumer must wait behind it
        slot.seq = n.seq;
        slot.arg = n.arg;
        slot.turn.store(free_turn(t) + 1, std::memory_order_release);  // (2)
        return true;
      }
    } else if (lag < 0) {
      // The slot still holds the previous lap's item: full.
      if (overflow_ == Overflow::keep_latest) return keep_aside(n);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    } else {
      t = tail_.load(std::memory_order_relaxed);  // another producer claimed t
    }
  }
}

}  // namespace herald::detail
