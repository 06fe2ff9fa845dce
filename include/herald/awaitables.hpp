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

class Kernel;
class Subscription;

namespace detail {

class KernelState;
class HandleCore;
class SubscriptionRecord;

/// The resumption protocol the two coroutine awaiters share (each awaiter is its own type and
/// says how a wait is taken back and how its outcome is settled). Embedded in the awaiter: nothing
/// is allocated per wait. Kernel-private; public only because awaiters embed it.
///
/// Exactly one party resolves a suspended wait: whoever takes it back from where it is parked
/// (the handle's waiter list, or the subscription's parker): a notifier, unregister, the timer,
/// the stop callback, the Subscription's destructor, or the awaiter's destructor. The resolver
/// calls finish(), which posts the resumption to the waiter's executor, unless await_suspend()
/// has not returned yet, in which case await_suspend() settles inline and returns false. Either
/// way the awaiter's settle() decides the outcome, on the waiter's thread, before it resumes.
///
/// `phase_` bits: kSuspended (await_suspend is done), kResolved (a resolver took the wait back),
/// kStarted (the resumption began), kAbandoned (the awaiter was destroyed; the posted work must
/// not resume), kDiscarded (the posted work saw kAbandoned and is finished with this object).
class CoroResumption {
 public:
  CoroResumption(const CoroResumption&) = delete;
  CoroResumption& operator=(const CoroResumption&) = delete;

 protected:
  /// What differs between the awaiters.
  struct Ops {
    /// Takes the suspended wait back from where it is parked; true if this caller did (and so
    /// must call finish()).
    bool (*withdraw)(CoroResumption*) noexcept;
    /// After a resolution, on the waiter's thread: decides the outcome (true), or parks again
    /// (false: a later resolution resumes it; call park_again() first).
    bool (*settle)(CoroResumption*) noexcept;
  };

  CoroResumption(const Ops& ops, WaitOptions options) noexcept : options_(options), ops_(&ops) {}
  ~CoroResumption() = default;

  /// await_ready's common checks once the wait cannot complete at once: cancelled (stop already
  /// requested), invalid_argument (no executor; a finite timeout off an EventLoop), timed_out (a
  /// timeout of zero or less); Errc{} when it may suspend.
  Errc prepare() noexcept;
  /// await_suspend's common tail, after the awaiter made itself visible to resolvers: arms the
  /// timer and the stop callback, then publishes kSuspended. Returns await_suspend's result.
  bool suspend(std::coroutine_handle<> awaiting) noexcept;
  /// The awaiter's destructor calls this first: takes a suspended wait back, or takes back (or
  /// discards) its posted resumption. Nothing to do if it never suspended or already resumed.
  void abandon() noexcept;
  /// Any thread: the resolver, after it took the wait back. `this` may be gone once it returns.
  void finish() noexcept;
  /// From settle(): the next resolution must post the resumption again.
  void park_again() noexcept;
  /// From settle(), when parking again failed (something is there): settling continues here.
  void parked_in_vain() noexcept;
  /// The resolver's reason (timed_out, cancelled, out_of_memory), or Errc{} for "look again".
  Errc reason() const noexcept { return reason_.load(std::memory_order_relaxed); }
  /// seq_cst: inside a read section, before touching where the wait is parked (PROTOCOLS.md §3).
  bool resolved() const noexcept { return (phase_.load() & kResolved) != 0; }
  /// Disarms the timer and drops the stop callback (waits for one running elsewhere).
  void cleanup() noexcept;

  WaitOptions options_;
  Executor* executor_ = nullptr;

 private:
  static constexpr std::uint32_t kSuspended = 1, kResolved = 2, kStarted = 4, kAbandoned = 8,
                                 kDiscarded = 16;
  struct Resume : Executor::Work {
    CoroResumption* self = nullptr;
  };
  struct StopFn {
    CoroResumption* self;
    void operator()() const noexcept { self->give_up(Errc::cancelled); }
  };
  static void on_resume(Executor::Work* work) noexcept;
  static void on_timer(TimerNode* timer) noexcept;
  /// The timer, the stop callback, or a failed timer arm: records why, then resolves the wait if
  /// it can still take it back.
  void give_up(Errc why) noexcept;

  const Ops* ops_;
  EventLoop* timer_loop_ = nullptr;
  std::coroutine_handle<> continuation_{};
  Resume work_{};
  TimerNode timer_{};
  std::optional<std::stop_callback<StopFn>> stop_;
  std::atomic<std::uint32_t> phase_{0};
  std::atomic<Errc> reason_{Errc{}};
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
///
/// The waiter node lives here, linked into the handle's waiter list while suspended; a completer
/// (notify, unregister) fills the outcome from the node.
class [[nodiscard]] WaitAwaitable : private detail::CoroResumption {
 public:
  ~WaitAwaitable() { abandon(); }

  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept;
  Result<Notification> await_resume() noexcept;

 private:
  friend class Kernel;
  WaitAwaitable(detail::KernelState* kernel, Handle h, Ticket after, bool observe_now,
                WaitOptions options) noexcept;
  static bool withdraw(CoroResumption* base) noexcept;
  static bool settle(CoroResumption* base) noexcept;
  static void on_node_complete(detail::WaitNode* node) noexcept;
  static const Ops kOps;

  detail::KernelState* kernel_;
  Handle handle_;
  Ticket after_;
  bool observe_now_;
  detail::HandleCore* core_ = nullptr;  // while linked: kept alive by unregister's protocol
  detail::WaitNode node_{};
  std::optional<Result<Notification>> outcome_;
};

/// `co_await subscription.recv(opts)` -> Result<Notification>.
///
/// The next buffered notification (at once if one is there), or closed once the handle is
/// unregistered and drained (or the Subscription is destroyed while this waits), timed_out,
/// cancelled, invalid_argument (as for WaitAwaitable). An item that arrives as the receive gives
/// up stays buffered. Resumes on the waiter's executor, never on the notifier's thread.
///
/// While suspended it is parked in the subscription's parker as a waker; a notifier that takes it
/// only resumes it, and the receive pops on its own thread, so nothing is taken from the ring for
/// a receive that then gives up.
class [[nodiscard]] RecvAwaitable : private detail::CoroResumption {
 public:
  ~RecvAwaitable();

  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept;
  Result<Notification> await_resume() noexcept;

 private:
  friend class Subscription;
  RecvAwaitable(detail::SubscriptionRecord* record, WaitOptions options) noexcept;
  static bool withdraw(CoroResumption* base) noexcept;
  static bool settle(CoroResumption* base) noexcept;
  static void on_wake(detail::ParkedWaker* waker) noexcept;
  static const Ops kOps;
  /// Parks in the subscription's parker; false if something (or a reason to give up) is there
  /// already, and then it is not parked.
  bool park() noexcept;
  /// An item, or closed once drained: true with the outcome set; false: keep waiting.
  bool take_from_ring() noexcept;
  /// The Subscription is being destroyed while this waits (on the waiter's executor thread).
  void subscription_gone() noexcept;
  /// Forgets the subscription's note of this receive, if it is still ours.
  void unlist() noexcept;

  detail::SubscriptionRecord* record_;
  detail::ParkedWaker waker_{};
  bool subscription_gone_ = false;  // the Subscription was destroyed (waiter's thread)
  std::optional<Result<Notification>> outcome_;
};

}  // namespace herald
