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
#include "peer_queues.hpp"

namespace {

using herald::Notification;
using herald_bench::kDrainBatch;
using namespace herald_bench::peers;

/// The queue and its consumer, created by thread 0 before the timed loop; Google Benchmark's
/// start and stop barriers order the other thread's use between them.
template <class Queue>
struct Shared {
  Queue queue{2};
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
