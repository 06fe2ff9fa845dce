// Subscription: the consumer side of a SubscriptionRecord (its ring and its parker).

#include <sys/eventfd.h>

#include <cassert>
#include <cerrno>
#include <optional>
#include <stop_token>
#include <utility>

#include "herald/executor.hpp"
#include "herald/subscription.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "subscription/subscription_record.hpp"
#include "wait/futex.hpp"
#include "wait/spin.hpp"

namespace herald {
namespace {

using detail::SubscriptionRecord;

struct StopUnpark {
  SubscriptionRecord* record;
  std::atomic<bool>* stopped;
  void operator()() const noexcept {
    stopped->store(true, std::memory_order_relaxed);
    // seq_cst fence: Dekker with ConsumerParker::park_thread(); the consumer sees `stopped` or we
    // see it parked.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    record->parker.wake();
  }
};

}  // namespace

Subscription::Subscription(Subscription&& other) noexcept
    : kernel_(std::exchange(other.kernel_, nullptr)),
      handle_(std::exchange(other.handle_, Handle{})),
      record_(std::exchange(other.record_, nullptr)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    kernel_ = std::exchange(other.kernel_, nullptr);
    handle_ = std::exchange(other.handle_, Handle{});
    record_ = std::exchange(other.record_, nullptr);
  }
  return *this;
}

Subscription::~Subscription() { reset(); }

void Subscription::reset() noexcept {
  if (record_ == nullptr) return;
  if (RecvAwaitable* r = record_->suspended_receive) {
    // A coroutine is suspended in recv(): it resumes with closed and never touches us again.
    record_->suspended_receive = nullptr;
    r->subscription_gone();
  }
  kernel_->unsubscribe(handle_, record_);
  kernel_ = nullptr;
  handle_ = Handle{};
  record_ = nullptr;
}

int Subscription::pollable_fd() noexcept {
  if (record_ == nullptr) {
    errno = EBADF;
    return -1;
  }
  detail::ConsumerParker& parker = record_->parker;
  if (parker.fd() < 0) {
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return -1;  // errno from eventfd (EMFILE, ENFILE, ENOMEM)
    parker.set_fd(fd);
    rearm_fd();  // readable at once if something is buffered (or closed) already
  }
  return parker.fd();
}

void Subscription::rearm_fd() noexcept {
  detail::ConsumerParker& parker = record_->parker;
  if (parker.fd() < 0 || parker.fd_armed()) return;  // no fd, or armed with no push since
  detail::drain_fd(parker.fd());
  HERALD_RACE_POINT("fd.drained");  // unreadable, not yet armed: a push here must not be missed
  parker.arm_fd();  // seq_cst fence inside: Dekker with notify's fence, as for a parked thread
  if (record_->ring.has_pending() || record_->ring.closed()) {
    // A push (or the close) came between the empty receive and the arm: readable again now.
    parker.disarm_fd();
    detail::signal_fd(parker.fd());
  }
}

Result<Notification> Subscription::try_recv() noexcept {
  if (record_ == nullptr) return Errc::closed;
  Notification n{};
  if (record_->ring.try_pop(n)) return n;
  if (!record_->ring.closed()) {
    rearm_fd();
    return Errc::empty;
  }
  // Closed: every push happened-before `closed` (acquire), so one more look is final.
  if (record_->ring.try_pop(n)) return n;
  return Errc::closed;
}

std::size_t Subscription::try_recv_batch(std::span<Notification> out) noexcept {
  if (record_ == nullptr) return 0;
  const std::size_t n = record_->ring.pop_batch(out);
  if (n < out.size() && !record_->ring.closed()) rearm_fd();  // it found the ring empty
  return n;
}

Result<Notification> Subscription::recv_blocking(WaitOptions options) noexcept {
  if (record_ == nullptr) return Errc::closed;
  Notification n{};
  if (record_->ring.try_pop(n)) return n;
  const auto deadline = detail::deadline_after(options.timeout);
  if (options.timeout > std::chrono::nanoseconds::zero() &&
      detail::spin_before_park([&] { return record_->ring.try_pop(n); },
                               [&] {
                                 return record_->ring.closed() ||
                                        (options.stop != nullptr && options.stop->stop_requested());
                               },
                               deadline)) {
    return n;
  }
  std::atomic<bool> stopped{false};
  std::optional<std::stop_callback<StopUnpark>> on_stop;
  if (options.stop != nullptr) on_stop.emplace(*options.stop, StopUnpark{record_, &stopped});

  for (;;) {
    if (record_->ring.try_pop(n)) return n;
    if (record_->ring.closed()) {
      if (record_->ring.try_pop(n)) return n;
      return Errc::closed;
    }
    if (stopped.load(std::memory_order_relaxed)) return Errc::cancelled;
    const std::uint32_t parked = record_->parker.park_thread();
    if (record_->ring.has_pending() || record_->ring.closed() ||
        stopped.load(std::memory_order_relaxed)) {
      record_->parker.unpark();
      continue;
    }
    if (!detail::futex_wait(record_->parker.word(), parked, deadline)) {
      record_->parker.unpark();
      // A notification that raced the deadline is handed out rather than left for later.
      if (record_->ring.try_pop(n)) return n;
      return Errc::timed_out;
    }
  }
}

std::size_t Subscription::size() const noexcept {
  return record_ == nullptr ? 0 : record_->ring.size();
}

std::uint64_t Subscription::dropped() const noexcept {
  return record_ == nullptr ? 0 : record_->ring.dropped();
}

std::uint32_t Subscription::capacity() const noexcept {
  return record_ == nullptr ? 0 : record_->ring.capacity();
}

}  // namespace herald
