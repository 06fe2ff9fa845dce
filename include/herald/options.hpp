#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <string_view>
#include <type_traits>

namespace herald {

class Executor;

/// single: the caller promises no two notify() calls on the handle overlap (SPSC rings, no RMW).
enum class Producers : std::uint8_t { single, multi };
/// What a full subscription does with a new notification.
enum class Overflow : std::uint8_t { drop_newest, keep_latest };

struct KernelOptions {
  std::uint32_t max_handles = 65536;
  std::uint32_t max_subscription_capacity = 65536;
  /// Bytes the kernel may allocate after construction (handle cores, rings, hints, lists).
  std::size_t memory_limit = std::size_t{256} << 20;
};

struct HandleOptions {
  std::string_view debug_hint = {};  ///< copied; shown by describe()
  Producers producers = Producers::multi;
  std::uint32_t max_waiters = 64;
  std::uint32_t max_subscribers = 16;
};

struct SubscriptionOptions {
  std::uint32_t capacity = 256;  ///< 1..max_subscription_capacity; rounded up to a power of two
  Overflow overflow = Overflow::drop_newest;
  std::string_view debug_hint = {};
};

/// Trivially destructible on purpose: GCC 12 destroys a braced temporary in a co_await operand
/// twice, so nothing a caller passes braced into an awaitable-returning call may own anything.
struct WaitOptions {
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();  ///< max() = no timeout
  const std::stop_token* stop = nullptr;  ///< the caller keeps the token alive until the wait ends
  Executor* executor = nullptr;  ///< coroutines: where to resume; nullptr = the current one
};
static_assert(std::is_trivially_destructible_v<WaitOptions>);

}  // namespace herald
