#include "park/consumer_parker.hpp"

#include <unistd.h>  // for write/read on the eventfd

#include "race_point.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

std::uint32_t ConsumerParker::park_thread() noexcept {
  // relaxed: the announcement is ordered by the fence below.
  const std::uint32_t now = state_.fetch_or(kThread, std::memory_order_relaxed) | kThread;
  // seq_cst fence: Dekker with the producer's fence between its change and wake_if_parked():
  // either the producer sees kThread and wakes us, or our recheck after this fence sees its change.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return now;
}

void ConsumerParker::park_waker(Waker* w) noexcept {
  // release: pairs with the acq_rel exchange of whoever takes it (wake() or take()).
  token_.store(w, std::memory_order_release);
  state_.fetch_or(kWaker, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in park_thread()
}

void ConsumerParker::arm_fd() noexcept {
  // release: publishes fd_ (set before the first arm) to the producer whose acquire exchange in
  // wake() reads this bit.
  state_.fetch_or(kFd, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in park_thread()
}

void ConsumerParker::wake() noexcept {
  // acquire: pairs with arm_fd's release, for fd_ (the word carries no other data; the producer's
  // change was published before its fence). One exchange takes every announcement at once.
  const std::uint32_t parked = state_.exchange(kIdle, std::memory_order_acquire);
  HERALD_RACE_POINT("parker.unparked");  // unparked, the waker not yet taken
  if ((parked & kThread) != 0) futex_wake_all(&state_);
  if ((parked & kWaker) != 0) {
    // acq_rel: acquires the consumer's setup of the waker; the exchange makes this producer the
    // one that resolves it (a resolver's take() may have won instead: then nothing to do).
    if (Waker* w = token_.exchange(nullptr, std::memory_order_acq_rel)) w->wake(w);
  }
  if ((parked & kFd) != 0) signal_fd(fd_);
}

void signal_fd(int fd) noexcept {
  const std::uint64_t one = 1;
  // A full counter (2^64 - 2 unread signals) cannot happen: the consumer drains it on every arm.
  // EINTR cannot happen on a non-blocking eventfd write; nothing else to do about an error here.
  [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
}

void drain_fd(int fd) noexcept {
  std::uint64_t count = 0;
  // Non-blocking: EAGAIN when nothing was signalled since the last drain.
  [[maybe_unused]] const ssize_t n = ::read(fd, &count, sizeof count);
}

}  // namespace herald::detail
