#include "core/handle_core.hpp"

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <new>
#include <thread>

#include "race_point.hpp"
#include "wait/futex.hpp"
#include "wait/spin.hpp"
#include "wait/waiter_list.hpp"

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
    : hot_generation_(generation), generation_(generation), index_(index), options_(options) {
  // The hot line: everything notify() writes on the handle, and what it reads after its
  // fetch_add; the cold line, next, starts with what it reads before (PROTOCOLS.md, the ledger).
  // offsetof on a type with a mutex and private members is conditionally supported; g++ and
  // clang++ give the real offsets.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(HandleCore, seq_) % kCacheLine == 0);
  static_assert(
      offsetof(HandleCore, hot_generation_) + sizeof(std::uint32_t) - offsetof(HandleCore, seq_) <=
          kCacheLine,
      "notify()'s fields must share one cache line");
  static_assert(offsetof(HandleCore, generation_) - offsetof(HandleCore, seq_) == kCacheLine,
                "the cold fields start on the next line");
  static_assert(offsetof(HandleCore, coro_head_) % kCacheLine == 0);
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
  const std::size_t bytes = core->footprint();
  core->~HandleCore();
  budget.deallocate(core, bytes);
}

void HandleCore::publish_and_deliver(std::uint64_t old, std::int64_t arg, LatestLane* lane,
                                     ReadSection section, Result<NotifyReceipt>* out) noexcept {
  const std::uint64_t seq = (old & kSeqMask) + 1;
  if (!latest_.publish_multi(seq, arg)) [[unlikely]]
    publish_locked(Notification{seq, arg});
  // Its contents were flushed or gathered already; emptied, the lane is not flushed again.
  if (lane != nullptr && !lane->owner_empty()) [[unlikely]]
    lane->clear();
  HERALD_RACE_POINT("notify.published");          // latest published, subscriptions not yet pushed
  if ((old & (kSeqListed | kSeqWatched)) == 0) {  // as in notify()
    section.leave();
    ::new (static_cast<void*>(out)) Result<NotifyReceipt>(std::in_place, seq, 0U, 0U, 0U);
    return;
  }
  deliver<false>(old, arg, section, out);
}

void HandleCore::watch_slow(const LatestLanes& lanes) noexcept {
  std::uint64_t w = seq_.load(std::memory_order_acquire);
  if ((w & kSeqWatched) == 0) {
    // acq_rel: in the RMW order of seq_, every notify before it published (or will publish)
    // without checking for waiters; every notify after it sees the bit.
    w = seq_.fetch_or(kSeqWatched, std::memory_order_acq_rel);
    if ((w & kSeqWatched) == 0) {
      HERALD_RACE_POINT("watch.marked");  // notifies before the mark may still be publishing
      // The notifies that did not see the mark hold seqs up to `last`. Wait until one of them
      // at least as new is published somewhere (its notifier is a few instructions from
      // publishing, or it was overtaken by a newer one), and put the newest found in the cells.
      // A waiter whose ticket is below `last` then finds it there; notifies after the mark
      // check for waiters as before.
      if ((w & kSeqClosed) != 0) return;  // being unregistered: every wait is refused
      const std::uint64_t last = w & kSeqMask;
      const std::uint64_t me = handle().raw();
      for (unsigned round = 0; last != 0; ++round) {
        Notification best{};
        bool from_lane = false;
        const std::uint32_t used = lanes.used();
        for (std::uint32_t i = 0; i < used; ++i) {
          std::uint64_t h = 0;
          Notification n{};
          // A lane being written is read on the next round if needed.
          if (lanes.at(i).read(h, n) && h == me && n.seq > best.seq) {
            best = n;
            from_lane = true;
          }
        }
        // The cells after the lanes: a lane that moved to another handle was flushed to the
        // cells first (release, then the lane's release; our acquire of the lane saw that).
        Notification c{};
        if (latest_after_anywhere(best.seq, c)) {
          best = c;
          from_lane = false;
        }
        if (best.seq >= last) {
          if (from_lane) publish_from_lane(best);
          break;
        }
        spin_backoff(round);
      }
      // release: a waiter that sees the bit (acquire) sees the cells published above.
      seq_.fetch_or(kSeqReady, std::memory_order_release);
      return;
    }
  }
  // Another waiter is gathering: wait for it (a few notifies' publishing, at most), or for the
  // close, after which every wait is refused anyway.
  for (unsigned round = 0; (w & (kSeqReady | kSeqClosed)) == 0; ++round) {
    spin_backoff(round);
    w = seq_.load(std::memory_order_acquire);
  }
}

void HandleCore::publish_locked(Notification n) noexcept {
  std::lock_guard lock(mutex_);
  if (n.seq > locked_latest_.seq) locked_latest_ = n;
  // relaxed: notify()'s fence orders it before the load of `wake_`; a blocking waiter that
  // reads it takes the mutex, which publishes locked_latest_.
  locked_used_.store(true, std::memory_order_relaxed);
}

bool HandleCore::latest_after_anywhere(std::uint64_t after, Notification& out) const noexcept {
  if (latest_.latest_after(after, out)) return true;
  if (!locked_used_.load(std::memory_order_relaxed)) return false;  // after the caller's fence
  std::lock_guard lock(mutex_);
  return latest_after_locked(after, out);
}

bool HandleCore::latest_after_locked(std::uint64_t after, Notification& out) const noexcept {
  bool found = latest_.latest_after(after, out);
  if (locked_latest_.seq > after && (!found || locked_latest_.seq > out.seq)) {
    out = locked_latest_;
    found = true;
  }
  return found;
}

std::uint32_t HandleCore::wake_waiters(Notification n, std::uint64_t w) noexcept {
  std::uint32_t woken = 0;
  if (blocking_count(w) != 0) {
    // Every sleeper wakes to recheck its ticket; one syscall however many there are.
    bump_epoch();
    woken += blocking_count(w);
  }
  if (coro_count(w) != 0) woken += sweep(n, false);
  return woken;
}

void HandleCore::bump_epoch() noexcept {
  // release: a blocking waiter that reads the new epoch (acquire, wake_word()) then sees what
  // this thread published before: the latest cells, or the closed bit.
  wake_.fetch_add(kEpochOne, std::memory_order_release);
  futex_wake_all(epoch_address());
}

// The two 32-bit halves of `wake_` are futex words of their own: the epoch (blocking waiters sleep
// on it) and the counts (drain_waiters() sleeps on it).
static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8);

const void* HandleCore::epoch_address() const noexcept {
  const auto* halves = reinterpret_cast<const std::uint32_t*>(&wake_);
  return std::endian::native == std::endian::little ? halves + 1 : halves;
}

const void* HandleCore::counts_address() const noexcept {
  const auto* halves = reinterpret_cast<const std::uint32_t*>(&wake_);
  return std::endian::native == std::endian::little ? halves : halves + 1;
}

void HandleCore::push_chain(WaitNode* first, WaitNode* last) noexcept {
  WaitNode* head = coro_head_.load(std::memory_order_relaxed);
  do {
    last->next = head;
    // seq_cst: in S before the pusher's fence and recheck, after a close's exchange it follows
    // (PROTOCOLS.md §3); release publishes the nodes' fields to the detacher's exchange.
  } while (!coro_head_.compare_exchange_weak(head, first, std::memory_order_seq_cst,
                                             std::memory_order_relaxed));
}

std::uint32_t HandleCore::sweep(Notification n, bool closing, WaitNode* withdrawing,
                                bool* found) noexcept {
  WaitChain done;
  std::uint32_t completed = 0;
  for (;;) {
    // seq_cst: exclusive ownership of every node on the list (acquire: their fields).
    WaitNode* list = coro_head_.exchange(nullptr, std::memory_order_seq_cst);
    HERALD_RACE_POINT("waiters.held");  // the whole list held here: a notifier finds it empty
    WaitNode* keep_first = nullptr;
    WaitNode* keep_last = nullptr;
    std::uint64_t min_ticket = ~std::uint64_t{0};
    std::uint32_t claimed = 0;
    while (list != nullptr) {
      WaitNode* node = list;
      list = node->next;  // read first: a dropped node may vanish once released
      if (node == withdrawing) {
        *found = true;
        continue;
      }
      if (closing || node->ticket < n.seq) {
        std::uint32_t expected = WaitNode::kWaiting;
        // acq_rel: one claim per node, against its owner's withdrawal.
        if (node->claim.compare_exchange_strong(expected, WaitNode::kClaimed,
                                                std::memory_order_acq_rel)) {
          if (closing) {
            node->error = Errc::closed;
          } else {
            node->result = n;
            node->error = Errc{};
          }
          done.append(node);
          ++claimed;
          continue;
        }
      } else if (node->claim.load(std::memory_order_acquire) == WaitNode::kWaiting) {
        node->next = keep_first;
        if (keep_first == nullptr) keep_last = node;
        keep_first = node;
        if (node->ticket < min_ticket) min_ticket = node->ticket;
        continue;
      }
      // Withdrawn by its owner, who waits for this before its node may vanish (release: our
      // reads of the node happen before that).
      node->released.store(true, std::memory_order_release);
    }
    if (claimed != 0) count_out(claimed * kCoroOne);
    completed += claimed;
    if (keep_first == nullptr) break;
    push_chain(keep_first, keep_last);
    HERALD_RACE_POINT("waiters.relinked");  // relinked, not yet rechecked
    // seq_cst fence: Dekker with a notifier (publish; fence; detach) and with a close (fetch_or;
    // exchange): either it finds the relinked nodes, or this recheck sees what it published.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if ((wake_.load(std::memory_order_relaxed) & kClosed) != 0) {
      closing = true;
      continue;
    }
    Notification latest{};
    if (latest_after_anywhere(min_ticket, latest)) {
      n = latest;  // a notifier may have found the list empty while we held these
      continue;
    }
    break;
  }
  HERALD_RACE_POINT("waiters.detached");  // claimed and detached, not yet completed
  done.complete();                        // posts to executors may cost syscalls; no lock is held
  return completed;
}

HandleCore::Enlisted HandleCore::enlist(WaitNode& node) noexcept {
  assert((seq_.load(std::memory_order_relaxed) & (kSeqReady | kSeqClosed)) != 0 &&
         "a wait enlists after watch()");
  std::uint64_t w = wake_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & kClosed) != 0) return Enlisted::closed;
    if (latest_after_anywhere(node.ticket, node.result)) return Enlisted::ready;
    if (coro_count(w) >= kCoroMax || blocking_count(w) + coro_count(w) >= options_.max_waiters)
      return Enlisted::limit;
    // seq_cst: the count is in S before close_waiters()'s fetch_or of kClosed, or sees it.
    if (wake_.compare_exchange_weak(w, w + kCoroOne, std::memory_order_seq_cst,
                                    std::memory_order_relaxed))
      break;
  }
  node.claim.store(WaitNode::kWaiting, std::memory_order_relaxed);
  node.released.store(false, std::memory_order_relaxed);
  push_chain(&node, &node);
  HERALD_RACE_POINT("enlist.linked");  // linked, not yet rechecked
  // seq_cst fence: Dekker with notify()'s fence. Either notify() sees the count (and detaches
  // the list after we linked), or we now see its publication; likewise with a close.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const bool closing = (wake_.load(std::memory_order_relaxed) & kClosed) != 0;
  Notification n{};
  // Found something the notifier (or the close) may have missed us for: complete what it
  // satisfies, ourselves included (through on_complete, before our caller suspends).
  if (closing || latest_after_anywhere(node.ticket, n)) sweep(n, closing);
  return Enlisted::parked;
}

bool HandleCore::withdraw(WaitNode& node) noexcept {
  std::uint32_t expected = WaitNode::kWaiting;
  // acq_rel: one claim per node, against the completers' claims.
  if (!node.claim.compare_exchange_strong(expected, WaitNode::kWithdrawn,
                                          std::memory_order_acq_rel)) {
    return false;  // a completer claimed it and completes it
  }
  // Ours again, but still linked or held by a detacher: unlink it ourselves, or wait for the
  // detacher that holds it to drop it (it never blocks; it relinks only nodes still waiting).
  for (;;) {
    bool found = false;
    sweep(Notification{}, false, &node, &found);
    // acquire: pairs with the dropper's release; it no longer touches the node.
    if (found || node.released.load(std::memory_order_acquire)) break;
    // Held by a detacher: wait until it drops the node or relinks what it held.
    while (!node.released.load(std::memory_order_acquire) &&
           coro_head_.load(std::memory_order_relaxed) == nullptr) {
      std::this_thread::yield();
    }
  }
  // Our last touch of the HandleCore: an unregister may have skipped our read section (it began
  // after its grace period started), so what keeps the memory alive is this count, which it
  // drains before freeing (PROTOCOLS.md §3).
  count_out(kCoroOne);
  return true;
}

HandleCore::Enlisted HandleCore::enter_blocking(std::uint64_t ticket, Notification& out,
                                                std::uint32_t& epoch) noexcept {
  assert((seq_.load(std::memory_order_relaxed) & (kSeqReady | kSeqClosed)) != 0 &&
         "a wait enlists after watch()");
  std::uint64_t w = wake_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & kClosed) != 0) return Enlisted::closed;
    if (blocking_count(w) >= kBlockingMax ||
        blocking_count(w) + coro_count(w) >= options_.max_waiters)
      return Enlisted::limit;
    // seq_cst: the count is in S before close_waiters()'s fetch_or of kClosed, or sees it.
    if (wake_.compare_exchange_weak(w, w + kBlockingOne, std::memory_order_seq_cst,
                                    std::memory_order_relaxed))
      break;
  }
  HERALD_RACE_POINT("blocking.counted");  // counted, not yet rechecked
  // seq_cst fence: Dekker with notify()'s fence. Either notify() sees the count and bumps the
  // epoch after `w` (so the sleep below returns at once), or we now see its publication.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (latest_after_anywhere(ticket, out)) {
    leave_blocking();
    return Enlisted::ready;
  }
  epoch = epoch_of(w);
  return Enlisted::parked;
}

bool HandleCore::sleep_blocking(std::uint32_t epoch,
                                std::chrono::steady_clock::time_point deadline) noexcept {
  return futex_wait_at(epoch_address(), epoch, deadline);
}

void HandleCore::wake_blocking() noexcept { bump_epoch(); }

void HandleCore::leave_blocking() noexcept { count_out(kBlockingOne); }

void HandleCore::count_out(std::uint64_t amount) noexcept {
  // release: every access the leaving waiter made to the HandleCore happens before
  // drain_waiters()'s acquire load that sees the count drop, and so before the free.
  const std::uint64_t w = wake_.fetch_sub(amount, std::memory_order_release);
  // The last one out of a closed handle wakes drain_waiters(); by address only, as the memory
  // may be freed as soon as the count is zero.
  if ((w & kClosed) != 0 && (w & kWaiterMask) == amount) futex_wake_all(counts_address());
}

void HandleCore::close_waiters() noexcept {
  // seq_cst: a waiter's counting CAS either precedes this in S (and is counted in `w`) or sees
  // kClosed; a coroutine node linked after the sweep's exchange is found by its own recheck.
  const std::uint64_t w = wake_.fetch_or(kClosed, std::memory_order_seq_cst);
  if (blocking_count(w) != 0) bump_epoch();  // every sleeper wakes and finds kClosed
  HERALD_RACE_POINT("close.marked");         // closed, coroutine waits not yet detached
  sweep(Notification{}, true);               // every coroutine wait completes with closed
}

void HandleCore::drain_waiters() noexcept {
  for (;;) {
    // acquire: pairs with count_out()'s release (the waiter is done with this HandleCore).
    const std::uint64_t w = wake_.load(std::memory_order_acquire);
    if ((w & kWaiterMask) == 0) return;
    futex_wait_at(counts_address(), static_cast<std::uint32_t>(w),
                  std::chrono::steady_clock::time_point::max());
  }
}

HandleStats HandleCore::stats() const noexcept {
  HandleStats s{};
  s.notifications = seq_.load(std::memory_order_acquire) & kSeqMask;
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
