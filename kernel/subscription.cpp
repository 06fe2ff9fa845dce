// Subscription: the consumer side of a SubscriptionRing.

#include <cassert>
#include <optional>
#include <stop_token>
#include <utility>

#include "herald/executor.hpp"
#include "herald/subscription.hpp"
#include "kernel_state.hpp"
#include "wait/futex.hpp"
#include "wait/spin.hpp"

namespace herald {
namespace {

using detail::SubscriptionRing;

struct StopUnpark {
  SubscriptionRing* ring;
  std::atomic<bool>* stopped;
  void operator()() const noexcept {
    stopped->store(true, std::memory_order_relaxed);
    // seq_cst fence: Dekker with consumer_park(); the consumer sees `stopped` or we see it parked.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    ring->wake_consumer();
  }
};

}  // namespace

Subscription::Subscription(Subscription&& other) noexcept
    : kernel_(std::exchange(other.kernel_, nullptr)),
      handle_(std::exchange(other.handle_, Handle{})),
      ring_(std::exchange(other.ring_, nullptr)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    kernel_ = std::exchange(other.kernel_, nullptr);
    handle_ = std::exchange(other.handle_, Handle{});
    ring_ = std::exchange(other.ring_, nullptr);
  }
  return *this;
}

Subscription::~Subscription() { reset(); }

void Subscription::reset() noexcept {
  if (ring_ == nullptr) return;
  if (detail::CoroWait* r = ring_->suspended_receive) {
    // A coroutine is suspended in recv(): it resumes with closed and never touches the ring again.
    assert((r->executor->running_in_this_thread() || current_executor() == nullptr) &&
           "destroy a Subscription with a suspended receiver on the receiver's executor thread");
    r->ring_gone = true;
    r->cleanup();  // its timer and stop callback can no longer reach the ring
    ring_->suspended_receive = nullptr;
    if (ring_->receiver_token.exchange(nullptr, std::memory_order_acq_rel) == r) {
      r->outcome = Errc::closed;
      r->finish();
    }  // else a notifier took it and is posting it; its resumption sees ring_gone
  }
  kernel_->unsubscribe(handle_, ring_);
  kernel_ = nullptr;
  handle_ = Handle{};
  ring_ = nullptr;
}

Result<Notification> Subscription::try_recv() noexcept {
  if (ring_ == nullptr) return Errc::closed;
  Notification n;
  if (ring_->try_pop(n)) return n;
  if (!ring_->closed()) return Errc::empty;
  // Closed: every push happened-before `closed` (acquire), so one more look is final.
  if (ring_->try_pop(n)) return n;
  return Errc::closed;
}

std::size_t Subscription::try_recv_batch(std::span<Notification> out) noexcept {
  if (ring_ == nullptr) return 0;
  return ring_->pop_batch(out);
}

Result<Notification> Subscription::recv_blocking(WaitOptions options) noexcept {
  if (ring_ == nullptr) return Errc::closed;
  Notification n;
  if (ring_->try_pop(n)) return n;
  const auto deadline = detail::deadline_after(options.timeout);
  if (options.timeout > std::chrono::nanoseconds::zero() &&
      detail::spin_before_park([&] { return ring_->try_pop(n); },
                               [&] {
                                 return ring_->closed() ||
                                        (options.stop != nullptr && options.stop->stop_requested());
                               },
                               deadline)) {
    return n;
  }
  std::atomic<bool> stopped{false};
  std::optional<std::stop_callback<StopUnpark>> on_stop;
  if (options.stop != nullptr) on_stop.emplace(*options.stop, StopUnpark{ring_, &stopped});

  for (;;) {
    if (ring_->try_pop(n)) return n;
    if (ring_->closed()) {
      if (ring_->try_pop(n)) return n;
      return Errc::closed;
    }
    if (stopped.load(std::memory_order_relaxed)) return Errc::cancelled;
    const std::uint32_t parked = ring_->consumer_park();
    if (ring_->has_pending() || ring_->closed() || stopped.load(std::memory_order_relaxed)) {
      ring_->consumer_unpark();
      continue;
    }
    if (!detail::futex_wait(ring_->park_word(), parked, deadline)) {
      ring_->consumer_unpark();
      // A notification that raced the deadline is handed out rather than left for later.
      if (ring_->try_pop(n)) return n;
      return Errc::timed_out;
    }
  }
}

std::size_t Subscription::size() const noexcept { return ring_ == nullptr ? 0 : ring_->size(); }

std::uint64_t Subscription::dropped() const noexcept {
  return ring_ == nullptr ? 0 : ring_->dropped();
}

std::uint32_t Subscription::capacity() const noexcept {
  return ring_ == nullptr ? 0 : ring_->capacity();
}

}  // namespace herald
