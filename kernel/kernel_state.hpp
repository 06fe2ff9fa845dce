#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/handle_core.hpp"
#include "core/latest_lanes.hpp"
#include "herald/options.hpp"
#include "memory/memory_budget.hpp"
#include "reclaim/epoch.hpp"
#include "registry/handle_table.hpp"
#include "subscription/subscription_record.hpp"

namespace herald::detail {

/// What a Kernel owns. There is no kernel-wide lock (PROTOCOLS.md §1): each table slot's lock
/// orders its handle's subscriber-list changes against unregister, which owns the core it took
/// from the table; free slots and budget credit are sharded by thread.
class KernelState {
 public:
  explicit KernelState(const KernelOptions& options)
      : options(options), budget(options.memory_limit), table(options.max_handles) {
    init_epoch_domain();
  }
  ~KernelState();

  /// Unregister's last step: `core` is torn down and unpublished, but a notify, observe or wait
  /// that looked it up may still be reading it. It is destroyed after a later grace period, with
  /// the others retired to the caller's shard (PROTOCOLS.md §1).
  void retire_core(HandleCore* core) noexcept;
  /// Destroys every retired core after one grace period; false when there was none. Called before
  /// an allocation is refused for memory_limit. Never inside a read section or a slot's lock.
  bool reclaim_retired() noexcept;
  /// Bytes held by retired cores: allocated, but no longer the kernel's to use.
  std::size_t retired_bytes() const noexcept;
  /// How many cores a shard holds before the thread that fills it reclaims them. A grace period
  /// in asymmetric mode costs a membarrier (an IPI to every CPU running the process), so it is
  /// paid once per batch; all shards together hold at most kRetireShards * kRetireBatch cores.
  static constexpr std::size_t kRetireBatch = 2048;
  static constexpr std::size_t kRetireShards = 16;

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
  LatestLanes lanes;  // one per notifier thread (PROTOCOLS.md §2)

  /// Inside a ReadGuard: publishes what the calling thread's lane holds for another handle into
  /// that handle's cells (if it is still live). The notify that follows rewrites the lane.
  void flush_lane(LatestLane& lane) noexcept;

  // Totals of what is no longer live. Relaxed: counters, no ordering; each is added to only when
  // nonzero, so churn that notifies nothing never writes their line.
  alignas(kCacheLine) std::atomic<std::uint64_t> retired_notifications{0};
  std::atomic<std::uint64_t> retired_delivered{0};
  std::atomic<std::uint64_t> retired_dropped{0};
  // Data plane: notifies on handles that are not live. Relaxed: a counter only.
  alignas(kCacheLine) mutable std::atomic<std::uint64_t> rejected{0};

 private:
  /// Cores retired by the threads that map to it: a lock-free stack (pushes by those threads, the
  /// whole stack taken by one exchange), each shard on its own line.
  struct alignas(kCacheLine) RetireShard {
    std::atomic<HandleCore*> head{nullptr};
    std::atomic<std::size_t> count{0};  // pushed and not yet taken
    std::atomic<std::size_t> bytes{0};  // their footprints, for stats()
  };
  /// Destroys the cores of a stack taken from `shard` after one grace period; false when empty.
  bool reclaim_shard(RetireShard& shard) noexcept;
  /// Destroys a chain of retired cores (linked through retired_next()); returns how many, and
  /// adds their footprints to `bytes`.
  std::size_t destroy_chain(HandleCore* chain, std::size_t& bytes) noexcept;
  RetireShard retired_[kRetireShards];
};

}  // namespace herald::detail
