// Backoff arithmetic shared by fail(), lease expiry and the tests that check the bounds.
#include <algorithm>
#include <cmath>

#include "herald/outbox.hpp"

namespace herald {

std::chrono::milliseconds backoff_base(const RetryPolicy& policy, std::uint32_t attempts) noexcept {
  const double exponent = attempts <= 1 ? 0.0 : static_cast<double>(attempts - 1);
  const double initial = static_cast<double>(policy.initial.count());
  const double cap = static_cast<double>(policy.max.count());
  // pow overflows to inf for huge attempt counts; min() then picks the cap.
  const double ms = std::min(cap, initial * std::pow(policy.multiplier, exponent));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(0.0, ms)));
}

std::pair<std::chrono::milliseconds, std::chrono::milliseconds> backoff_bounds(
    const RetryPolicy& policy, std::uint32_t attempts) noexcept {
  const double base = static_cast<double>(backoff_base(policy, attempts).count());
  return {
      std::chrono::milliseconds(static_cast<std::int64_t>(std::floor(base * (1 - policy.jitter)))),
      std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(base * (1 + policy.jitter))))};
}

std::string_view to_string(EntryStatus s) noexcept {
  switch (s) {
    case EntryStatus::queued:
      return "queued";
    case EntryStatus::leased:
      return "leased";
    case EntryStatus::failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace herald
