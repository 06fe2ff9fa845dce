#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stop_token>

#include "herald/detail/wait_node.hpp"
#include "herald/error.hpp"
#include "herald/executor.hpp"
#include "herald/handle.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald {

namespace detail {

class KernelState;
class HandleCore;
class SubscriptionRing;

/// The state of one coroutine wait (Kernel::wait or Subscription::recv), embedded in its awaiter:
/// nothing is allocated per wait.
///
/// Exactly one party resolves a suspended wait: for a handle wait, whoever unlinks its WaitNode
/// from the handle under the handle's mutex (a notifier, unregister, the timer, the stop
/// callback, or the awaiter's destructor); for a receive, whoever takes it back from the ring's
/// `receiver` slot (a notifier that pushed, the timer, the stop callback, the destructor, or the
/// Subscription's destructor). The resolver fills the outcome and calls finish(), which posts the
/// resumption to the waiter's executor, unless await_suspend() has not returned yet, in which
/// case await_suspend() returns false and the coroutine simply continues on its own thread.
///
/// `phase` bits: kSuspended (await_suspend is done), kResolved (an outcome is decided), kStarted
/// (the posted work began resuming), kAbandoned (the awaiter was destroyed; the posted work must
/// not resume), kDiscarded (the posted work saw kAbandoned and is finished with this object).
struct CoroWait {
  static constexpr std::uint32_t kSuspended = 1, kResolved = 2, kStarted = 4, kAbandoned = 8,
                                 kDiscarded = 16;
  enum class Kind : std::uint8_t { handle, ring };

  struct Resume : Executor::Work {
    CoroWait* self = nullptr;
  };
  struct StopFn {
    CoroWait* self;
    void operator()() const noexcept;
  };

  CoroWait(KernelState* kernel, Handle handle, Ticket after, bool observe_now,
           WaitOptions options) noexcept;
  CoroWait(SubscriptionRing* ring, WaitOptions options) noexcept;
  CoroWait(const CoroWait&) = delete;
  CoroWait& operator=(const CoroWait&) = delete;
  ~CoroWait();

  bool ready() noexcept;
  bool suspend(std::coroutine_handle<> awaiting) noexcept;
  Result<Notification> resume() noexcept;

  // Resolution (any thread).
  void finish() noexcept;
  bool withdraw() noexcept;       // takes the wait back from the handle or the ring; true if we did
  void cleanup() noexcept;        // disarm the timer, drop the stop callback
  bool rearm_receive() noexcept;  // ring: park again; false if something is there already
  bool take_from_ring() noexcept;  // ring: an item, or closed once drained; false: keep waiting
  /// Ring, after a resolver took the receive back: decides the outcome (an item, closed, or the
  /// resolver's reason), or parks again when there is nothing to take yet (returns false: a later
  /// resolution resumes us).
  bool settle_receive() noexcept;
  static void on_node_complete(WaitNode* node) noexcept;
  static void on_timer(TimerNode* timer) noexcept;
  static void on_resume(Executor::Work* work) noexcept;

  Kind kind;
  KernelState* kernel = nullptr;
  Handle handle{};
  Ticket after{};
  bool observe_now = false;
  SubscriptionRing* ring = nullptr;
  WaitOptions options;
  Executor* executor = nullptr;
  EventLoop* timer_loop = nullptr;
  HandleCore* core = nullptr;
  std::coroutine_handle<> continuation{};

  WaitNode node{};
  Resume work{};
  TimerNode timer{};
  std::optional<std::stop_callback<StopFn>> stop;

  std::atomic<std::uint32_t> phase{0};
  // The outcome: an error, or a value (handle waits), or "pop from the ring" (receives).
  std::optional<Result<Notification>> outcome;
  std::atomic<Errc> reason{Errc{}};  // timed_out/cancelled/closed requested by a resolver
  bool ring_gone = false;            // the Subscription was destroyed (loop thread)
};

}  // namespace detail

/// `co_await kernel.wait(h, ticket, opts)` -> Result<Notification>.
///
/// Completes with the latest notification whose seq > ticket (at once, without suspending, if one
/// is already published), or closed / unknown_handle / timed_out / cancelled / limit_exceeded /
/// invalid_argument (no executor to resume on, or a finite timeout on an executor that is not an
/// EventLoop). Resumes on options.executor, else on the executor current when it suspended; never
/// on the notifier's thread. Destroying the suspended coroutine withdraws the wait; do so on the
/// executor's thread (or while it is not running). Not copyable or movable: co_await it where it
/// is made.
class [[nodiscard]] WaitAwaitable {
 public:
  WaitAwaitable(const WaitAwaitable&) = delete;
  WaitAwaitable& operator=(const WaitAwaitable&) = delete;

  bool await_ready() noexcept { return state_.ready(); }
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept { return state_.suspend(awaiting); }
  Result<Notification> await_resume() noexcept { return state_.resume(); }

 private:
  friend class Kernel;
  WaitAwaitable(detail::KernelState* kernel, Handle h, Ticket after, bool observe_now,
                WaitOptions options) noexcept
      : state_(kernel, h, after, observe_now, options) {}
  detail::CoroWait state_;
};

/// `co_await subscription.recv(opts)` -> Result<Notification>.
///
/// The next buffered notification (at once if one is there), or closed once the handle is
/// unregistered and drained (or the Subscription is destroyed while this waits), timed_out,
/// cancelled, invalid_argument (as for WaitAwaitable). An item that arrives as the receive gives
/// up stays buffered. Resumes on the waiter's executor, never on the notifier's thread.
class [[nodiscard]] RecvAwaitable {
 public:
  RecvAwaitable(const RecvAwaitable&) = delete;
  RecvAwaitable& operator=(const RecvAwaitable&) = delete;

  bool await_ready() noexcept { return state_.ready(); }
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept { return state_.suspend(awaiting); }
  Result<Notification> await_resume() noexcept { return state_.resume(); }

 private:
  friend class Subscription;
  RecvAwaitable(detail::SubscriptionRing* ring, WaitOptions options) noexcept
      : state_(ring, options) {}
  detail::CoroWait state_;
};

}  // namespace herald
