#pragma once

#include <cstddef>
#include <cstdint>

namespace herald {

/// seq: 1, 2, 3 ... per handle.
struct Notification {
  std::uint64_t seq;
  std::int64_t arg;
  friend constexpr bool operator==(const Notification&, const Notification&) noexcept = default;
};
/// "What I have seen": waits complete with a notification whose seq is above it.
struct Ticket {
  std::uint64_t seq;
};
/// What one notify() did: its seq, and per subscription whether it was buffered or dropped, and
/// how many parked waiters it woke: the coroutine waits it completed, plus every blocking waiter
/// parked on the handle (they all wake to recheck; one whose ticket is still ahead sleeps again).
struct NotifyReceipt {
  std::uint64_t seq;
  std::uint32_t delivered;
  std::uint32_t dropped;
  std::uint32_t woken;
};

struct HandleStats {
  std::uint64_t notifications, delivered, dropped;
  std::uint32_t waiters, subscriptions;
};
struct KernelStats {
  std::uint32_t live_handles;
  std::uint64_t notifications, rejected, delivered, dropped;
  std::size_t memory_used;
};

}  // namespace herald
