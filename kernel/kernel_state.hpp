#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/handle_core.hpp"
#include "herald/options.hpp"
#include "memory/memory_budget.hpp"
#include "registry/handle_table.hpp"
#include "subscription/subscription_record.hpp"

namespace herald::detail {

/// What a Kernel owns. The control mutex serialises register/unregister/subscribe/unsubscribe and
/// guards the live list, the ring ownership flags and the retired totals' writers.
class KernelState {
 public:
  explicit KernelState(const KernelOptions& options)
      : options(options), budget(options.memory_limit), table(options.max_handles) {}
  ~KernelState();

  /// Detaches `record` from the handle (if still attached) and drops the consumer's reference.
  void unsubscribe(Handle h, SubscriptionRecord* record) noexcept;

  const KernelOptions options;
  MemoryBudget budget;
  HandleTable table;
  mutable std::mutex control;

  // Under `control`:
  HandleCore* live_head = nullptr;
  std::uint32_t live_count = 0;

  // Written under `control`, read by stats() (relaxed: counters, no ordering).
  std::atomic<std::uint64_t> retired_notifications{0};
  std::atomic<std::uint64_t> retired_delivered{0};
  std::atomic<std::uint64_t> retired_dropped{0};
  // Data plane: notifies on handles that are not live. Relaxed: a counter only.
  mutable std::atomic<std::uint64_t> rejected{0};

  /// Frees a record once neither the kernel nor a Subscription references it. Under `control`.
  void release_record(SubscriptionRecord* record) noexcept {
    if (!record->kernel_ref && !record->consumer_ref) SubscriptionRecord::destroy(budget, record);
  }
};

}  // namespace herald::detail
