#pragma once

#include <atomic>
#include <cstdint>

#include "config.hpp"
#include "herald/detail/wait_node.hpp"

namespace herald::detail {

/// How one consumer sleeps until producers have something for it, and how a producer ends that
/// sleep. It knows nothing about rings or coroutines (folly's LifoSem leaves the waiting to a
/// Handoff type the same way): a consumer either sleeps as a thread on the futex word, or leaves
/// a Waker whose callback the producer runs, the way WaitNode::on_complete completes a wait.
///
/// Protocol (Dekker, PROTOCOLS.md §5): the consumer announces (park_thread / park_waker: a store
/// and a seq_cst fence) and then rechecks its condition; a producer makes its change, runs a
/// seq_cst fence, and calls wake_if_parked(). Either the consumer's recheck sees the change, or
/// the producer sees the announcement and wakes it.
///
/// Threads: one consumer; any number of producers and resolvers (a timer, a stop callback) may
/// call wake() or take() concurrently.
///
/// Size: one cache line, written by the consumer when it parks and by whoever wakes it; producers
/// only read it while the consumer is running.
class alignas(kCacheLine) ConsumerParker {
 public:
  /// A parked callback: the one who takes it out of the parker (take() or wake()) calls `wake`
  /// exactly once.
  using Waker = ParkedWaker;
  static constexpr std::uint32_t kIdle = 0, kThread = 1, kWaker = 2;

  // ---- consumer ----

  /// Announces a thread about to sleep on word(); returns the value to sleep on. The caller
  /// rechecks its condition after this and calls unpark() if it does not sleep.
  std::uint32_t park_thread() noexcept;
  /// Publishes `w` and announces it; the caller rechecks after this and, if it does not wait,
  /// takes `w` back with take(w) (false: a producer or resolver took it first and will call it).
  void park_waker(Waker* w) noexcept;
  void unpark() noexcept { state_.store(kIdle, std::memory_order_relaxed); }  // futex word only
  const std::atomic<std::uint32_t>& word() const noexcept { return state_; }

  // ---- producers (after a seq_cst fence that follows their change) ----

  /// relaxed: ordered after the producer's change by its seq_cst fence (the Dekker pair of the
  /// consumer's fence in park_*).
  void wake_if_parked() noexcept {
    if (state_.load(std::memory_order_relaxed) != kIdle) wake();
  }
  /// Ends the consumer's sleep: wakes the thread, or takes the Waker and calls it.
  void wake() noexcept;

  // ---- resolvers of a parked Waker (timer, stop, destruction) ----

  /// Takes `w` out if it is still parked; true means the caller now owns its resolution.
  bool take(Waker* w) noexcept {
    // acq_rel: acquires the consumer's setup of `w` (park_waker's release); the exchange makes
    // exactly one party the resolver.
    Waker* expected = w;
    return token_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint32_t> state_{kIdle};
  std::atomic<Waker*> token_{nullptr};
};
static_assert(sizeof(ConsumerParker) == kCacheLine);

}  // namespace herald::detail
