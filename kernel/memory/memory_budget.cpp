#include "memory/memory_budget.hpp"

#include <atomic>
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

MemoryBudget::Shard& MemoryBudget::shard() noexcept { return shards_[thread_shard() % kShards]; }

bool MemoryBudget::reserve_shared(std::size_t bytes) noexcept {
  std::size_t reserved = reserved_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ || reserved > limit_ - bytes) return false;
  } while (!reserved_.compare_exchange_weak(reserved, reserved + bytes, std::memory_order_relaxed));
  return true;
}

bool MemoryBudget::reserve(std::size_t bytes) noexcept {
  if (chunk_ == 0) return reserve_shared(bytes);
  Shard& s = shard();
  std::size_t credit = s.credit.load(std::memory_order_relaxed);
  while (credit >= bytes) {
    if (s.credit.compare_exchange_weak(credit, credit - bytes, std::memory_order_relaxed))
      return true;
  }
  if (bytes <= kChunk && reserve_shared(bytes + chunk_)) {
    s.credit.fetch_add(chunk_, std::memory_order_relaxed);
    return true;
  }
  if (reserve_shared(bytes)) return true;
  // Credit held by the shards counts against the limit without being allocated: take it all
  // back and try once more, so that a refusal means the allocations themselves leave no room.
  for (Shard& other : shards_) {
    const std::size_t held = other.credit.exchange(0, std::memory_order_relaxed);
    if (held != 0) reserved_.fetch_sub(held, std::memory_order_relaxed);
  }
  return reserve_shared(bytes);
}

void MemoryBudget::unreserve(std::size_t bytes) noexcept {
  if (chunk_ == 0) {
    reserved_.fetch_sub(bytes, std::memory_order_relaxed);
    return;
  }
  Shard& s = shard();
  std::size_t credit = s.credit.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  // Keep one chunk for this thread's next allocations; give back the rest once it is two.
  while (credit > 2 * chunk_) {
    if (s.credit.compare_exchange_weak(credit, chunk_, std::memory_order_relaxed)) {
      reserved_.fetch_sub(credit - chunk_, std::memory_order_relaxed);
      return;
    }
  }
}

std::size_t MemoryBudget::used() const noexcept {
  std::size_t credit = 0;
  for (const Shard& s : shards_) credit += s.credit.load(std::memory_order_relaxed);
  const std::size_t reserved = reserved_.load(std::memory_order_relaxed);
  return reserved > credit ? reserved - credit : 0;
}

void* MemoryBudget::allocate_shrinking(std::size_t bytes, std::size_t align) noexcept {
  reserved_.fetch_add(bytes, std::memory_order_relaxed);  // never refused
  void* p = system_allocate(bytes, align);
  if (p == nullptr) unreserve(bytes);
  return p;
}

void* MemoryBudget::allocate(std::size_t bytes, std::size_t align) noexcept {
  if (!reserve(bytes)) return nullptr;
  void* p = system_allocate(bytes, align);
  if (p == nullptr) unreserve(bytes);
  return p;
}

void MemoryBudget::deallocate(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
#ifdef HERALD_SYSTEM_ALLOCATOR
  std::free(p);
#else
  mi_free(p);
#endif
  unreserve(bytes);
}

}  // namespace herald::detail
