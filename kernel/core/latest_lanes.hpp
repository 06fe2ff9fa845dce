#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config.hpp"
#include "herald/records.hpp"
#include "reclaim/epoch.hpp"

namespace herald::detail {

/// One notifier thread's latest notification on a multi-producer handle that no waiter has
/// watched yet (PROTOCOLS.md §2, "Latest lanes"): written with plain stores by its owner only, so
/// that such a notify publishes its latest without a second RMW on the handle's hot line.
///
/// Memory ordering: seqlock with one writer. Writer: version odd (relaxed) ; release fence ;
/// fields (relaxed) ; version even (release). Reader: version (acquire) ; fields (relaxed) ;
/// acquire fence ; version again (relaxed). A read that saw a newer write's field sees its odd
/// version on the second load (the fences synchronize) and is discarded; a complete read
/// happens-after the write, and so after everything the notifier wrote before notify().
struct alignas(kCacheLine) LatestLane {
  std::atomic<std::uint32_t> version{0};
  std::atomic<std::uint64_t> handle{0};  // Handle::raw() of the notification; 0: empty
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::int64_t> arg{0};

  /// Owner only.
  void write(std::uint64_t h, std::uint64_t s, std::int64_t a) noexcept {
    const std::uint32_t v = version.load(std::memory_order_relaxed);
    version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    // Usually the same handle as last time: one store fewer for the next locked instruction to
    // drain.
    if (handle.load(std::memory_order_relaxed) != h) handle.store(h, std::memory_order_relaxed);
    seq.store(s, std::memory_order_relaxed);
    arg.store(a, std::memory_order_relaxed);
    version.store(v + 2, std::memory_order_release);
  }
  /// Owner only: what it wrote last (no other thread writes the lane).
  std::uint64_t owner_handle() const noexcept { return handle.load(std::memory_order_relaxed); }
  Notification owner_latest() const noexcept {
    return Notification{seq.load(std::memory_order_relaxed), arg.load(std::memory_order_relaxed)};
  }
  /// Any thread: false while the owner is writing (or wrote during the read).
  bool read(std::uint64_t& h, Notification& n) const noexcept {
    const std::uint32_t v = version.load(std::memory_order_acquire);
    if ((v & 1) != 0) return false;
    h = handle.load(std::memory_order_relaxed);
    n.seq = seq.load(std::memory_order_relaxed);
    n.arg = arg.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    return version.load(std::memory_order_relaxed) == v;
  }
};

/// A kernel's lanes, one per epoch record among the first kFirstRecords: a thread's lane is the
/// one its record's index names. Threads beyond them publish in the shared cells.
class LatestLanes {
 public:
  LatestLanes() : lanes_(new LatestLane[kFirstRecords]) {}  // throws (construction only)

  /// The lane of the thread that owns `record` (the calling thread's, from its ReadGuard); nullptr
  /// when its record is not among the first.
  LatestLane* of(const EpochRecord& record) noexcept {
    const std::uint32_t i = record.index;
    return i < kFirstRecords ? &lanes_[i] : nullptr;
  }
  /// Every lane a thread may have written.
  std::uint32_t used() const noexcept { return first_records_used(); }
  const LatestLane& at(std::uint32_t i) const noexcept { return lanes_[i]; }

 private:
  std::unique_ptr<LatestLane[]> lanes_;
};

}  // namespace herald::detail
