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
/// Memory ordering: a seqlock with one writer, in two levels, so that the common write (the same
/// handle as the last one) is three stores. `version` changes only when the lane changes handle
/// (retarget(): version odd ; release fence ; handle, tag ; version even, release); between two
/// retargets the handle is fixed and every publish() has a larger seq, so the tag (seq << 1, odd
/// while being written) is the inner seqlock's version: tag odd ; release fence ; arg ; tag even
/// (release). Reader: version (acquire), tag (acquire), handle, arg, acquire fence, tag, version
/// again. A read that saw any field of a later write sees, through the fences, that write's odd
/// tag or its version change on the second loads, and is discarded; a complete read happens-after
/// the write, and so after everything the notifier wrote before notify().
struct alignas(kCacheLine) LatestLane {
  std::atomic<std::uint32_t> version{0};
  std::atomic<std::uint64_t> handle{0};  // Handle::raw() of the notifications; 0: empty
  std::atomic<std::uint64_t> tag{0};     // seq << 1, | 1 while being written; 0: none yet
  std::atomic<std::int64_t> arg{0};

  /// Owner only: the lane holds `h`'s notifications from here, none yet (0: empty). The caller
  /// has flushed what it held for another handle.
  void retarget(std::uint64_t h) noexcept {
    const std::uint32_t v = version.load(std::memory_order_relaxed);
    version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    handle.store(h, std::memory_order_relaxed);
    tag.store(0, std::memory_order_relaxed);
    version.store(v + 2, std::memory_order_release);
  }
  /// Owner only: the lane keeps its handle and holds no notification (one that was flushed or
  /// gathered already is not flushed again).
  void clear() noexcept { retarget(handle.load(std::memory_order_relaxed)); }
  /// Owner only: notification {s, a} of the handle the lane holds (s above the last one).
  void publish(std::uint64_t s, std::int64_t a) noexcept {
    tag.store((s << 1) | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    arg.store(a, std::memory_order_relaxed);
    tag.store(s << 1, std::memory_order_release);
  }
  /// Owner only: what it wrote last (no other thread writes the lane).
  std::uint64_t owner_handle() const noexcept { return handle.load(std::memory_order_relaxed); }
  bool owner_empty() const noexcept { return tag.load(std::memory_order_relaxed) == 0; }
  Notification owner_latest() const noexcept {
    return Notification{tag.load(std::memory_order_relaxed) >> 1,
                        arg.load(std::memory_order_relaxed)};
  }
  /// Any thread: false while the owner is writing (or wrote during the read), or when the lane
  /// holds no notification.
  bool read(std::uint64_t& h, Notification& n) const noexcept {
    const std::uint32_t v = version.load(std::memory_order_acquire);
    if ((v & 1) != 0) return false;
    const std::uint64_t t = tag.load(std::memory_order_acquire);
    if (t == 0 || (t & 1) != 0) return false;
    h = handle.load(std::memory_order_relaxed);
    n.seq = t >> 1;
    n.arg = arg.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    return tag.load(std::memory_order_relaxed) == t && version.load(std::memory_order_relaxed) == v;
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
