// The Kernel's public members: control plane (register, unregister, subscribe) and the data-plane
// entry points (notify, observe, stats), which look the handle up inside an epoch read section.

#include <bit>
#include <cassert>

#include "herald/kernel.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "reclaim/epoch.hpp"

namespace herald {

using detail::HandleCore;
using detail::HandleTable;
using detail::ReadGuard;
using detail::ReadSection;
using detail::SubscriberList;
using detail::SubscriptionRecord;

Kernel::Kernel(const KernelOptions& options) : state_(new detail::KernelState(options)) {}

Kernel::~Kernel() { delete state_; }

const KernelOptions& Kernel::options() const noexcept { return state_->options; }

namespace detail {

KernelState::~KernelState() {
  // No notifier may run any more (the owner is destroying the kernel), and by contract no
  // Subscription or pending wait outlives it: free everything that is left.
  for (RetireShard& shard : retired_) {
    std::size_t bytes = 0;
    destroy_chain(shard.head.exchange(nullptr, std::memory_order_acquire), bytes);
  }
  const std::uint32_t used = table.used_slots();
  for (std::uint32_t i = 0; i < used; ++i) {
    HandleCore* core = table.used_at(i);
    if (core == nullptr) continue;
    core->close_waiters();
    core->drain_waiters();
    if (SubscriberList* subs = core->subscribers()) {
      for (std::uint32_t k = 0; k < subs->count; ++k) {
        subs->records[k]->close();
        release_record(subs->records[k]);
      }
      SubscriberList::destroy(budget, subs);
    }
    HandleCore::destroy(budget, core);
  }
}

void KernelState::retire_core(HandleCore* core) noexcept {
  RetireShard& shard = retired_[thread_shard() % kRetireShards];
  const std::size_t bytes = core->footprint();
  // relaxed: figures only (stats() and the batch trigger); the stack's CAS orders the cores.
  shard.bytes.fetch_add(bytes, std::memory_order_relaxed);
  HandleCore* head = shard.head.load(std::memory_order_relaxed);
  do {
    core->retired_next() = head;
    // release: the taker (acquire exchange) sees the link and the torn-down core.
  } while (!shard.head.compare_exchange_weak(head, core, std::memory_order_release,
                                             std::memory_order_relaxed));
  if (shard.count.fetch_add(1, std::memory_order_relaxed) + 1 >= kRetireBatch) reclaim_shard(shard);
}

bool KernelState::reclaim_shard(RetireShard& shard) noexcept {
  // acquire: pairs with the pushes' release, so every core on the stack is seen torn down.
  HandleCore* batch = shard.head.exchange(nullptr, std::memory_order_acquire);
  if (batch == nullptr) return false;
  // Every read section that could have looked up one of them (each was unpublished before it was
  // retired) has ended after this.
  synchronize_epoch();
  std::size_t bytes = 0;
  const std::size_t count = destroy_chain(batch, bytes);
  shard.count.fetch_sub(count, std::memory_order_relaxed);
  shard.bytes.fetch_sub(bytes, std::memory_order_relaxed);
  return true;
}

std::size_t KernelState::destroy_chain(HandleCore* chain, std::size_t& bytes) noexcept {
  std::size_t count = 0;
  while (chain != nullptr) {
    HandleCore* next = chain->retired_next();
    bytes += chain->footprint();
    ++count;
    HandleCore::destroy(budget, chain);
    chain = next;
  }
  return count;
}

bool KernelState::reclaim_retired() noexcept {
  bool any = false;
  for (RetireShard& shard : retired_) any = reclaim_shard(shard) || any;
  return any;
}

std::size_t KernelState::retired_bytes() const noexcept {
  std::size_t total = 0;
  for (const RetireShard& shard : retired_) total += shard.bytes.load(std::memory_order_relaxed);
  return total;
}

void KernelState::flush_lane(LatestLane& lane) noexcept {
  if (HandleCore* other = table.lookup(Handle::from_raw(lane.owner_handle())))
    other->publish_from_lane(lane.owner_latest());
  // The caller retargets the lane next (its version's release store, after the flush: a
  // gatherer that reads the lane's new contents then sees the flush in the cells).
}

void KernelState::retire(std::uint64_t notifications, std::uint64_t delivered,
                         std::uint64_t dropped) noexcept {
  if (notifications != 0) retired_notifications.fetch_add(notifications, std::memory_order_relaxed);
  if (delivered != 0) retired_delivered.fetch_add(delivered, std::memory_order_relaxed);
  if (dropped != 0) retired_dropped.fetch_add(dropped, std::memory_order_relaxed);
}

void KernelState::unsubscribe(Handle h, SubscriptionRecord* record) noexcept {
  SubscriberList* old_list = nullptr;
  bool detached = false;
  std::uint64_t folded_delivered = 0;
  std::uint64_t folded_dropped = 0;
  {
    // No live core: the handle is unregistered, or being unregistered, and its unregister closes
    // the record and drops the kernel's reference.
    const HandleTable::Locked held = table.lock_live(h);
    if (HandleCore* core = held.core()) {
      old_list = core->subscribers();
      SubscriberList* new_list = nullptr;
      if (old_list->count > 1) {
        // Unsubscribing is never refused by memory_limit: the old, larger list is freed below.
        new_list = SubscriberList::create_shrinking(budget, old_list->count - 1);
        if (new_list == nullptr) {
          // The system allocator itself failed: keep the record attached but abandoned by its
          // consumer; it is freed with the handle, and its pushes keep being counted.
          old_list = nullptr;
        } else {
          std::uint32_t j = 0;
          for (std::uint32_t i = 0; i < old_list->count; ++i) {
            if (old_list->records[i] != record) new_list->records[j++] = old_list->records[i];
          }
          assert(j == new_list->count && "the record is on its handle's list");
        }
      }
      if (old_list != nullptr) {
        core->set_subscribers(new_list);
        core->order_notifiers(false);  // under the lock: the core is alive here
        detached = true;               // off every list: from here only this call references it
        // Its counts so far go to the handle's totals now, with the list change; what
        // notifiers still push during the grace period is added after it.
        folded_delivered = record->ring.delivered();
        folded_dropped = record->ring.dropped();
        core->retire_counts(folded_delivered, folded_dropped);
      }
    }
  }
  if (!detached) {
    release_record(record);  // the consumer's reference; the kernel's goes with the handle
    return;
  }
  HERALD_RACE_POINT("unsubscribe.unpublished");  // notifiers may still be pushing into it
  wait_for_sections();  // no notify still pushes into `record` or reads `old_list`
  // Pushes by notifiers that read the old list before it was replaced. The handle may have been
  // unregistered meanwhile: its final counts then included what was folded above but not these,
  // which go to the kernel's totals instead.
  const std::uint64_t late_delivered = record->ring.delivered() - folded_delivered;
  const std::uint64_t late_dropped = record->ring.dropped() - folded_dropped;
  if (late_delivered != 0 || late_dropped != 0) {
    bool folded = false;
    {
      // Still live: its unregister, which reads the final counts after taking it, comes later.
      const HandleTable::Locked held = table.lock_live(h);
      if (HandleCore* core = held.core()) {
        core->retire_counts(late_delivered, late_dropped);
        folded = true;
      }
    }
    if (!folded) retire(0, late_delivered, late_dropped);
  }
  SubscriberList::destroy(budget, old_list);
  release_record(record);  // the kernel's reference, taken over when it left the list
  release_record(record);  // and the consumer's: the last
}

}  // namespace detail

Result<Handle> Kernel::register_handle(const HandleOptions& options) {
  detail::KernelState& s = *state_;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  if (!s.table.reserve(index, generation)) return Errc::limit_exceeded;
  HandleCore* core = HandleCore::create(s.budget, index, generation, options);
  // Refused for memory_limit while unregistered cores still wait for their grace period: those
  // bytes are not in use, so reclaim them and try once more.
  if (core == nullptr && s.reclaim_retired())
    core = HandleCore::create(s.budget, index, generation, options);
  if (core == nullptr) {
    s.table.unreserve(index);
    return Errc::out_of_memory;
  }
  s.table.publish(index, core);
  return Handle::make(index, generation);
}

Result<void> Kernel::unregister_handle(Handle h) {
  detail::KernelState& s = *state_;
  // Under the slot's lock: a subscribe or unsubscribe that holds it finishes its list change
  // first, and every later one (and a second unregister) finds nothing.
  HandleCore* core = s.table.take(h);
  if (core == nullptr) return Errc::unknown_handle;
  HERALD_RACE_POINT("unregister.unpublished");
  core->close_waiters();  // parked waiters complete with closed; no new ones enlist
  HERALD_RACE_POINT("unregister.waiters_closed");
  // Notifies that got a seq have returned, and later ones are refused (the seq word's closed
  // bit). Control-plane calls reach a core only under its slot's lock, where it is gone now. So
  // only readers that found the core and have not finished looking at it remain (observe, a
  // wait's lookup, a refused notify), and the core's memory waits for them (retire_core()).
  const std::uint64_t final_seq = core->order_notifiers(true);
  detail::wait_for_sections();
  core->drain_waiters();  // every waiter still touching `core` has counted itself out

  // The final counts first: releasing a record below may free it (one whose consumer is gone).
  HandleStats final_stats = core->stats();
  final_stats.notifications = final_seq;  // the word counts refused notifies after the close
  SubscriberList* subs = core->subscribers();
  if (subs != nullptr) {
    for (std::uint32_t i = 0; i < subs->count; ++i) {
      SubscriptionRecord* record = subs->records[i];
      record->close();  // after the grace period: every push is visible before `closed`
      s.release_record(record);
    }
  }
  s.retire(final_stats.notifications, final_stats.delivered, final_stats.dropped);
  SubscriberList::destroy(s.budget, subs);
  const std::uint32_t index = core->index();
  s.table.release(index);  // the slot can take a new core now; this one is never published again
  s.retire_core(core);
  return {};
}

Result<Subscription> Kernel::subscribe(Handle h, const SubscriptionOptions& options) {
  detail::KernelState& s = *state_;
  if (options.capacity == 0 || options.capacity > s.options.max_subscription_capacity)
    return Errc::invalid_argument;
  if (options.overflow != Overflow::drop_newest && options.overflow != Overflow::keep_latest)
    return Errc::invalid_argument;
  // Allowed by max_subscription_capacity, but its power of two (2^32 slots, 64 GiB) cannot be
  // represented or allocated: the same answer as any ring over memory_limit.
  if (options.capacity > (std::uint32_t{1} << 31)) return Errc::out_of_memory;
  const std::uint32_t capacity = std::bit_ceil(options.capacity);

  // The ring is allocated and initialised outside the slot's lock (it is the costly part); the
  // handle's producer mode is read under it, where the core is safe to read.
  Producers producers{};
  {
    const HandleTable::Locked held = s.table.lock_live(h);
    HandleCore* core = held.core();
    if (core == nullptr) return Errc::unknown_handle;
    producers = core->options().producers;
    // The limit before the allocation, so a full handle says limit_exceeded, not out_of_memory
    // (checked again below: another subscribe may get there first).
    const SubscriberList* list = core->subscribers();
    if ((list == nullptr ? 0 : list->count) >= core->options().max_subscribers)
      return Errc::limit_exceeded;
  }
  const auto create_record = [&] {
    return SubscriptionRecord::create(s.budget, capacity, options.overflow, producers,
                                      options.debug_hint);
  };
  SubscriptionRecord* record = create_record();
  // Refused for memory_limit while retired cores hold bytes no longer in use: reclaim, try again.
  if (record == nullptr && s.reclaim_retired()) record = create_record();
  if (record == nullptr) return Errc::out_of_memory;

  SubscriberList* old_list = nullptr;
  for (bool retried = false;; retried = true) {
    HandleTable::Locked held = s.table.lock_live(h);
    HandleCore* core = held.core();
    Errc refused{};
    if (core == nullptr) {
      refused = Errc::unknown_handle;
    } else {
      HERALD_RACE_POINT("subscribe.locked");  // holds the slot's lock: unregister waits for it
      old_list = core->subscribers();
      const std::uint32_t count = old_list == nullptr ? 0 : old_list->count;
      SubscriberList* new_list = nullptr;
      if (count >= core->options().max_subscribers) {
        refused = Errc::limit_exceeded;
      } else if ((new_list = SubscriberList::create(s.budget, count + 1)) == nullptr) {
        refused = Errc::out_of_memory;
      } else {
        for (std::uint32_t i = 0; i < count; ++i) new_list->records[i] = old_list->records[i];
        new_list->records[count] = record;
        core->set_subscribers(new_list);
        if (old_list != nullptr) core->order_notifiers(false);
      }
    }
    if (refused == Errc{}) break;
    // The list's allocation may succeed once retired cores are reclaimed (outside the lock).
    if (refused == Errc::out_of_memory && !retried) {
      held.unlock();
      if (s.reclaim_retired()) continue;
    }
    SubscriptionRecord::destroy(s.budget, record);
    return refused;
  }
  if (old_list != nullptr) {
    // Outside the lock: the replaced list is this call's alone to free.
    detail::wait_for_sections();  // no notify still iterates `old_list`
    SubscriberList::destroy(s.budget, old_list);
  }
  return Subscription(state_, h, record);
}

namespace detail {

namespace {

/// A thread's first notify claims its epoch record.
[[gnu::noinline]] void notify_claiming(KernelState& s, std::uint64_t h, std::int64_t arg,
                                       Result<NotifyReceipt>* out) noexcept {
  claim_epoch_record();
  notify_into(s, h, arg, out);
}

/// A notify whose lane holds another handle (or nothing): flushes what it holds, points it at
/// `h`, leaves the section, and notifies again (the lane then holds `h`).
[[gnu::noinline]] void notify_retargeting(KernelState& s, LatestLane& lane, std::uint64_t h,
                                          std::int64_t arg, ReadSection section,
                                          Result<NotifyReceipt>* out) noexcept {
  if (!lane.owner_empty()) s.flush_lane(lane);
  lane.retarget(h);
  section.leave();
  notify_into(s, h, arg, out);
}

/// A notify on a Producers::single handle (a leaf of its own: the cells' index and tags would
/// take notify_into() beyond the caller-saved registers).
[[gnu::noinline]] void notify_single_producer(HandleCore& core, std::int64_t arg,
                                              std::atomic<std::uint64_t>& rejected,
                                              ReadSection section,
                                              Result<NotifyReceipt>* out) noexcept {
  core.notify<true>(arg, nullptr, rejected, section, out);
}

}  // namespace

// The common path (a live handle, no subscription, no watcher, the lane holding this handle)
// makes no call, and so saves few registers (g++ 12: one): every unusual case ends in a tail call
// that finishes the notify, writes `out` and leaves the read section (notify_claiming(),
// notify_retargeting(), HandleCore::publish_and_deliver(), HandleCore::deliver()). Its stores are
// the section's two, the lane's three and the receipt's; every one is a store the next notify's
// locked instruction waits to drain.
void notify_into(KernelState& s, std::uint64_t h, std::int64_t arg,
                 Result<NotifyReceipt>* out) noexcept {
  EpochRecord* record = t_epoch_record;
  if (record == nullptr) [[unlikely]]
    return notify_claiming(s, h, arg, out);
  const ReadSection section = ReadSection::enter(record);
  LatestLane* lane = s.lanes.of(*record);  // here, so that `record` needs no register after it
  bool single = false;
  HandleCore* core = s.table.lookup_to_notify(Handle::from_raw(h), single);
  HERALD_RACE_POINT("notify.looked_up");  // looked up: unregister may start now
  if (core == nullptr) [[unlikely]] {
    s.rejected.fetch_add(1, std::memory_order_relaxed);
    section.leave();
    ::new (static_cast<void*>(out)) Result<NotifyReceipt>(Errc::unknown_handle);
    return;
  }
  if (single) return notify_single_producer(*core, arg, s.rejected, section, out);
  if (lane != nullptr && lane->owner_handle() != h) [[unlikely]]
    return notify_retargeting(s, *lane, h, arg, section, out);
  core->notify<false>(arg, lane, s.rejected, section, out);
}

}  // namespace detail

Result<Ticket> Kernel::observe(Handle h) const noexcept {
  ReadGuard guard;
  HandleCore* core = state_->table.lookup(h);
  Ticket t{};
  if (core == nullptr || !core->observed(t.seq)) return Errc::unknown_handle;
  return t;
}

Result<HandleStats> Kernel::stats(Handle h) const noexcept {
  // The slot's lock keeps the subscriber list and its records from being replaced and freed.
  const HandleTable::Locked held = state_->table.lock_live(h);
  HandleCore* core = held.core();
  if (core == nullptr) return Errc::unknown_handle;
  return core->stats();
}

KernelStats Kernel::stats() const noexcept {
  const detail::KernelState& s = *state_;
  KernelStats k{};
  // The retired totals before the scan: a handle unregistered during it is then counted at most
  // once (missed by both only while its unregister is still running).
  k.notifications = s.retired_notifications.load(std::memory_order_relaxed);
  k.delivered = s.retired_delivered.load(std::memory_order_relaxed);
  k.dropped = s.retired_dropped.load(std::memory_order_relaxed);
  {
    const std::uint32_t used = s.table.used_slots();
    for (std::uint32_t i = 0; i < used; ++i) {
      // Each slot's lock in turn: its core, list and rings stay allocated while we read them.
      const HandleTable::Locked held = s.table.lock_used_at(i);
      const HandleCore* core = held.core();
      if (core == nullptr) continue;
      const HandleStats h = core->stats();
      ++k.live_handles;
      k.notifications += h.notifications;
      k.delivered += h.delivered;
      k.dropped += h.dropped;
    }
  }
  k.rejected = s.rejected.load(std::memory_order_relaxed);
  // Retired cores are allocated until their batch is reclaimed, but no longer in use, and an
  // allocation refused for memory_limit reclaims them first: they are not counted.
  const std::size_t used = s.budget.used();
  const std::size_t retired = s.retired_bytes();
  k.memory_used = used > retired ? used - retired : 0;
  return k;
}

}  // namespace herald
