#include "subscription/subscription_record.hpp"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>

#include <unistd.h>  // for close

namespace herald::detail {
namespace {

// Cache colouring. A large ring's block comes from an allocator bin whose blocks are a multiple
// of 4 KiB apart, so the same field of every ring (a header line, the slot of one position) maps to
// the same L1 set: sixteen subscriptions on one handle thrashed an 8-way L1 on every notify (198 ns
// instead of 4 x 20 ns for one thread notifying and draining). Records of at least kColourFrom
// bytes therefore start kCacheLine * (n % kColours) into a block padded for it, n counting the
// creating thread's creations.
constexpr std::size_t kColours = 16;
constexpr std::size_t kColourFrom = 4096;
thread_local std::uint32_t t_next_colour = 0;

std::size_t colour_padding(std::size_t bytes) noexcept {
  return bytes >= kColourFrom ? (kColours - 1) * kCacheLine : 0;
}

}  // namespace

std::size_t SubscriptionRecord::footprint(std::uint32_t capacity, Producers producers) noexcept {
  return sizeof(SubscriptionRecord) + SubscriptionRing::slot_bytes(capacity, producers);
}

SubscriptionRecord* SubscriptionRecord::create(MemoryBudget& budget, std::uint32_t capacity,
                                               Overflow overflow, Producers producers,
                                               std::string_view hint) noexcept {
  // The ring is the last member and fills the record's tail, so its slots (at ring + 1) start
  // exactly at the end of the record.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"  // g++ and clang++ give the real offsets
  static_assert(offsetof(SubscriptionRecord, ring) + sizeof(SubscriptionRing) ==
                sizeof(SubscriptionRecord));
  static_assert(offsetof(SubscriptionRecord, parker) == kCacheLine, "one header line, then parker");
  static_assert(offsetof(SubscriptionRecord, ring) == 2 * kCacheLine);
#pragma GCC diagnostic pop
  const std::size_t bytes = footprint(capacity, producers);
  const std::size_t padding = colour_padding(bytes);
  void* block = budget.allocate(padding + bytes + hint.size(), kCacheLine);
  if (block == nullptr) return nullptr;
  std::size_t offset = 0;
  if (padding != 0) {
    // Per thread: any spread of colours will do, and a shared counter would be one more line
    // that every subscribe writes.
    offset = t_next_colour++ % kColours * kCacheLine;
  }
  auto* record =
      ::new (static_cast<char*>(block) + offset) SubscriptionRecord(capacity, overflow, producers);
  record->colour_offset_ = static_cast<std::uint32_t>(offset);
  record->ring.init_slots();
  if (!hint.empty()) {
    record->hint_ = reinterpret_cast<char*>(record) + bytes;
    std::memcpy(record->hint_, hint.data(), hint.size());
    record->hint_len_ = hint.size();
  }
  return record;
}

void SubscriptionRecord::destroy(MemoryBudget& budget, SubscriptionRecord* record) noexcept {
  if (record == nullptr) return;
  const std::size_t bytes = footprint(record->ring.capacity(), record->ring.producers());
  const std::size_t total = colour_padding(bytes) + bytes + record->hint_len_;
  // No producer reaches the record any more, so none can write the fd after this close.
  if (record->parker.fd() >= 0) ::close(record->parker.fd());
  char* block = reinterpret_cast<char*>(record) - record->colour_offset_;
  record->~SubscriptionRecord();
  budget.deallocate(block, total);
}

}  // namespace herald::detail
