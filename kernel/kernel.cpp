// The Kernel's public members: control plane (register, unregister, subscribe) and the data-plane
// entry points (notify, observe, stats), which look the handle up inside an epoch read section.

#include <bit>
#include <cassert>
#include <mutex>

#include "herald/kernel.hpp"
#include "kernel_state.hpp"
#include "race_point.hpp"
#include "reclaim/epoch.hpp"

namespace herald {

using detail::HandleCore;
using detail::ReadGuard;
using detail::SubscriberList;
using detail::SubscriptionRecord;

Kernel::Kernel(const KernelOptions& options) : state_(new detail::KernelState(options)) {}

Kernel::~Kernel() { delete state_; }

const KernelOptions& Kernel::options() const noexcept { return state_->options; }

namespace detail {

KernelState::~KernelState() {
  // No notifier may run any more (the owner is destroying the kernel), and by contract no
  // Subscription or pending wait outlives it: free everything that is left.
  while (HandleCore* core = live_head) {
    live_head = core->live_next;
    core->close_waiters();
    core->drain_waiters();
    if (SubscriberList* subs = core->subscribers()) {
      for (std::uint32_t i = 0; i < subs->count; ++i) {
        subs->records[i]->close();
        subs->records[i]->kernel_ref = false;
        release_record(subs->records[i]);
      }
      SubscriberList::destroy(budget, subs);
    }
    HandleCore::destroy(budget, core);
  }
}

void KernelState::unsubscribe(Handle h, SubscriptionRecord* record) noexcept {
  SubscriberList* old_list = nullptr;
  {
    std::lock_guard lock(control);
    HandleCore* core = record->kernel_ref ? table.lookup(h) : nullptr;
    if (core == nullptr) {
      // Detached already, or the handle is being unregistered (unpublished, its grace period
      // running outside the mutex): unregister releases the kernel's reference.
      record->consumer_ref = false;
      release_record(record);
      return;
    }
    old_list = core->subscribers();
    SubscriberList* new_list = nullptr;
    if (old_list->count > 1) {
      // Unsubscribing is never refused by memory_limit: the old, larger list is freed below.
      new_list = SubscriberList::create_shrinking(budget, old_list->count - 1);
      if (new_list == nullptr) {
        // The system allocator itself failed: keep the record attached but abandoned by its
        // consumer; it is freed with the handle, and its pushes keep being counted.
        record->consumer_ref = false;
        return;
      }
      std::uint32_t j = 0;
      for (std::uint32_t i = 0; i < old_list->count; ++i) {
        if (old_list->records[i] != record) new_list->records[j++] = old_list->records[i];
      }
    }
    core->set_subscribers(new_list);
    // The record is off every list: from here only this call references it for the kernel.
  }
  HERALD_RACE_POINT("unsubscribe.unpublished");  // notifiers may still be pushing into it
  // Outside the control mutex: other control-plane calls go on while notifiers drain.
  synchronize_epoch();  // no notify still pushes into `record` or reads `old_list`
  std::lock_guard lock(control);
  // The handle may have been unregistered meanwhile (its final counts did not include this
  // record, which was no longer on its list): the counts then go to the kernel's totals.
  if (HandleCore* core = table.lookup(h)) {
    core->retire_counts(record->ring.delivered(), record->ring.dropped());
  } else {
    retired_delivered.fetch_add(record->ring.delivered(), std::memory_order_relaxed);
    retired_dropped.fetch_add(record->ring.dropped(), std::memory_order_relaxed);
  }
  SubscriberList::destroy(budget, old_list);
  record->kernel_ref = false;
  record->consumer_ref = false;
  release_record(record);
}

}  // namespace detail

Result<Handle> Kernel::register_handle(const HandleOptions& options) {
  detail::KernelState& s = *state_;
  std::lock_guard lock(s.control);
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  if (!s.table.reserve(index, generation)) return Errc::limit_exceeded;
  HandleCore* core = HandleCore::create(s.budget, index, generation, options);
  if (core == nullptr) {
    s.table.unreserve(index);
    return Errc::out_of_memory;
  }
  core->live_next = s.live_head;
  if (s.live_head != nullptr) s.live_head->live_prev = core;
  s.live_head = core;
  ++s.live_count;
  s.table.publish(index, core);
  return Handle::make(index, generation);
}

Result<void> Kernel::unregister_handle(Handle h) {
  detail::KernelState& s = *state_;
  HandleCore* core = nullptr;
  {
    std::lock_guard lock(s.control);
    core = s.table.lookup(h);  // frees happen under `control`: no ReadGuard needed
    if (core == nullptr) return Errc::unknown_handle;
    s.table.unpublish(core->index());  // new lookups fail from here on (and a second unregister)
    HERALD_RACE_POINT("unregister.unpublished");
    core->close_waiters();  // parked waiters complete with closed; no new ones enlist
    if (core->live_prev != nullptr) {
      core->live_prev->live_next = core->live_next;
    } else {
      s.live_head = core->live_next;
    }
    if (core->live_next != nullptr) core->live_next->live_prev = core->live_prev;
    --s.live_count;
    // Unpublished and off the live list: nothing else in the control plane reaches `core` now
    // (subscribe and unsubscribe look it up by handle), so the rest needs the mutex only for the
    // records, the totals and the slot.
  }
  HERALD_RACE_POINT("unregister.waiters_closed");
  // Outside the control mutex: churn on other handles goes on during the grace period.
  detail::synchronize_epoch();  // every notify that found `core` has returned
  core->drain_waiters();        // every waiter still touching `core` has counted itself out

  std::lock_guard lock(s.control);
  // The final counts first: releasing a record below may free it (one whose consumer is gone).
  const HandleStats final_stats = core->stats();
  SubscriberList* subs = core->subscribers();
  if (subs != nullptr) {
    for (std::uint32_t i = 0; i < subs->count; ++i) {
      SubscriptionRecord* record = subs->records[i];
      record->close();  // after the grace period: every push is visible before `closed`
      record->kernel_ref = false;
      s.release_record(record);
    }
  }
  s.retired_notifications.fetch_add(final_stats.notifications, std::memory_order_relaxed);
  s.retired_delivered.fetch_add(final_stats.delivered, std::memory_order_relaxed);
  s.retired_dropped.fetch_add(final_stats.dropped, std::memory_order_relaxed);

  SubscriberList::destroy(s.budget, subs);
  const std::uint32_t index = core->index();
  HandleCore::destroy(s.budget, core);
  s.table.release(index);
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

  // The ring is allocated and initialised outside the control mutex (it is the costly part);
  // the handle's producer mode is read in a read section, where its core is safe to read.
  Producers producers{};
  {
    ReadGuard guard;
    HandleCore* core = s.table.lookup(h);
    if (core == nullptr) return Errc::unknown_handle;
    producers = core->options().producers;
    // The limit before the allocation, so a full handle says limit_exceeded, not out_of_memory
    // (checked again under the mutex: another subscribe may get there first).
    const SubscriberList* list = core->subscribers();
    if ((list == nullptr ? 0 : list->count) >= core->options().max_subscribers)
      return Errc::limit_exceeded;
  }
  SubscriptionRecord* record = SubscriptionRecord::create(s.budget, capacity, options.overflow,
                                                          producers, options.debug_hint);
  if (record == nullptr) return Errc::out_of_memory;

  SubscriberList* old_list = nullptr;
  {
    std::lock_guard lock(s.control);
    HandleCore* core = s.table.lookup(h);
    Errc refused{};
    SubscriberList* new_list = nullptr;
    if (core == nullptr) {
      refused = Errc::unknown_handle;
    } else {
      old_list = core->subscribers();
      const std::uint32_t count = old_list == nullptr ? 0 : old_list->count;
      if (count >= core->options().max_subscribers) {
        refused = Errc::limit_exceeded;
      } else if ((new_list = SubscriberList::create(s.budget, count + 1)) == nullptr) {
        refused = Errc::out_of_memory;
      } else {
        for (std::uint32_t i = 0; i < count; ++i) new_list->records[i] = old_list->records[i];
        new_list->records[count] = record;
        core->set_subscribers(new_list);
      }
    }
    if (refused != Errc{}) {
      SubscriptionRecord::destroy(s.budget, record);
      return refused;
    }
  }
  if (old_list != nullptr) {
    // Outside the control mutex: the replaced list is this call's alone to free.
    detail::synchronize_epoch();  // no notify still iterates `old_list`
    SubscriberList::destroy(s.budget, old_list);
  }
  return Subscription(state_, h, record);
}

Result<NotifyReceipt> Kernel::notify(Handle h, std::int64_t arg) noexcept {
  ReadGuard guard;
  HandleCore* core = state_->table.lookup(h);
  HERALD_RACE_POINT("notify.looked_up");  // looked up: unregister may start now
  if (core == nullptr) [[unlikely]] {
    state_->rejected.fetch_add(1, std::memory_order_relaxed);
    return Errc::unknown_handle;
  }
  return core->notify(arg);
}

Result<Ticket> Kernel::observe(Handle h) const noexcept {
  ReadGuard guard;
  HandleCore* core = state_->table.lookup(h);
  if (core == nullptr) return Errc::unknown_handle;
  return Ticket{core->observed()};
}

Result<HandleStats> Kernel::stats(Handle h) const noexcept {
  ReadGuard guard;
  HandleCore* core = state_->table.lookup(h);
  if (core == nullptr) return Errc::unknown_handle;
  return core->stats();
}

KernelStats Kernel::stats() const noexcept {
  const detail::KernelState& s = *state_;
  KernelStats k{};
  std::lock_guard lock(s.control);  // the live list; rings stay alive while we hold it
  k.live_handles = s.live_count;
  k.notifications = s.retired_notifications.load(std::memory_order_relaxed);
  k.delivered = s.retired_delivered.load(std::memory_order_relaxed);
  k.dropped = s.retired_dropped.load(std::memory_order_relaxed);
  for (const HandleCore* core = s.live_head; core != nullptr; core = core->live_next) {
    const HandleStats h = core->stats();
    k.notifications += h.notifications;
    k.delivered += h.delivered;
    k.dropped += h.dropped;
  }
  k.rejected = s.rejected.load(std::memory_order_relaxed);
  k.memory_used = s.budget.used();
  return k;
}

}  // namespace herald
