#pragma once

#include <cstdint>

#include "herald/detail/wait_node.hpp"

namespace herald::detail {

/// Nodes a completer has claimed, linked through `next`, to be completed once it has finished
/// with the handle's list.
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
