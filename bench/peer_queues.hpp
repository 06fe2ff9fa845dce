#pragma once

// The bounded multi-producer queues the notify_mpsc and scale/delivered families compare: each
// takes the number of producer threads, push(thread, v) returns false when the queue refuses
// (full), drain(out) takes up to out.size() items.

#include <concurrentqueue/concurrentqueue.h>
#include <tbb/concurrent_queue.h>
#include <herald/herald.hpp>

#include <array>
#include <boost/lockfree/queue.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "bench_support.hpp"
#include "seed_design.hpp"

namespace herald_bench::peers {

using herald::Notification;

struct HeraldQueue {
  explicit HeraldQueue(unsigned /*producers*/) {}
  herald::Kernel kernel;
  herald::Handle h = kernel.register_handle({.producers = herald::Producers::multi}).value();
  herald::Subscription sub = kernel.subscribe(h, {.capacity = kCapacity}).value();
  bool push(int /*thread*/, std::int64_t v) { return kernel.notify(h, v)->delivered != 0; }
  std::size_t drain(std::span<Notification> out) { return sub.try_recv_batch(out); }
};

struct BoostQueue {
  explicit BoostQueue(unsigned /*producers*/) {}
  boost::lockfree::queue<Notification, boost::lockfree::capacity<kCapacity>> queue;
  bool push(int /*thread*/, std::int64_t v) {
    return queue.bounded_push(Notification{static_cast<std::uint64_t>(v), v});
  }
  std::size_t drain(std::span<Notification> out) {
    std::size_t n = 0;
    while (n < out.size() && queue.pop(out[n])) ++n;
    return n;
  }
};

struct MoodycamelQueue {
  /// A producer token per notifier thread, made up front.
  explicit MoodycamelQueue(unsigned producers) : queue(kCapacity, producers, 0) {
    tokens.reserve(producers);
    for (unsigned i = 0; i < producers; ++i) tokens.emplace_back(queue);
    // An explicit producer keeps every block it ever takes from the preallocated pool, so one
    // that runs ahead can take them all and leave another's try_enqueue failing for good. Each
    // token first fills its share (and the queue is drained), so every producer owns blocks.
    const std::size_t share = kCapacity / producers;
    for (auto& token : tokens) {
      for (std::size_t i = 0; i < share; ++i) {
        if (!queue.try_enqueue(token, Notification{})) break;
      }
    }
    Notification sink[64];
    while (queue.try_dequeue_bulk(sink, 64) != 0) {
    }
  }
  moodycamel::ConcurrentQueue<Notification> queue;
  std::vector<moodycamel::ProducerToken> tokens;
  bool push(int thread, std::int64_t v) {
    return queue.try_enqueue(tokens[static_cast<std::size_t>(thread)],
                             Notification{static_cast<std::uint64_t>(v), v});
  }
  std::size_t drain(std::span<Notification> out) {
    return queue.try_dequeue_bulk(out.data(), out.size());
  }
};

struct TbbQueue {
  tbb::concurrent_bounded_queue<Notification> queue;
  explicit TbbQueue(unsigned /*producers*/) { queue.set_capacity(kCapacity); }
  bool push(int /*thread*/, std::int64_t v) {
    return queue.try_push(Notification{static_cast<std::uint64_t>(v), v});
  }
  std::size_t drain(std::span<Notification> out) {
    std::size_t n = 0;
    while (n < out.size() && queue.try_pop(out[n])) ++n;
    return n;
  }
};

struct MutexDeque {
  explicit MutexDeque(unsigned /*producers*/) {}
  std::mutex mutex;
  std::deque<Notification> queue;
  bool push(int /*thread*/, std::int64_t v) {
    std::lock_guard lock(mutex);
    if (queue.size() >= kCapacity) return false;
    queue.push_back(Notification{static_cast<std::uint64_t>(v), v});
    return true;
  }
  std::size_t drain(std::span<Notification> out) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (; n < out.size() && !queue.empty(); ++n) {
      out[n] = queue.front();
      queue.pop_front();
    }
    return n;
  }
};

struct SeedQueue {
  explicit SeedQueue(unsigned /*producers*/) {}
  seed::Kernel kernel;
  seed::Kernel::Id h = kernel.register_handle();
  std::shared_ptr<seed::Subscriber> sub = kernel.subscribe(h, kCapacity);
  std::array<seed::Notification, kDrainBatch> buf{};
  bool push(int /*thread*/, std::int64_t v) {
    std::size_t dropped = 0;
    kernel.notify(h, v, &dropped);
    return dropped == 0;
  }
  std::size_t drain(std::span<Notification> /*out*/) { return kernel.try_recv_batch(*sub, buf); }
};

}  // namespace herald_bench::peers
