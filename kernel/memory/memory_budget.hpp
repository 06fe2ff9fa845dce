#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <utility>

namespace herald::detail {

/// The control plane's allocator: every byte the kernel allocates after construction goes through
/// one MemoryBudget, which refuses an allocation that would take `used()` past `limit`.
///
/// Backed by mimalloc; sanitizer builds (HERALD_SYSTEM_ALLOCATOR) use the C allocator instead so
/// that ASan sees every block. Thread-safe. Never throws: failure is a nullptr.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) noexcept : limit_(limit) {}
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

  /// A snapshot: other threads may be allocating.
  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_; }

 private:
  // Relaxed: the counter only admits or refuses; it orders no other memory.
  std::atomic<std::size_t> used_{0};
  const std::size_t limit_;
};

}  // namespace herald::detail
