// Kernel::wait_blocking: the lock-free fast path, a spin, then the handle's eventcount: count in,
// recheck, sleep on the wake epoch (PROTOCOLS.md §3).

#include <optional>
#include <stop_token>

#include "herald/kernel.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "reclaim/epoch.hpp"
#include "wait/futex.hpp"
#include "wait/spin.hpp"

namespace herald {
namespace {

using detail::HandleCore;
using detail::ReadGuard;

/// A stop request wakes the sleeper by bumping the handle's wake epoch: a sleep that has not yet
/// begun then returns at once (every other sleeper on the handle rechecks and sleeps again).
struct StopWake {
  std::atomic<bool>* stopped;
  HandleCore* core;  // kept allocated by the waiter's count until after this callback is gone
  void operator()() const noexcept {
    // release, before the bump: a waiter that sees the bumped epoch (acquire) sees the flag.
    stopped->store(true, std::memory_order_release);
    core->wake_blocking();
  }
};

}  // namespace

Result<Notification> Kernel::wait_blocking(Handle h, Ticket after, WaitOptions options) noexcept {
  if (options.stop != nullptr && options.stop->stop_requested()) return Errc::cancelled;
  const auto deadline = detail::deadline_after(options.timeout);

  HandleCore* core = nullptr;
  {
    ReadGuard guard;
    core = state_->table.lookup(h);
    if (core == nullptr) return Errc::unknown_handle;
    core->watch(state_->lanes);  // from here notifies publish in the cells and check for waiters
    Notification ready{};
    if (core->latest_after(after.seq, ready)) return ready;  // lock-free fast path
  }
  if (options.timeout > std::chrono::nanoseconds::zero()) {
    // Spin before parking. Each poll is its own read section, so the spin never holds back
    // reclamation for longer than one poll; a handle unregistered meanwhile is reported below.
    Notification ready{};
    const bool got = detail::spin_before_park(
        [&] {
          ReadGuard guard;
          HandleCore* c = state_->table.lookup(h);
          return c != nullptr && c->latest_after(after.seq, ready);
        },
        [&] { return options.stop != nullptr && options.stop->stop_requested(); }, deadline);
    if (got) return ready;
  }
  std::uint32_t epoch = 0;
  {
    ReadGuard guard;
    core = state_->table.lookup(h);
    if (core == nullptr) return Errc::unknown_handle;
    Notification ready{};
    switch (core->enter_blocking(after.seq, ready, epoch)) {
      case HandleCore::Enlisted::ready:
        return ready;
      case HandleCore::Enlisted::closed:
        return Errc::closed;
      case HandleCore::Enlisted::limit:
        return Errc::limit_exceeded;
      case HandleCore::Enlisted::parked:
        break;
    }
  }

  // Counted in: `core` stays allocated until leave_blocking() (unregister drains the count before
  // it frees), so it is used here outside any read section.
  Result<Notification> result = Errc::timed_out;
  {
    std::atomic<bool> stopped{false};
    std::optional<std::stop_callback<StopWake>> on_stop;
    if (options.stop != nullptr) on_stop.emplace(*options.stop, StopWake{&stopped, core});
    for (;;) {
      const bool in_time = core->sleep_blocking(epoch, deadline);
      HERALD_RACE_POINT("blocking.woken");  // woken, timed out or spurious: not yet rechecked
      // The epoch first: a notify after the checks below bumps it past `epoch`, so the next sleep
      // returns at once.
      const std::uint64_t w = core->wake_word();
      epoch = HandleCore::epoch_of(w);
      Notification ready{};
      if (core->latest_after_anywhere(after.seq, ready)) {
        result = ready;
        break;
      }
      if ((w & HandleCore::kClosed) != 0) {
        result = Errc::closed;
        break;
      }
      // acquire: pairs with StopWake's release (the flag may have been set without a bump yet).
      if (stopped.load(std::memory_order_acquire)) {
        result = Errc::cancelled;
        break;
      }
      if (!in_time || detail::Clock::now() >= deadline) break;  // timed_out
    }
  }  // the stop callback is gone (or finished) before the count is released
  core->leave_blocking();
  return result;
}

}  // namespace herald
