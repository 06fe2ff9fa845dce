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
/// A third way to wait is an eventfd (Subscription::pollable_fd): the consumer arms it after it
/// found the ring empty, and the producer that wakes it writes the eventfd, so an epoll loop (or
/// asyncio's add_reader) learns of the empty-to-non-empty edge. The three are bits of one word:
/// a consumer may hold an armed fd and block in a receive at the same time.
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
  static constexpr std::uint32_t kIdle = 0, kThread = 1, kWaker = 2, kFd = 4;

  // ---- consumer ----

  /// Announces a thread about to sleep on word(); returns the value to sleep on. The caller
  /// rechecks its condition after this and calls unpark() if it does not sleep.
  std::uint32_t park_thread() noexcept;
  /// Publishes `w` and announces it; the caller rechecks after this and, if it does not wait,
  /// takes `w` back with take(w) (false: a producer or resolver took it first and will call it).
  void park_waker(Waker* w) noexcept;
  /// Withdraws a thread or waker announcement (an armed fd stays armed).
  void unpark() noexcept {
    // relaxed: the futex word carries no data; an RMW so that a concurrent wake's clearing of
    // kFd is not overwritten.
    state_.fetch_and(~(kThread | kWaker), std::memory_order_relaxed);
  }
  const std::atomic<std::uint32_t>& word() const noexcept { return state_; }

  /// The eventfd that wake() writes while kFd is armed; -1 until set. Set once, by the consumer,
  /// before it first arms (published by arm_fd's release).
  void set_fd(int fd) noexcept { fd_ = fd; }
  int fd() const noexcept { return fd_; }
  /// True while armed and no producer has woken the fd since (consumer's view).
  bool fd_armed() const noexcept { return (state_.load(std::memory_order_relaxed) & kFd) != 0; }
  /// Announces the fd (after the consumer drained it, having found the ring empty); the caller
  /// rechecks the ring after this and, if something is there, calls disarm_fd() and signals.
  void arm_fd() noexcept;
  void disarm_fd() noexcept { state_.fetch_and(~kFd, std::memory_order_relaxed); }

  // ---- producers (after a seq_cst fence that follows their change) ----

  /// relaxed: ordered after the producer's change by its seq_cst fence (the Dekker pair of the
  /// consumer's fence in park_*).
  void wake_if_parked() noexcept {
    if (state_.load(std::memory_order_relaxed) != kIdle) wake();
  }
  /// Ends the consumer's sleep: wakes the thread, takes the Waker and calls it, writes the fd.
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
  int fd_ = -1;
  std::atomic<Waker*> token_{nullptr};
};
static_assert(sizeof(ConsumerParker) == kCacheLine);

/// Makes an eventfd readable (adds 1 to its counter).
void signal_fd(int fd) noexcept;
/// Makes a non-blocking eventfd unreadable (reads its counter to 0).
void drain_fd(int fd) noexcept;

}  // namespace herald::detail
