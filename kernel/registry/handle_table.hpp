#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/handle_core.hpp"
#include "herald/handle.hpp"

namespace herald::detail {

/// The registry: `capacity` slots allocated once at construction, so lookups never allocate.
///
/// A slot holds the published core (or nullptr); the core carries its own generation, so a lookup
/// is one indexed load plus a compare and rejects any forged or stale value. Reserve/publish/
/// unpublish/release are control plane, called under the kernel's control mutex. A slot whose
/// generation would wrap to 0 is retired for good, so no handle ever names a later registration.
class HandleTable {
 public:
  explicit HandleTable(std::uint32_t capacity);  // throws std::bad_alloc (construction only)

  /// Inside a ReadGuard. seq_cst load: see ReadGuard's happens-before argument.
  HandleCore* lookup(Handle h) const noexcept {
    const std::uint32_t index = h.index();
    if (index >= capacity_) return nullptr;
    HandleCore* core = slots_[index].load(std::memory_order_seq_cst);
    if (core == nullptr || core->generation() != h.generation()) return nullptr;
    return core;
  }

  /// A free slot and the generation its next handle gets; false when every slot is taken.
  bool reserve(std::uint32_t& index, std::uint32_t& generation) noexcept;
  /// Gives back a reserved slot that was never published.
  void unreserve(std::uint32_t index) noexcept { free_[free_count_++] = index; }
  void publish(std::uint32_t index, HandleCore* core) noexcept {
    slots_[index].store(core, std::memory_order_seq_cst);
  }
  void unpublish(std::uint32_t index) noexcept {
    slots_[index].store(nullptr, std::memory_order_seq_cst);
  }
  /// After unpublish and a grace period: the slot is reusable with the next generation.
  void release(std::uint32_t index) noexcept;

  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint32_t retired_slots() const noexcept { return retired_; }
  /// Test hook: the generation the slot's next registration will get.
  void set_next_generation(std::uint32_t index, std::uint32_t generation) noexcept {
    generations_[index] = generation;
  }

 private:
  const std::uint32_t capacity_;
  std::unique_ptr<std::atomic<HandleCore*>[]> slots_;
  std::unique_ptr<std::uint32_t[]> generations_;  // next generation per slot
  std::unique_ptr<std::uint32_t[]> free_;         // stack of free slot indices
  std::uint32_t free_count_ = 0;
  std::uint32_t retired_ = 0;
};

}  // namespace herald::detail
