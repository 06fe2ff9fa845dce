#include "registry/handle_table.hpp"

#include <limits>
#include <new>

namespace herald::detail {

namespace {

/// Indices and free-stack links (index + 1) are 32 bits wide, and the arrays round the capacity
/// up to whole lines: a table beyond that could never be allocated anyway.
std::uint32_t checked_capacity(std::uint32_t capacity) {
  if (capacity > std::numeric_limits<std::uint32_t>::max() - kCacheLine) throw std::bad_alloc();
  return capacity;
}

}  // namespace

HandleTable::HandleTable(std::uint32_t capacity)
    : capacity_(checked_capacity(capacity)),
      stride_((capacity_ + kCoresPerLine - 1) / kCoresPerLine),
      slots_(kCoresPerLine * stride_),
      cores_(new std::atomic<std::uintptr_t>[slots_]),
      controls_(new Control[slots_]) {
  static_assert(sizeof(Control) == 16 && kCacheLine % sizeof(Control) == 0);
  for (std::uint32_t i = 0; i < slots_; ++i) cores_[i].store(0, std::memory_order_relaxed);
}

void SlotLock::lock_slow() noexcept {
  for (unsigned i = 0; i < 64; ++i) {
    cpu_relax();
    std::uint32_t free = kFree;
    if (word_.load(std::memory_order_relaxed) == kFree &&
        word_.compare_exchange_weak(free, kHeld, std::memory_order_acquire,
                                    std::memory_order_relaxed))
      return;
  }
  // acquire: as in lock(). Marked contended, so that unlock() wakes a sleeper.
  while (word_.exchange(kContended, std::memory_order_acquire) != kFree)
    futex_wait(word_, kContended, Clock::time_point::max());  // returns at once if it changed
}

HandleTable::Locked HandleTable::lock_live(Handle h) noexcept {
  Locked held;
  const std::uint32_t index = h.index();
  if (index >= slots_) return held;
  Control& c = control(index);
  c.lock.lock();
  // acquire: publish() stores the core without the lock (a release, being seq_cst), so its
  // construction is visible before we read its generation. Under the lock a published core is
  // alive: its unregister frees it only after unpublishing it here.
  HandleCore* core = core_of(cores_[index].load(std::memory_order_acquire));
  if (core == nullptr || core->generation() != h.generation()) {
    c.lock.unlock();
    return held;
  }
  held.lock_ = &c.lock;
  held.core_ = core;
  return held;
}

HandleTable::Locked HandleTable::lock_used_at(std::uint32_t n) const noexcept {
  Locked held;
  const std::uint32_t index = index_of(n);
  Control& c = control(index);
  c.lock.lock();
  // acquire: as in lock_live().
  HandleCore* core = core_of(cores_[index].load(std::memory_order_acquire));
  if (core == nullptr) {
    c.lock.unlock();
    return held;
  }
  held.lock_ = &c.lock;
  held.core_ = core;
  return held;
}

HandleCore* HandleTable::take(Handle h) noexcept {
  const Locked held = lock_live(h);
  HandleCore* core = held.core();
  // seq_cst: the unpublishing store of ReadGuard's argument (PROTOCOLS.md §1).
  if (core != nullptr) cores_[h.index()].store(0, std::memory_order_seq_cst);
  return core;
}

bool HandleTable::pop_free(FreeStack& stack, std::uint32_t& index) const noexcept {
  // acquire: pairs with push_free()'s release, so the slot's generation written by its previous
  // owner (release()) is visible to us, its next owner.
  std::uint64_t head = stack.head.load(std::memory_order_acquire);
  while ((head & kLinkMask) != 0) {
    const auto top = static_cast<std::uint32_t>(head & kLinkMask) - 1;
    // relaxed: a stale link (the slot was popped and pushed again meanwhile) fails the CAS,
    // whose tag has moved on.
    const std::uint32_t below = control(top).next_free.load(std::memory_order_relaxed);
    const std::uint64_t popped = (((head >> 32) + 1) << 32) | below;
    if (stack.head.compare_exchange_weak(head, popped, std::memory_order_acquire,
                                         std::memory_order_acquire)) {
      index = top;
      return true;
    }
  }
  return false;
}

bool HandleTable::reserve(std::uint32_t& index, std::uint32_t& generation) noexcept {
  const unsigned own = thread_shard() % kShards;
  bool found = pop_free(free_[own], index);
  if (!found) {
    // No slot of ours: one never used. relaxed: the slot's initial state was written before any
    // thread could call us (construction).
    std::uint32_t fresh = fresh_.load(std::memory_order_relaxed);
    while (!found && fresh < capacity_) {
      if (fresh_.compare_exchange_weak(fresh, fresh + 1, std::memory_order_relaxed)) {
        index = index_of(fresh);
        found = true;
      }
    }
  }
  // Then one another thread released.
  for (unsigned k = 1; !found && k < kShards; ++k)
    found = pop_free(free_[(own + k) % kShards], index);
  if (found) generation = control(index).generation;
  return found;
}

void HandleTable::push_free(std::uint32_t index) noexcept {
  FreeStack& stack = free_[thread_shard() % kShards];
  std::uint64_t head = stack.head.load(std::memory_order_relaxed);
  for (;;) {
    control(index).next_free.store(static_cast<std::uint32_t>(head & kLinkMask),
                                   std::memory_order_relaxed);
    const std::uint64_t pushed = (((head >> 32) + 1) << 32) | (std::uint64_t{index} + 1);
    // release: the next owner's reserve() (acquire) sees our generation and link.
    if (stack.head.compare_exchange_weak(head, pushed, std::memory_order_release,
                                         std::memory_order_relaxed))
      return;
  }
}

void HandleTable::release(std::uint32_t index) noexcept {
  if (++control(index).generation == 0) {
    // The generation space of this slot is spent. relaxed: a counter for stats.
    retired_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  push_free(index);
}

}  // namespace herald::detail
