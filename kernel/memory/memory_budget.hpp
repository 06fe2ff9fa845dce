#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <utility>

#include "config.hpp"

namespace herald::detail {

/// The control plane's allocator: every byte the kernel allocates after construction goes through
/// one MemoryBudget, which refuses an allocation that would take `used()` past `limit`.
///
/// Backed by mimalloc; sanitizer builds (HERALD_SYSTEM_ALLOCATOR) use the C allocator instead so
/// that ASan sees every block. Thread-safe. Never throws: failure is a nullptr.
///
/// So that threads registering and unregistering at once do not all write one counter, each
/// thread takes credit from the shared count in chunks into one of kShards shards (its own cache
/// line) and allocates and frees against it; a shard gives back what it holds beyond two chunks.
/// A refusal is still exact: before refusing, every shard's credit goes back to the shared count
/// and the request is tried once more, so it is refused only when the bytes actually allocated
/// leave no room (or another thread takes credit in that instant). used() subtracts the shards'
/// credit: exact whenever no allocation is in progress. Budgets too small for chunks to matter
/// (limit below 64 chunks) use the shared count alone.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) noexcept
      : limit_(limit), chunk_(limit / 64 >= kChunk ? kChunk : 0) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  /// `bytes` aligned to `align` (a power of two, at most 4096), or nullptr when over budget or
  /// out of memory.
  void* allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t)) noexcept;
  /// For a block that replaces a larger one freed right after (a shrinking copy): not refused by
  /// the limit, so releasing something never fails for lack of budget. used() may pass the limit
  /// by this block until the larger one is freed. nullptr only if the system allocator fails.
  void* allocate_shrinking(std::size_t bytes,
                           std::size_t align = alignof(std::max_align_t)) noexcept;
  void deallocate(void* p, std::size_t bytes) noexcept;

  /// Constructs a T in budgeted memory; nullptr when refused.
  template <class T, class... Args>
  T* create(Args&&... args) noexcept {
    void* p = allocate(sizeof(T), alignof(T));
    return p ? ::new (p) T(std::forward<Args>(args)...) : nullptr;
  }
  template <class T>
  void destroy(T* p) noexcept {
    if (p == nullptr) return;
    p->~T();
    deallocate(p, sizeof(T));
  }

  /// The bytes allocated: a snapshot while other threads allocate, exact when none does.
  std::size_t used() const noexcept;
  std::size_t limit() const noexcept { return limit_; }

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kChunk = std::size_t{16} << 10;
  struct alignas(kCacheLine) Shard {
    std::atomic<std::size_t> credit{0};  // reserved in `reserved_`, not yet allocated
  };
  /// Counts `bytes` against the limit: from the caller's shard, else from the shared count.
  bool reserve(std::size_t bytes) noexcept;
  /// Uncounts `bytes` (a free, or a failed allocation).
  void unreserve(std::size_t bytes) noexcept;
  /// Adds `bytes` to the shared count unless that passes the limit.
  bool reserve_shared(std::size_t bytes) noexcept;
  Shard& shard() noexcept;

  // Relaxed throughout: the counts only admit or refuse; they order no other memory.
  alignas(kCacheLine) std::atomic<std::size_t> reserved_{0};  // allocated + every shard's credit
  const std::size_t limit_;
  const std::size_t chunk_;  // 0: no shards
  Shard shards_[kShards];
};

}  // namespace herald::detail
