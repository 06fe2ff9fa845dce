#include "ring/subscription_ring.hpp"

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstring>
#include <new>

#include "race_point.hpp"

namespace herald::detail {
namespace {

// The side cell is held for a handful of stores; a contender that still finds it held after this
// many pauses (about a microsecond) gives up instead of waiting on a preempted thread.
constexpr unsigned kSideSpins = 64;

}  // namespace

SubscriptionRing::SubscriptionRing(std::uint32_t capacity, Overflow overflow,
                                   Producers producers) noexcept
    : capacity_(capacity),
      mask_(capacity - 1),
      shift_(static_cast<std::uint32_t>(std::countr_zero(capacity))),
      overflow_(overflow),
      producers_(producers) {
  // The ledger's lines (PROTOCOLS.md): notifiers write the producer line, the consumer its own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  constexpr std::size_t producer = offsetof(SubscriptionRing, tail_);
  static_assert(producer % kCacheLine == 0);
  static_assert(offsetof(SubscriptionRing, head_cache_) - producer < kCacheLine);
  static_assert(offsetof(SubscriptionRing, head_) - producer == kCacheLine, "consumer line");
  static_assert(offsetof(SubscriptionRing, side_lock_) - producer == 2 * kCacheLine, "side line");
  static_assert(offsetof(SubscriptionRing, closed_) - producer == 3 * kCacheLine, "cold line");
  static_assert(sizeof(SubscriptionRing) % kCacheLine == 0, "slots start on a line");
  static_assert(sizeof(SubscriptionRing) % alignof(Slot) == 0);
  static_assert(sizeof(SubscriptionRing) % alignof(SeqSlot) == 0);
#pragma GCC diagnostic pop
  // No slot straddles two lines: a push or pop touches one slot line.
  static_assert(sizeof(SeqSlot) == 16 && kCacheLine % sizeof(SeqSlot) == 0);
  static_assert(sizeof(Slot) == 32 && kCacheLine % sizeof(Slot) == 0);
}

std::size_t SubscriptionRing::slot_bytes(std::uint32_t capacity, Producers producers) noexcept {
  const std::size_t slot = producers == Producers::single ? sizeof(SeqSlot) : sizeof(Slot);
  return std::size_t{capacity} * slot;
}

void SubscriptionRing::init_slots() noexcept {
  // Published to notifiers by subscribe()'s list store.
  for (std::uint32_t i = 0; i < capacity_; ++i) {
    if (single()) {
      ::new (&seq_slots()[i]) SeqSlot{};  // seq 0: below every seq, so empty
    } else {
      ::new (&slots()[i]) Slot{};  // turn 0: free for lap 0
    }
  }
}

bool SubscriptionRing::keep_aside(Notification n) noexcept {
  for (unsigned i = 0; i < kSideSpins; ++i) {
    std::uint32_t expected = 0;
    // acquire/release: side_lock_ orders the side fields between holders.
    if (side_lock_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      if (side_full_.load(std::memory_order_relaxed) != 0) {
        dropped_.fetch_add(1, std::memory_order_relaxed);  // the one aside is displaced
      } else {
        kept_.fetch_add(1, std::memory_order_relaxed);
        // release: pairs with the acquire loads that route pushes and wake the consumer.
        side_full_.store(1, std::memory_order_release);
      }
      side_seq_ = n.seq;
      side_arg_ = n.arg;
      HERALD_RACE_POINT("ring.side_held");  // holding the side cell
      side_lock_.store(0, std::memory_order_release);
      return true;
    }
    cpu_relax();
  }
  // Another holder kept the cell for the whole spin (preempted): fold this one into the count
  // rather than wait on it.
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

SubscriptionRing::Aside SubscriptionRing::take_aside(std::uint64_t h, Notification& out) noexcept {
  if (side_full_.load(std::memory_order_acquire) == 0) return Aside::none;
  for (unsigned i = 0; i < kSideSpins; ++i) {
    std::uint32_t expected = 0;
    if (side_lock_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      // The kept item may go only when the ring is truly empty. A notifier's claim of a ring
      // position happens-before its later keep_aside() (program order, then this lock), so a
      // claim made before the item was kept shows here as tail_ != h: that older item goes first,
      // now if it is written, or at a later pop if its notifier is still writing it.
      if (tail_.load(std::memory_order_relaxed) != h) {
        const bool ready = ready_at(h);
        side_lock_.store(0, std::memory_order_release);
        return ready ? Aside::ring_first : Aside::none;
      }
      const bool got = side_full_.load(std::memory_order_relaxed) != 0;
      if (got) {
        out = Notification{side_seq_, side_arg_};
        side_full_.store(0, std::memory_order_relaxed);
        side_taken_.store(side_taken_.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
      }
      side_lock_.store(0, std::memory_order_release);
      return got ? Aside::taken : Aside::none;
    }
    cpu_relax();
  }
  return Aside::none;  // a producer is replacing it right now; the next pop takes it
}

bool SubscriptionRing::ready_at(std::uint64_t h) const noexcept {
  if (single()) {
    // (3s) acquire: pairs with (2s).
    return seq_slots()[h & mask_].seq.load(std::memory_order_acquire) > last_seq_;
  }
  return slots()[h & mask_].turn.load(std::memory_order_acquire) == free_turn(h) + 1;  // (3)
}

template <bool kSingle>
bool SubscriptionRing::take_at(std::uint64_t h, Notification& out) noexcept {
  if constexpr (kSingle) {
    const SeqSlot& slot = seq_slots()[h & mask_];
    // (3s) acquire: pairs with (2s); the item and everything written before notify().
    const std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
    if (seq <= last_seq_) return false;
    out = Notification{seq, slot.arg};
    last_seq_ = seq;
    return true;  // the slot is freed by the caller's store of head, (4s)
  } else {
    Slot& slot = slots()[h & mask_];
    // (3) acquire: pairs with (2); the item and everything written before notify() are visible.
    if (slot.turn.load(std::memory_order_acquire) != free_turn(h) + 1) return false;
    out = Notification{slot.seq, slot.arg};
    slot.turn.store(free_turn(h) + 2, std::memory_order_release);  // (4) frees it; pairs with (1)
    return true;
  }
}

template <bool kSingle>
bool SubscriptionRing::try_pop_as(Notification& out) noexcept {
  const std::uint64_t h = head_.load(std::memory_order_relaxed);  // only the consumer writes it
  for (;;) {
    if (take_at<kSingle>(h, out)) {
      // (4s) release: frees a single-producer slot; pairs with (1s). With many producers the
      // turn freed it, and head serves size() snapshots only.
      head_.store(h + 1, std::memory_order_release);
      return true;
    }
    if (overflow_ != Overflow::keep_latest) return false;
    const Aside aside = take_aside(h, out);
    if (aside != Aside::ring_first) return aside == Aside::taken;
  }
}

template <bool kSingle>
std::size_t SubscriptionRing::pop_batch_as(std::span<Notification> out) noexcept {
  std::size_t n = 0;
  std::uint64_t h = head_.load(std::memory_order_relaxed);
  while (n < out.size()) {
    if (take_at<kSingle>(h, out[n])) {
      ++n;
      ++h;
      continue;
    }
    if (overflow_ != Overflow::keep_latest) break;
    const Aside aside = take_aside(h, out[n]);
    if (aside == Aside::ring_first) continue;
    if (aside == Aside::taken) ++n;
    break;  // the kept item is the newest: nothing follows it
  }
  head_.store(h, std::memory_order_release);  // (4s) as in try_pop, once for the whole batch
  return n;
}

// One branch on the layout per call, none per item.
bool SubscriptionRing::try_pop(Notification& out) noexcept {
  return single() ? try_pop_as<true>(out) : try_pop_as<false>(out);
}

std::size_t SubscriptionRing::pop_batch(std::span<Notification> out) noexcept {
  return single() ? pop_batch_as<true>(out) : pop_batch_as<false>(out);
}

bool SubscriptionRing::has_pending() const noexcept {
  const std::uint64_t h = head_.load(std::memory_order_relaxed);
  if (ready_at(h)) return true;
  // The kept item counts only once no ring position is claimed ahead of it (see take_aside).
  return side_full_.load(std::memory_order_acquire) != 0 &&
         tail_.load(std::memory_order_relaxed) == h;
}

std::size_t SubscriptionRing::size() const noexcept {
  const std::uint64_t taken = head_.load(std::memory_order_relaxed);
  const std::uint64_t put = tail_.load(std::memory_order_relaxed);
  const std::size_t ring = put > taken ? static_cast<std::size_t>(put - taken) : 0;
  return ring + side_full_.load(std::memory_order_relaxed);
}

}  // namespace herald::detail
