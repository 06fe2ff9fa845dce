#pragma once

#include <atomic>
#include <cstdint>

#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald::detail {

/// The most recent notifications of one handle, so that a wait whose ticket is already behind
/// completes at once, without a lock, with the latest one published.
///
/// A 16-byte {seq, arg} pair written by many notifiers needs either a double-width CAS or a lock;
/// this keeps kCells seqlock cells instead. A cell's tag is seq << 1 | busy. A notifier claims a
/// cell holding an older complete seq (CAS to busy), writes arg, and stores the even tag. With
/// one producer the claim is a plain store. publish_multi() fails only when every cell is busy
/// with an older seq, i.e. kCells other notifiers of this handle are preempted mid-publish; the
/// caller then publishes under the handle's mutex instead.
///
/// Memory ordering: seqlock. Writer: claim (relaxed) ; release fence ; arg (relaxed) ; tag
/// (release). Reader: tag (acquire) ; arg (relaxed) ; acquire fence ; tag again (relaxed). If the
/// reader's arg load saw a newer writer's arg, the fences synchronize and its second tag load
/// sees that writer's claim, so the read is discarded; a complete read happens-after the write,
/// and so after everything the notifier wrote before notify().
class LatestCells {
 public:
  /// Two cells: a 32-byte block that fits in the handle's hot line beside seq and the
  /// subscriber list. publish_multi() falls back to the lock only when two older notifiers of the
  /// same handle are both preempted inside their few-instruction publish window.
  static constexpr unsigned kCells = 2;

  void publish_single(std::uint64_t seq, std::int64_t arg) noexcept {
    Cell& c = cells_[seq % kCells];
    c.tag.store((seq << 1) | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    c.arg.store(arg, std::memory_order_relaxed);
    c.tag.store(seq << 1, std::memory_order_release);
  }

  [[nodiscard]] bool publish_multi(std::uint64_t seq, std::int64_t arg) noexcept {
    bool superseded = false;
    for (unsigned k = 0; k < kCells; ++k) {
      Cell& c = cells_[(seq + k) % kCells];
      std::uint64_t tag = c.tag.load(std::memory_order_relaxed);
      for (;;) {
        if ((tag >> 1) > seq) {
          // Newer, complete or being written: its notifier publishes after us and checks for
          // waiters after that, so a waiter that misses ours cannot miss it.
          superseded = true;
          break;
        }
        if ((tag & 1) != 0) break;  // an older notifier is writing it: try the next cell
        if (c.tag.compare_exchange_weak(tag, (seq << 1) | 1, std::memory_order_relaxed)) {
          std::atomic_thread_fence(std::memory_order_release);
          c.arg.store(arg, std::memory_order_relaxed);
          c.tag.store(seq << 1, std::memory_order_release);
          return true;
        }
      }
    }
    return superseded;
  }

  /// The newest complete notification with seq > after, if one is visible.
  bool latest_after(std::uint64_t after, Notification& out) const noexcept {
    bool found = false;
    for (const Cell& c : cells_) {
      const std::uint64_t tag = c.tag.load(std::memory_order_acquire);
      const std::uint64_t seq = tag >> 1;
      if ((tag & 1) != 0 || seq <= after || (found && seq <= out.seq)) continue;
      const std::int64_t arg = c.arg.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (c.tag.load(std::memory_order_relaxed) != tag) continue;  // rewritten meanwhile
      out = Notification{seq, arg};
      found = true;
    }
    return found;
  }

 private:
  struct Cell {
    std::atomic<std::uint64_t> tag{0};
    std::atomic<std::int64_t> arg{0};
  };
  Cell cells_[kCells];
};
static_assert(sizeof(LatestCells) == 32);

}  // namespace herald::detail
