#include "park/consumer_parker.hpp"

#include "race_point.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

std::uint32_t ConsumerParker::park_thread() noexcept {
  state_.store(kThread, std::memory_order_relaxed);
  // seq_cst fence: Dekker with the producer's fence between its change and wake_if_parked():
  // either the producer sees kThread and wakes us, or our recheck after this fence sees its change.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return kThread;
}

void ConsumerParker::park_waker(Waker* w) noexcept {
  // release: pairs with the acq_rel exchange of whoever takes it (wake() or take()).
  token_.store(w, std::memory_order_release);
  state_.store(kWaker, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in park_thread()
}

void ConsumerParker::wake() noexcept {
  // relaxed: the word carries no data; the producer's change was published before its fence.
  const std::uint32_t parked = state_.exchange(kIdle, std::memory_order_relaxed);
  HERALD_RACE_POINT("parker.unparked");  // unparked, the waker not yet taken
  if (parked == kThread) {
    futex_wake_all(&state_);
  } else if (parked == kWaker) {
    // acq_rel: acquires the consumer's setup of the waker; the exchange makes this producer the
    // one that resolves it (a resolver's take() may have won instead: then nothing to do).
    if (Waker* w = token_.exchange(nullptr, std::memory_order_acq_rel)) w->wake(w);
  }
}

}  // namespace herald::detail
