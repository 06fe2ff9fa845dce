#include "wait/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

namespace herald::detail {

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                Clock::time_point deadline) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return futex_wait_at(&word, expected, deadline);
}

bool futex_wait_at(const void* word, std::uint32_t expected, Clock::time_point deadline) noexcept {
  timespec ts{};
  const timespec* abs = nullptr;
  if (deadline != Clock::time_point::max()) {
    // steady_clock is CLOCK_MONOTONIC on Linux, which FUTEX_WAIT_BITSET measures absolutely.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch());
    if (ns.count() <= 0) return false;
    ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
    abs = &ts;
  }
  const long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, abs, nullptr,
                          FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return false;
  return true;
}

void futex_wake_all(const void* word) noexcept {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

void futex_wake_one(const void* word) noexcept {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

Clock::time_point deadline_after(std::chrono::nanoseconds timeout) noexcept {
  if (timeout == std::chrono::nanoseconds::max()) return Clock::time_point::max();
  if (timeout.count() <= 0) return Clock::now();
  const auto now = Clock::now();
  if (timeout > Clock::time_point::max() - now) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

}  // namespace herald::detail
