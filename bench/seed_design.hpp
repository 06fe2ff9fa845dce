#pragma once

// seed_design: the design herald replaces, ported faithfully to C++ so that every benchmark
// family has it as a baseline in the same binary and run.
//
// One global mutex guards everything. A hash map goes from handle id to an entry holding the
// latest notification, the parked waiters (each a promise the waiter blocks on) and the
// subscribers (each a bounded deque behind that same mutex, plus a condition variable its reader
// sleeps on). notify() locks, bumps the sequence, appends to every subscriber's deque (dropping
// when full), copies the subscriber list and takes the waiter list, unlocks, then wakes: it fulfils
// every promise and signals every subscriber. There are no lock-free paths and no limits beyond
// each deque's bound.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

namespace seed {

struct Notification {
  std::uint64_t seq = 0;
  std::int64_t arg = 0;
};

class Kernel;

/// A subscriber's bounded deque. Every member is guarded by the kernel's one mutex.
class Subscriber {
 public:
  explicit Subscriber(std::size_t capacity) : capacity_(capacity) {}

 private:
  friend class Kernel;
  std::size_t capacity_;
  std::deque<Notification> items_;
  std::uint64_t dropped_ = 0;
  std::condition_variable readable_;
};

class Kernel {
 public:
  using Id = std::uint64_t;

  Id register_handle() {
    std::lock_guard lock(mutex_);
    const Id id = ++next_id_;
    handles_.try_emplace(id);
    return id;
  }

  void unregister_handle(Id id) {
    std::vector<std::shared_ptr<std::promise<Notification>>> waiters;
    {
      std::lock_guard lock(mutex_);
      auto it = handles_.find(id);
      if (it == handles_.end()) return;
      waiters.swap(it->second.waiters);
      handles_.erase(it);
    }
    for (auto& w : waiters) w->set_value(Notification{});  // seq 0: closed
  }

  std::shared_ptr<Subscriber> subscribe(Id id, std::size_t capacity) {
    auto sub = std::make_shared<Subscriber>(capacity);
    std::lock_guard lock(mutex_);
    auto it = handles_.find(id);
    if (it == handles_.end()) return nullptr;
    it->second.subscribers.push_back(sub);
    return sub;
  }

  void unsubscribe(Id id, const std::shared_ptr<Subscriber>& sub) {
    std::lock_guard lock(mutex_);
    auto it = handles_.find(id);
    if (it == handles_.end()) return;
    auto& subs = it->second.subscribers;
    std::erase(subs, sub);
  }

  /// Returns the new sequence number, or 0 for an unknown handle; adds to `*dropped` the
  /// subscribers whose deque was full.
  std::uint64_t notify(Id id, std::int64_t arg, std::size_t* dropped = nullptr) {
    std::vector<std::shared_ptr<Subscriber>> subscribers;
    std::vector<std::shared_ptr<std::promise<Notification>>> waiters;
    Notification n;
    {
      std::lock_guard lock(mutex_);
      auto it = handles_.find(id);
      if (it == handles_.end()) return 0;
      Entry& e = it->second;
      n = Notification{++e.latest.seq, arg};
      e.latest = n;
      for (auto& s : e.subscribers) {
        if (s->items_.size() < s->capacity_) {
          s->items_.push_back(n);
        } else {
          ++s->dropped_;
          if (dropped != nullptr) ++*dropped;
        }
      }
      subscribers = e.subscribers;  // copy the lists, then wake outside the lock
      waiters.swap(e.waiters);
    }
    for (auto& w : waiters) w->set_value(n);
    for (auto& s : subscribers) s->readable_.notify_one();
    return n.seq;
  }

  /// Blocks until the handle's seq passes `after`; returns seq 0 if it is unregistered.
  Notification wait(Id id, std::uint64_t after) {
    std::future<Notification> done;
    {
      std::lock_guard lock(mutex_);
      auto it = handles_.find(id);
      if (it == handles_.end()) return Notification{};
      if (it->second.latest.seq > after) return it->second.latest;
      auto promise = std::make_shared<std::promise<Notification>>();
      done = promise->get_future();
      it->second.waiters.push_back(std::move(promise));
    }
    return done.get();
  }

  /// Moves up to out.size() buffered notifications into `out`.
  std::size_t try_recv_batch(Subscriber& sub, std::span<Notification> out) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    while (n < out.size() && !sub.items_.empty()) {
      out[n++] = sub.items_.front();
      sub.items_.pop_front();
    }
    return n;
  }

  /// Blocks until the subscriber has an item.
  Notification recv(Subscriber& sub) {
    std::unique_lock lock(mutex_);
    sub.readable_.wait(lock, [&] { return !sub.items_.empty(); });
    const Notification n = sub.items_.front();
    sub.items_.pop_front();
    return n;
  }

  std::uint64_t dropped(const Subscriber& sub) {
    std::lock_guard lock(mutex_);
    return sub.dropped_;
  }

 private:
  struct Entry {
    Notification latest;
    std::vector<std::shared_ptr<std::promise<Notification>>> waiters;
    std::vector<std::shared_ptr<Subscriber>> subscribers;
  };

  std::mutex mutex_;
  std::unordered_map<Id, Entry> handles_;
  Id next_id_ = 0;
};

}  // namespace seed
