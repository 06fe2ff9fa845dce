#pragma once

#include <cstdint>

#include "herald/detail/wait_node.hpp"

namespace herald::detail {

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
