#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace herald::detail {

using Clock = std::chrono::steady_clock;

/// Sleeps while *word == expected, until woken, a spurious wake, or `deadline` (steady clock;
/// time_point::max() = none). Returns false only when the deadline has passed.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                Clock::time_point deadline) noexcept;

/// The same on a 32-bit futex word given by address (half of a 64-bit atomic, say).
bool futex_wait_at(const void* word, std::uint32_t expected, Clock::time_point deadline) noexcept;

/// Wakes every thread sleeping on `word`. Only the address is used: the memory may already have
/// been released by a waiter that returned (the kernel then wakes nobody, or someone who rechecks).
void futex_wake_all(const void* word) noexcept;

/// Wakes at most one thread sleeping on `word`.
void futex_wake_one(const void* word) noexcept;

/// The deadline `timeout` from now, saturating at time_point::max().
Clock::time_point deadline_after(std::chrono::nanoseconds timeout) noexcept;

}  // namespace herald::detail
