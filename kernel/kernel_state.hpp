#pragma once

#include <atomic>
#include <cstdint>

#include "core/handle_core.hpp"
#include "herald/options.hpp"
#include "memory/memory_budget.hpp"
#include "registry/handle_table.hpp"
#include "subscription/subscription_record.hpp"

namespace herald::detail {

/// What a Kernel owns. There is no kernel-wide lock (PROTOCOLS.md §1): each table slot's lock
/// orders its handle's subscriber-list changes against unregister, which owns the core it took
/// from the table; free slots and budget credit are sharded by thread.
class KernelState {
 public:
  explicit KernelState(const KernelOptions& options)
      : options(options), budget(options.memory_limit), table(options.max_handles) {}
  ~KernelState();

  /// Detaches `record` from the handle (if still attached) and drops the consumer's reference.
  void unsubscribe(Handle h, SubscriptionRecord* record) noexcept;

  /// Drops one reference to `record`, destroying it with the last.
  void release_record(SubscriptionRecord* record) noexcept {
    if (record->release_ref()) SubscriptionRecord::destroy(budget, record);
  }
  /// Adds an unregistered handle's (or a late-detached ring's) counts to the kernel's totals.
  void retire(std::uint64_t notifications, std::uint64_t delivered, std::uint64_t dropped) noexcept;

  const KernelOptions options;
  MemoryBudget budget;
  HandleTable table;

  // Totals of what is no longer live. Relaxed: counters, no ordering; each is added to only when
  // nonzero, so churn that notifies nothing never writes their line.
  alignas(kCacheLine) std::atomic<std::uint64_t> retired_notifications{0};
  std::atomic<std::uint64_t> retired_delivered{0};
  std::atomic<std::uint64_t> retired_dropped{0};
  // Data plane: notifies on handles that are not live. Relaxed: a counter only.
  alignas(kCacheLine) mutable std::atomic<std::uint64_t> rejected{0};
};

}  // namespace herald::detail
