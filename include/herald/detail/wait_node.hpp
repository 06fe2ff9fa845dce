#pragma once

#include <cstddef>
#include <cstdint>

#include "herald/error.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald::detail {

/// One parked coroutine wait on a handle. Lives in the awaiter: linking it never allocates.
/// (Blocking waits need no node: they count themselves into the handle's eventcount.)
///
/// Lifecycle: enlisted (linked) under the handle's mutex -> detached by a completer (notify with
/// a seq above `ticket`, or unregister with Errc::closed) or by its owner withdrawing it
/// (timeout, cancellation, frame destruction) -> completed. The completer fills `result`/`error`
/// after detaching and then calls `on_complete` (the awaiter's resolution, CoroResumption), after
/// which it touches the node no more.
/// A node and a waker are kernel-private; they are here only because awaiters embed them.
struct WaitNode {
  WaitNode* prev = nullptr;  // under the handle's mutex
  WaitNode* next = nullptr;
  bool linked = false;
  std::uint64_t ticket = 0;
  Notification result{};
  Errc error{};  // Errc{} (0) = success
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
