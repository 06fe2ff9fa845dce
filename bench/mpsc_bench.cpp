// notify_mpsc/<impl>: two notifier threads (Google Benchmark threads, CPUs 0 and 1) push into one
// bounded queue of kCapacity that a third thread drains, yielding when it finds nothing. With two
// CPUs the three threads share them, identically for every implementation. A notifier whose push
// is refused (queue full) yields, as a client of a bounded queue backs off. items/s counts the
// pushes accepted from both notifiers; `dropped%` the share of attempts refused.
//
// Peers: boost::lockfree::queue, moodycamel::ConcurrentQueue (a producer token per notifier),
// oneTBB concurrent_bounded_queue, std::mutex + std::deque, seed_design, and herald (a
// Producers::multi handle with one subscription).
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <tbb/concurrent_queue.h>
#include <herald/herald.hpp>

#include <array>
#include <boost/lockfree/queue.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "bench_support.hpp"
#include "seed_design.hpp"

namespace {

using herald::Notification;
using herald_bench::kCapacity;
using herald_bench::kDrainBatch;

struct HeraldQueue {
  herald::Kernel kernel;
  herald::Handle h = kernel.register_handle({.producers = herald::Producers::multi}).value();
  herald::Subscription sub = kernel.subscribe(h, {.capacity = kCapacity}).value();
  bool push(int /*thread*/, std::int64_t v) { return kernel.notify(h, v)->delivered != 0; }
  std::size_t drain(std::span<Notification> out) { return sub.try_recv_batch(out); }
};

struct BoostQueue {
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
  moodycamel::ConcurrentQueue<Notification> queue{kCapacity, 2, 0};
  std::array<moodycamel::ProducerToken, 2> tokens{moodycamel::ProducerToken(queue),
                                                  moodycamel::ProducerToken(queue)};
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
  TbbQueue() { queue.set_capacity(kCapacity); }
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

/// The queue and its consumer, created by thread 0 before the timed loop; Google Benchmark's
/// start and stop barriers order the other thread's use between them.
template <class Queue>
struct Shared {
  Queue queue;
  herald_bench::Drainer consumer{
      [this, buf = std::array<Notification, kDrainBatch>{}]() mutable { return queue.drain(buf); },
      /*polite=*/true};
};

template <class Queue>
void notify_mpsc(benchmark::State& state) {
  static std::optional<Shared<Queue>> shared;
  const int thread = state.thread_index();
  if (thread == 0) shared.emplace();
  herald_bench::pin_to_cpu(static_cast<unsigned>(thread));
  std::uint64_t refused = 0;
  std::int64_t v = 0;
  for (auto _ : state) {
    if (!shared->queue.push(thread, ++v)) {
      ++refused;
      std::this_thread::yield();
    }
  }
  herald_bench::unpin();
  if (thread == 0) {
    shared->consumer.stop();
  }
  state.SetItemsProcessed(state.iterations() - static_cast<std::int64_t>(refused));
  // Averaged over the two threads by Google Benchmark: percent of all attempts.
  state.counters["dropped%"] = benchmark::Counter(
      100.0 * static_cast<double>(refused) / static_cast<double>(state.iterations()),
      benchmark::Counter::kAvgThreads);
  // Past the stop barrier the other thread no longer touches the queue.
  if (thread == 0) shared.reset();
}

}  // namespace

BENCHMARK_TEMPLATE(notify_mpsc, HeraldQueue)->Name("notify_mpsc/herald")->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(notify_mpsc, BoostQueue)
    ->Name("notify_mpsc/boost_queue")
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_mpsc, MoodycamelQueue)
    ->Name("notify_mpsc/moodycamel_cq")
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_mpsc, TbbQueue)
    ->Name("notify_mpsc/tbb_bounded")
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_mpsc, MutexDeque)
    ->Name("notify_mpsc/mutex_deque")
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_mpsc, SeedQueue)
    ->Name("notify_mpsc/seed_design")
    ->Threads(2)
    ->UseRealTime();
