#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "herald/awaitables.hpp"
#include "herald/error.hpp"
#include "herald/handle.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald {

namespace detail {
class KernelState;
class SubscriptionRecord;
}  // namespace detail

class Kernel;

/// One consumer's bounded channel of every notification on a handle.
///
/// Created by Kernel::subscribe(); sees every notification whose notify() began after subscribe()
/// returned, until it is destroyed or the handle is unregistered. Each one is either buffered or
/// counted in dropped(): received + size() + dropped() == observed, exactly; per notifier thread,
/// FIFO. Move-only RAII: the destructor unsubscribes (control plane). Receiving is for one thread
/// at a time; observers (size, dropped) may be called from any thread. Must not outlive its
/// Kernel.
///
/// Memory ordering: a notification received here was written after everything its notifier wrote
/// before calling notify(), and the receiver sees those writes.
class Subscription {
 public:
  /// Holds nothing; every receive reports Errc::closed.
  Subscription() noexcept = default;
  Subscription(Subscription&& other) noexcept;
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();

  explicit operator bool() const noexcept { return record_ != nullptr; }
  Handle handle() const noexcept { return handle_; }

  /// Never blocks or allocates. empty when nothing is buffered now; closed once the handle was
  /// unregistered and everything buffered has been received.
  [[nodiscard]] Result<Notification> try_recv() noexcept;
  /// Moves up to out.size() buffered notifications into `out`, oldest first; returns how many.
  [[nodiscard]] std::size_t try_recv_batch(std::span<Notification> out) noexcept;
  /// Blocks the calling thread until a notification is buffered (returns it), the handle is
  /// unregistered and drained (closed), the timeout passes (timed_out), or the stop token fires
  /// (cancelled). An item that arrives as the wait gives up stays buffered for the next receive.
  [[nodiscard]] Result<Notification> recv_blocking(WaitOptions options = {}) noexcept;
  /// `co_await recv(options)` -> Result<Notification>: the coroutine form of recv_blocking,
  /// resuming on the waiter's executor. Destroying the Subscription while a coroutine waits here
  /// (on that coroutine's executor thread) completes the receive with closed. See RecvAwaitable.
  RecvAwaitable recv(WaitOptions options = {}) noexcept { return RecvAwaitable(record_, options); }

  /// An eventfd owned by this subscription (created on the first call; the same fd afterwards),
  /// or -1 with errno (EBADF for an empty Subscription; eventfd's errno when it cannot be made).
  /// It is readable whenever try_recv() would return a notification or closed, and stops being
  /// readable only after a try_recv()/try_recv_batch() that found the ring empty: a loop
  /// `epoll_wait -> drain until empty -> epoll_wait` never sleeps on buffered items and never
  /// spins (level- or edge-triggered epoll, poll, io_uring POLL_ADD, asyncio add_reader). notify()
  /// writes it only on the empty-to-non-empty edge after such a try_recv; with no fd asked for it
  /// costs notify() nothing. Destroying the Subscription closes it. Consumer thread.
  [[nodiscard]] int pollable_fd() noexcept;

  /// Buffered now (a snapshot while notifiers run).
  std::size_t size() const noexcept;
  /// Lost to overflow (drop_newest) or folded (keep_latest) so far (a snapshot).
  std::uint64_t dropped() const noexcept;
  /// The capacity after rounding up to a power of two; 0 when empty.
  std::uint32_t capacity() const noexcept;

 private:
  friend class Kernel;
  Subscription(detail::KernelState* kernel, Handle handle,
               detail::SubscriptionRecord* record) noexcept
      : kernel_(kernel), handle_(handle), record_(record) {}
  void reset() noexcept;
  /// After a receive found the ring empty: makes the pollable fd unreadable until the next push.
  void rearm_fd() noexcept;

  detail::KernelState* kernel_ = nullptr;
  Handle handle_{};
  detail::SubscriptionRecord* record_ = nullptr;
};

}  // namespace herald
