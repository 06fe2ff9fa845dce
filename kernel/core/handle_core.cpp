#include "core/handle_core.hpp"

#include <cassert>
#include <cstddef>
#include <cstring>
#include <new>

#include "race_point.hpp"

namespace herald::detail {

std::size_t SubscriberList::footprint(std::uint32_t count) noexcept {
  // `records` is declared with one element; the rest follow it in the same block. The element
  // is a pointer on purpose.  NOLINTNEXTLINE(bugprone-sizeof-expression)
  return sizeof(SubscriberList) + sizeof(SubscriberList::records[0]) * (count == 0 ? 0 : count - 1);
}

SubscriberList* SubscriberList::create(MemoryBudget& budget, std::uint32_t count) noexcept {
  void* p = budget.allocate(footprint(count), alignof(SubscriberList));
  if (p == nullptr) return nullptr;
  auto* list = ::new (p) SubscriberList{};
  list->count = count;
  return list;
}

SubscriberList* SubscriberList::create_shrinking(MemoryBudget& budget,
                                                 std::uint32_t count) noexcept {
  void* p = budget.allocate_shrinking(footprint(count), alignof(SubscriberList));
  if (p == nullptr) return nullptr;
  auto* list = ::new (p) SubscriberList{};
  list->count = count;
  return list;
}

void SubscriberList::destroy(MemoryBudget& budget, SubscriberList* list) noexcept {
  if (list != nullptr) budget.deallocate(list, footprint(list->count));
}

HandleCore::HandleCore(std::uint32_t index, std::uint32_t generation,
                       const HandleOptions& options) noexcept
    : generation_(generation), producers_(options.producers), index_(index), options_(options) {
  // The hot line: everything notify() touches on the handle (PROTOCOLS.md, the ledger). offsetof
  // on a type with a mutex and private members is conditionally supported; g++ and clang++ give
  // the real offsets.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(HandleCore, seq_) % kCacheLine == 0);
  static_assert(offsetof(HandleCore, latest_) + sizeof(LatestCells) - offsetof(HandleCore, seq_) <=
                    kCacheLine,
                "notify()'s fields must share one cache line");
  static_assert(offsetof(HandleCore, index_) - offsetof(HandleCore, seq_) == kCacheLine,
                "the cold fields start on the next line");
  static_assert(offsetof(HandleCore, mutex_) % kCacheLine == 0);
#pragma GCC diagnostic pop
}

HandleCore* HandleCore::create(MemoryBudget& budget, std::uint32_t index, std::uint32_t generation,
                               const HandleOptions& options) noexcept {
  const std::size_t hint = options.debug_hint.size();
  void* p = budget.allocate(sizeof(HandleCore) + hint, alignof(HandleCore));
  if (p == nullptr) return nullptr;
  HandleOptions copy = options;
  if (hint != 0) {
    char* text = static_cast<char*>(p) + sizeof(HandleCore);
    std::memcpy(text, options.debug_hint.data(), hint);
    copy.debug_hint = std::string_view(text, hint);
  }
  return ::new (p) HandleCore(index, generation, copy);
}

void HandleCore::destroy(MemoryBudget& budget, HandleCore* core) noexcept {
  if (core == nullptr) return;
  const std::size_t bytes = sizeof(HandleCore) + core->options_.debug_hint.size();
  core->~HandleCore();
  budget.deallocate(core, bytes);
}

NotifyReceipt HandleCore::notify(std::int64_t arg) noexcept {
  const bool single = producers_ == Producers::single;
  std::uint64_t seq;
  if (single) {
#ifndef NDEBUG
    assert(single_notifier_.exchange(1, std::memory_order_acquire) == 0 &&
           "two threads notified a Producers::single handle at once");
#endif
    seq = seq_.load(std::memory_order_relaxed) + 1;  // only this notifier writes seq_
    // release: observe() (acquire) then sees every write made before this notify().
    seq_.store(seq, std::memory_order_release);
    latest_.publish_single(seq, arg);
  } else {
    // release: observe() (acquire) then sees every write made before this notify(), which the
    // observe -> check -> wait pattern relies on (same instruction as relaxed on x86).
    seq = seq_.fetch_add(1, std::memory_order_release) + 1;
    if (!latest_.publish_multi(seq, arg)) [[unlikely]]
      publish_locked(Notification{seq, arg});
  }
  HERALD_RACE_POINT(
      "notify.published");  // seq taken, latest published, subscriptions not yet pushed
  const Notification n{seq, arg};

  // The counts stay in registers and the receipt is written once, at the end: a caller reading a
  // receipt assembled from narrower stores would stall until the store buffer drained, and with
  // it the stores to ring slots that the consumer's core holds.
  std::uint32_t delivered = 0;
  std::uint32_t dropped = 0;
  // seq_cst: a notify that starts after subscribe() returned sees its ring (with the ReadGuard's
  // announcement, the epoch argument of ReadGuard covers the list's lifetime).
  SubscriberList* subs = subs_.load(std::memory_order_seq_cst);
  if (subs != nullptr) {
    SubscriptionRecord* const* record = subs->records;
    SubscriptionRecord* const* end = record + subs->count;
    for (; record != end; ++record) {
      SubscriptionRing& ring = (*record)->ring;
      const bool stored = single ? ring.push_single(n) : ring.push_multi(n);
      delivered += stored ? 1 : 0;
      dropped += stored ? 0 : 1;
    }
  }

  HERALD_RACE_POINT("notify.pushed");  // pushed, parked waiters/consumers not yet checked
  // seq_cst fence: the Dekker pair of enlist()'s fence and of ConsumerParker::park_*():
  // either they see what we published above, or we see them parked below.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::uint32_t woken = 0;
  if (waiters_.load(std::memory_order_relaxed) != 0) [[unlikely]]
    woken = complete_waiters(n);
  if (subs != nullptr) {
    for (std::uint32_t i = 0; i < subs->count; ++i) subs->records[i]->parker.wake_if_parked();
  }
#ifndef NDEBUG
  if (single) single_notifier_.store(0, std::memory_order_release);
#endif
  return NotifyReceipt{seq, delivered, dropped, woken};
}

void HandleCore::publish_locked(Notification n) noexcept {
  std::lock_guard lock(mutex_);
  if (n.seq > locked_latest_.seq) locked_latest_ = n;
}

bool HandleCore::latest_after_locked(std::uint64_t after, Notification& out) const noexcept {
  bool found = latest_.latest_after(after, out);
  if (locked_latest_.seq > after && (!found || locked_latest_.seq > out.seq)) {
    out = locked_latest_;
    found = true;
  }
  return found;
}

std::uint32_t HandleCore::complete_waiters(Notification n) noexcept {
  WaitChain chain;
  std::uint32_t count = 0;
  {
    std::lock_guard lock(mutex_);
    for (WaitNode* node = waiter_list_.front(); node != nullptr;) {
      WaitNode* next = node->next;
      if (node->ticket < n.seq) {
        waiter_list_.remove(node);
        node->result = n;
        node->error = Errc{};
        chain.append(node);
        ++count;
      }
      node = next;
    }
    waiters_.store(waiter_list_.size(), std::memory_order_relaxed);
  }
  HERALD_RACE_POINT("notify.detached");  // detached from the list, not yet completed
  chain.complete();  // outside the lock: wakes (futex) and posts (executors) cost syscalls
  return count;
}

HandleCore::Enlisted HandleCore::enlist(WaitNode& node) noexcept {
  std::lock_guard lock(mutex_);
  if (closed_) return Enlisted::closed;
  if (latest_after_locked(node.ticket, node.result)) return Enlisted::ready;
  if (waiter_list_.size() >= options_.max_waiters) return Enlisted::limit;
  waiter_list_.push_back(&node);
  waiters_.store(waiter_list_.size(), std::memory_order_relaxed);
  HERALD_RACE_POINT("enlist.linked");  // linked, not yet rechecked
  // seq_cst fence: Dekker with notify()'s fence. Either notify() sees waiters_ != 0 (and will
  // take the mutex after we release it, finding the node), or we now see its publication.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (latest_after_locked(node.ticket, node.result)) {
    waiter_list_.remove(&node);
    waiters_.store(waiter_list_.size(), std::memory_order_relaxed);
    return Enlisted::ready;
  }
  return Enlisted::parked;
}

bool HandleCore::withdraw(WaitNode& node) noexcept {
  std::lock_guard lock(mutex_);
  if (!node.linked) return false;
  waiter_list_.remove(&node);
  waiters_.store(waiter_list_.size(), std::memory_order_relaxed);
  return true;
}

void HandleCore::close_waiters() noexcept {
  WaitChain chain;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    while (WaitNode* node = waiter_list_.front()) {
      waiter_list_.remove(node);
      node->error = Errc::closed;
      chain.append(node);
    }
    waiters_.store(0, std::memory_order_relaxed);
  }
  HERALD_RACE_POINT("close.detached");  // closed and detached, not yet completed
  chain.complete();
}

HandleStats HandleCore::stats() const noexcept {
  HandleStats s{};
  s.notifications = observed();
  s.delivered = retired_delivered_.load(std::memory_order_relaxed);
  s.dropped = retired_dropped_.load(std::memory_order_relaxed);
  if (SubscriberList* subs = subscribers()) {
    s.subscriptions = subs->count;
    for (std::uint32_t i = 0; i < subs->count; ++i) {
      s.delivered += subs->records[i]->ring.delivered();
      s.dropped += subs->records[i]->ring.dropped();
    }
  }
  s.waiters = waiter_count();
  return s;
}

}  // namespace herald::detail
