#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "herald/error.hpp"
#include "herald/options.hpp"

namespace herald::detail {

/// One parked wait on a handle. Lives in the waiter's own storage (a blocking caller's stack, a
/// coroutine's awaiter): linking it never allocates.
///
/// Lifecycle: enlisted (linked) under the handle's mutex -> detached by a completer (notify with a
/// seq above `ticket`, or unregister with Errc::closed) or by its owner withdrawing it (timeout,
/// cancellation, frame destruction) -> completed. The completer fills `result`/`error` after
/// detaching and then calls `on_complete`, which ends with the release store of kDone to `state`;
/// after that store the completer touches nothing but the futex address. An owner that finds its
/// node detached but not yet kDone waits for that store (the completer never blocks).
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

/// The handle's parked waiters, guarded by the handle's mutex. Intrusive, FIFO.
class WaiterList {
 public:
  void push_back(WaitNode* n) noexcept {
    n->prev = tail_;
    n->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
    n->linked = true;
    ++size_;
  }
  void remove(WaitNode* n) noexcept {
    if (n->prev != nullptr) {
      n->prev->next = n->next;
    } else {
      head_ = n->next;
    }
    if (n->next != nullptr) {
      n->next->prev = n->prev;
    } else {
      tail_ = n->prev;
    }
    n->prev = n->next = nullptr;
    n->linked = false;
    --size_;
  }
  WaitNode* front() const noexcept { return head_; }
  std::uint32_t size() const noexcept { return size_; }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  std::uint32_t size_ = 0;
};

/// Nodes a completer has detached (under the handle's mutex), linked through `next`, to be
/// completed after the mutex is released.
class WaitChain {
 public:
  void append(WaitNode* n) noexcept {
    n->next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = n;
    tail_ = n;
  }
  /// Calls every node's on_complete; a node may vanish as soon as its own call returns.
  void complete() noexcept {
    for (WaitNode* n = head_; n != nullptr;) {
      WaitNode* next = n->next;  // read first: `n` may be gone after on_complete
      n->on_complete(n);
      n = next;
    }
  }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
};

}  // namespace herald::detail
