#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "config.hpp"
#include "core/handle_core.hpp"
#include "herald/handle.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

/// A slot's control-plane lock: 4 bytes, so that every slot can have one. Held for a few loads
/// and stores (a list swap, an unpublish), never across a grace period; a contender spins
/// briefly, then sleeps on the word (a futex, called directly: libstdc++ 12's
/// std::atomic::wait was seen to miss a notify_one).
class SlotLock {
 public:
  void lock() noexcept {
    std::uint32_t free = kFree;
    // acquire: what the previous holder wrote under the lock is visible to us.
    if (word_.compare_exchange_strong(free, kHeld, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return;
    lock_slow();
  }
  void unlock() noexcept {
    // release: pairs with the next holder's acquire.
    if (word_.exchange(kFree, std::memory_order_release) == kContended) futex_wake_one(&word_);
  }

 private:
  static constexpr std::uint32_t kFree = 0, kHeld = 1, kContended = 2;
  void lock_slow() noexcept;
  std::atomic<std::uint32_t> word_{kFree};
};

/// The registry: `capacity` slots allocated once at construction, so lookups never allocate.
///
/// A slot holds the published core (or nullptr); the core carries its own generation, so a lookup
/// is one indexed load plus a compare and rejects any forged or stale value. A slot whose
/// generation would wrap to 0 is retired for good, so no handle ever names a later registration.
///
/// Every member may be called from any thread (PROTOCOLS.md §1); only lock_live() and take()
/// take a lock, their slot's:
/// - reserve() pops a freed slot from a Treiber stack whose head carries a 32-bit tag against ABA
///   (a pop would have to be overtaken by 2^32 pushes), or takes a never-used slot from `fresh_`.
///   There are kShards stacks, each on its own line: a thread pushes the slots it releases onto
///   its own and pops from it first, then takes a never-used slot, then takes from the others, so
///   threads that churn handles at once do not write one line and each reuses its own slots;
/// - each slot has a small lock that the control plane holds while it works on the slot's core:
///   lock_live() returns the core only while it is published, and take() unpublishes it under the
///   lock, so a caller holding the lock needs no read section to keep the core allocated (its
///   unregister frees it only after taking it), and exactly one unregister takes it;
/// - publish() is the slot's seq_cst store;
/// - release() and unreserve() push the slot back. Between reserve() and release() the slot's
///   generation belongs to its one owner.
class HandleTable {
 public:
  explicit HandleTable(std::uint32_t capacity);  // throws std::bad_alloc (construction only)

  /// Inside a ReadGuard. seq_cst load: see ReadGuard's happens-before argument.
  HandleCore* lookup(Handle h) const noexcept {
    bool single = false;
    return lookup_to_notify(h, single);
  }
  /// lookup(), also giving the handle's producer mode, from the slot, before it touches the core
  /// (notify() dispatches on it); it reads the generation where a notify reads next: a single
  /// producer's from the core's hot line (its one notifier writes that line; one line to miss on
  /// a handle out of cache), a multi-producer handle's from the cold line (the other notifiers
  /// write the hot one).
  HandleCore* lookup_to_notify(Handle h, bool& single) const noexcept {
    const std::uint32_t index = h.index();
    if (index >= slots_) return nullptr;
    const std::uintptr_t word = cores_[index].load(std::memory_order_seq_cst);
    HandleCore* core = core_of(word);
    if (core == nullptr) return nullptr;
    single = (word & kSingleTag) != 0;
    const std::uint32_t generation = single ? core->hot_generation() : core->generation();
    return generation == h.generation() ? core : nullptr;
  }
  /// The control plane's hold on a live handle: the slot's lock, and the core while it is
  /// published. Released by the destructor.
  class Locked {
   public:
    Locked(Locked&& other) noexcept
        : lock_(std::exchange(other.lock_, nullptr)), core_(other.core_) {}
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    Locked& operator=(Locked&&) = delete;
    ~Locked() {
      if (lock_ != nullptr) lock_->unlock();
    }
    HandleCore* core() const noexcept { return core_; }
    /// Releases the lock early; core() is nullptr from here.
    void unlock() noexcept {
      if (lock_ != nullptr) std::exchange(lock_, nullptr)->unlock();
      core_ = nullptr;
    }

   private:
    friend class HandleTable;
    Locked() = default;
    SlotLock* lock_ = nullptr;
    HandleCore* core_ = nullptr;
  };
  /// Locks `h`'s slot; core() is its core, or nullptr (and nothing is held) when `h` is not live.
  /// No read section needed: the core stays allocated while the lock is held.
  [[nodiscard]] Locked lock_live(Handle h) noexcept;
  /// Locks the `n`th slot ever reserved; core() is its published core, or nullptr (and nothing
  /// is held) when it has none. For scans of every live handle (stats, describe).
  [[nodiscard]] Locked lock_used_at(std::uint32_t n) const noexcept;
  /// Unpublishes the core `h` names and returns it, or nullptr when `h` is not live (another
  /// unregister took it first, or it never was). The caller owns the core from here: every later
  /// lock_live() and lookup() of `h` finds nothing.
  HandleCore* take(Handle h) noexcept;

  /// A free slot and the generation its next handle gets; false when every slot is taken.
  bool reserve(std::uint32_t& index, std::uint32_t& generation) noexcept;
  /// Gives back a reserved slot that was never published.
  void unreserve(std::uint32_t index) noexcept { push_free(index); }
  void publish(std::uint32_t index, HandleCore* core) noexcept {
    cores_[index].store(
        reinterpret_cast<std::uintptr_t>(core) | (core->single_producer() ? kSingleTag : 0),
        std::memory_order_seq_cst);
  }
  /// After take() and a grace period: the slot is reusable with the next generation.
  void release(std::uint32_t index) noexcept;

  /// The core in the `n`th slot ever reserved (nullptr if none), for the kernel's destructor,
  /// when no other caller is left.
  HandleCore* used_at(std::uint32_t n) const noexcept {
    return core_of(cores_[index_of(n)].load(std::memory_order_seq_cst));
  }
  /// How many slots were ever reserved: scans of used_at() stop here.
  std::uint32_t used_slots() const noexcept {
    // relaxed: a scan that misses a slot reserved meanwhile misses a handle registered meanwhile.
    const std::uint32_t fresh = fresh_.load(std::memory_order_relaxed);
    return fresh < capacity_ ? fresh : capacity_;
  }

  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint32_t retired_slots() const noexcept { return retired_.load(std::memory_order_relaxed); }
  /// Test hook: the generation the slot's next registration will get (its owner only).
  void set_next_generation(std::uint32_t index, std::uint32_t generation) noexcept {
    control(index).generation = generation;
  }

 private:
  static constexpr std::uint64_t kLinkMask = 0xFFFFFFFF;  // head: tag << 32 | (index + 1)
  /// What the control plane keeps per slot; notify() reads only the slot's core pointer, which
  /// lives in a dense array of its own.
  struct alignas(16) Control {
    std::uint32_t generation = 1;  // the next registration's (its owner's)
    // The free stack's link: index + 1 of the slot below, 0 at the bottom. Atomic because a pop
    // may read a link that a push of the same slot rewrites (its CAS then fails on the tag).
    std::atomic<std::uint32_t> next_free{0};
    SlotLock lock;
  };
  static constexpr std::uint32_t kCoresPerLine = kCacheLine / sizeof(std::atomic<HandleCore*>);
  /// The index of the `n`th never-used slot handed out: consecutive ones live on different cache
  /// lines (n at (n % k) * stride + n / k, k core pointers per line, stride = capacity / k
  /// rounded up). Threads that register at the same time take consecutive never-used slots, and
  /// would otherwise write one line from several cores on every publish and take, under the
  /// lookups of every notify. The index is the slot's place in the arrays, so a lookup is one
  /// indexed load; only reserve() and scans compute this.
  std::uint32_t index_of(std::uint32_t n) const noexcept {
    return static_cast<std::uint32_t>((n % kCoresPerLine) * stride_ + n / kCoresPerLine);
  }
  Control& control(std::uint32_t index) const noexcept { return controls_[index]; }
  static constexpr std::uint32_t kShards = 16;
  struct alignas(kCacheLine) FreeStack {
    std::atomic<std::uint64_t> head{0};
  };
  bool pop_free(FreeStack& stack, std::uint32_t& index) const noexcept;
  void push_free(std::uint32_t index) noexcept;

  const std::uint32_t capacity_;  // slots that reserve() hands out
  const std::uint32_t stride_;    // capacity_ / kCoresPerLine, rounded up
  const std::uint32_t slots_;     // kCoresPerLine * stride_: the arrays' length, indices below it
  /// A slot's published core, | kSingleTag for a Producers::single handle (cores are aligned
  /// to a cache line); 0: none.
  std::unique_ptr<std::atomic<std::uintptr_t>[]> cores_;
  static constexpr std::uintptr_t kSingleTag = 1;
  static HandleCore* core_of(std::uintptr_t word) noexcept {
    return reinterpret_cast<HandleCore*>(word & ~kSingleTag);  // NOLINT(performance-no-int-to-ptr)
  }
  std::unique_ptr<Control[]> controls_;
  FreeStack free_[kShards];
  alignas(kCacheLine) std::atomic<std::uint32_t> fresh_{0};  // never-used slots handed out
  std::atomic<std::uint32_t> retired_{0};
};

}  // namespace herald::detail
