#include "memory/memory_budget.hpp"

#include <cstdlib>

#ifndef HERALD_SYSTEM_ALLOCATOR
#include <mimalloc.h>
#endif

namespace herald::detail {

namespace {

void* system_allocate(std::size_t bytes, std::size_t align) noexcept {
#ifdef HERALD_SYSTEM_ALLOCATOR
  const std::size_t rounded = (bytes + align - 1) / align * align;
  return std::aligned_alloc(align, rounded == 0 ? align : rounded);
#else
  return mi_malloc_aligned(bytes, align);
#endif
}

}  // namespace

void* MemoryBudget::allocate_shrinking(std::size_t bytes, std::size_t align) noexcept {
  used_.fetch_add(bytes, std::memory_order_relaxed);
  void* p = system_allocate(bytes, align);
  if (p == nullptr) used_.fetch_sub(bytes, std::memory_order_relaxed);
  return p;
}

void* MemoryBudget::allocate(std::size_t bytes, std::size_t align) noexcept {
  std::size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ || used > limit_ - bytes) return nullptr;
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  void* p = system_allocate(bytes, align);
  if (p == nullptr) used_.fetch_sub(bytes, std::memory_order_relaxed);
  return p;
}

void MemoryBudget::deallocate(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
#ifdef HERALD_SYSTEM_ALLOCATOR
  std::free(p);
#else
  mi_free(p);
#endif
  used_.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace herald::detail
