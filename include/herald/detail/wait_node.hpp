#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "herald/error.hpp"
#include "herald/options.hpp"
#include "herald/records.hpp"

namespace herald::detail {

/// One parked coroutine wait on a handle. Lives in the awaiter: linking it never allocates.
/// (Blocking waits need no node: they count themselves into the handle's eventcount.)
///
/// Lifecycle (PROTOCOLS.md §3): pushed on the handle's lock-free list -> claimed exactly once,
/// by a completer (`claim` kWaiting -> kClaimed: a notify above `ticket`, or unregister with
/// Errc::closed) or by its owner withdrawing it (kWaiting -> kWithdrawn: timeout, cancellation,
/// destruction). Whoever detaches the list owns the nodes it holds until it relinks them; a
/// claimed node is completed (`on_complete`, after which the completer touches it no more); a
/// withdrawn node is dropped, and `released` tells its owner that the dropper is done with it.
/// A node and a waker are kernel-private; they are here only because awaiters embed them.
struct WaitNode {
  static constexpr std::uint32_t kWaiting = 0;
  static constexpr std::uint32_t kClaimed = 1;
  static constexpr std::uint32_t kWithdrawn = 2;

  WaitNode* next = nullptr;  // the list link, written by whoever links the node
  std::uint64_t ticket = 0;
  Notification result{};
  Errc error{};  // Errc{} (0) = success
  std::atomic<std::uint32_t> claim{kWaiting};
  std::atomic<bool> released{false};
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
