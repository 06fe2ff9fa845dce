#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config.hpp"
#include "herald/options.hpp"
#include "memory/memory_budget.hpp"
#include "park/consumer_parker.hpp"
#include "ring/subscription_ring.hpp"

namespace herald {
class RecvAwaitable;
}  // namespace herald

namespace herald::detail {

/// One subscription as the kernel holds it: its ring, its consumer's parker, who owns it, and its
/// hint, in one budgeted block (the ring last, its slots right after it).
///
/// notify() reads one line of it besides the ring's (the parker, after its fence); the consumer
/// writes the parker only when it parks.
///
/// Lifetime: created by subscribe(); referenced by the kernel (while the handle's subscriber list
/// holds it) and by the Subscription; freed by whichever releases its reference last.
class SubscriptionRecord {
 public:
  /// nullptr when the budget refuses. `capacity` must be a power of two.
  static SubscriptionRecord* create(MemoryBudget& budget, std::uint32_t capacity, Overflow overflow,
                                    Producers producers, std::string_view hint) noexcept;
  static void destroy(MemoryBudget& budget, SubscriptionRecord* record) noexcept;
  /// The bytes of a record with `capacity` slots, before its hint and cache-colour padding.
  static std::size_t footprint(std::uint32_t capacity, Producers producers) noexcept;

  SubscriptionRecord(const SubscriptionRecord&) = delete;
  SubscriptionRecord& operator=(const SubscriptionRecord&) = delete;

  std::string_view hint() const noexcept { return {hint_, hint_len_}; }

  /// Unregister, after its grace period: every push is visible before `closed` (release), and a
  /// parked consumer is woken to see it.
  void close() noexcept {
    ring.close();
    // seq_cst fence: the Dekker pair of the consumer's fence in ConsumerParker::park_*, as after
    // a push.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    parker.wake();
  }

  // ---- ownership (control plane) ----

  /// Drops one of the two references (the kernel's or the consumer's); true for the last one,
  /// whose caller then destroys the record.
  [[nodiscard]] bool release_ref() noexcept {
    // acq_rel: the last releaser's destroy() follows every access the other owner made.
    return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  /// The coroutine suspended in Subscription::recv(), if any: set and cleared by the consumer side
  /// only (the owner of the Subscription), read by the Subscription's destructor.
  RecvAwaitable* suspended_receive = nullptr;

 private:
  SubscriptionRecord(std::uint32_t capacity, Overflow overflow, Producers producers) noexcept
      : ring(capacity, overflow, producers) {}

  // On the header line with the ownership fields (declared before the parker and the ring, which
  // must come last).
  char* hint_ = nullptr;
  std::size_t hint_len_ = 0;
  std::uint32_t colour_offset_ = 0;     // where the record starts in its block (cache colouring)
  std::atomic<std::uint32_t> refs_{2};  // the kernel's and the consumer's

 public:
  ConsumerParker parker;  // its own line: written when the consumer parks, read by notify
  SubscriptionRing ring;  // last: its slots follow it
};

}  // namespace herald::detail
