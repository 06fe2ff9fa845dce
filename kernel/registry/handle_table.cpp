#include "registry/handle_table.hpp"

namespace herald::detail {

HandleTable::HandleTable(std::uint32_t capacity)
    : capacity_(capacity),
      slots_(new std::atomic<HandleCore*>[capacity]),
      generations_(new std::uint32_t[capacity]),
      free_(new std::uint32_t[capacity]) {
  for (std::uint32_t i = 0; i < capacity; ++i) {
    slots_[i].store(nullptr, std::memory_order_relaxed);
    generations_[i] = 1;
    free_[i] = capacity - 1 - i;  // low indices first
  }
  free_count_ = capacity;
}

bool HandleTable::reserve(std::uint32_t& index, std::uint32_t& generation) noexcept {
  if (free_count_ == 0) return false;
  index = free_[--free_count_];
  generation = generations_[index];
  return true;
}

void HandleTable::release(std::uint32_t index) noexcept {
  if (++generations_[index] == 0) {
    ++retired_;  // the generation space of this slot is spent
    return;
  }
  free_[free_count_++] = index;
}

}  // namespace herald::detail
