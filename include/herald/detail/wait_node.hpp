#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "herald/error.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald::detail {

/// One parked wait on a handle. Lives in the waiter's own storage (a blocking caller's stack, a
/// coroutine's awaiter): linking it never allocates.
///
/// Lifecycle: enlisted (linked) under the handle's mutex -> detached by a completer (notify with
/// a seq above `ticket`, or unregister with Errc::closed) or by its owner withdrawing it
/// (timeout, cancellation, frame destruction) -> completed. The completer fills `result`/`error`
/// after detaching and then calls `on_complete`, which ends with the release store of kDone to
/// `state`; after that store the completer touches nothing but the futex address. An owner that
/// finds its node detached but not yet kDone waits for that store (the completer never blocks).
/// A node and a waker are kernel-private; they are here only because awaiters embed them.
struct WaitNode {
  static constexpr std::uint32_t kWaiting = 0;
  static constexpr std::uint32_t kDone = 1;       // bit 0: completed
  static constexpr std::uint32_t kCancelled = 2;  // bit 1: a stop request arrived (blocking waits)

  WaitNode* prev = nullptr;  // under the handle's mutex
  WaitNode* next = nullptr;
  bool linked = false;
  std::uint64_t ticket = 0;
  Notification result{};
  Errc error{};  // Errc{} (0) = success
  std::atomic<std::uint32_t> state{kWaiting};
  void (*on_complete)(WaitNode*) noexcept = nullptr;
  void* context = nullptr;  // the owner's object (a coroutine wait)
};

/// A consumer parked as a callback (a coroutine receive) in its subscription's parker. Lives in
/// the receiver's awaiter. Whoever takes it out of the parker (a notifier that pushed, or the
/// receive's own timer, stop callback or destructor) calls `wake` exactly once.
struct ParkedWaker {
  void (*wake)(ParkedWaker*) noexcept = nullptr;
  void* context = nullptr;  // the owner's object
};

}  // namespace herald::detail
