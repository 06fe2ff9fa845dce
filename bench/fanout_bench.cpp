// notify_fanout/<impl>/subs:N: one notifier (the benchmark thread, CPU 0) and N subscriptions
// drained by one consumer thread (CPU 1). items/s counts notify calls. Every queue holds
// kCapacity items and drops when full; `dropped%` reports how many the consumer could not keep up
// with (a push that drops is cheaper, so compare rows with the counter beside them).
//
// Peers at subs:1: raw boost::lockfree::spsc_queue, moodycamel::ConcurrentQueue with one producer
// token (Debian's libconcurrentqueue-dev ships no ReaderWriterQueue), std::mutex + std::deque, and
// seed_design.
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <herald/herald.hpp>

#include <array>
#include <boost/lockfree/spsc_queue.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "bench_support.hpp"
#include "seed_design.hpp"

namespace {

using herald_bench::kCapacity;
using herald_bench::kDrainBatch;
using Buffer = std::array<herald::Notification, kDrainBatch>;

void set_counters(benchmark::State& state, std::uint64_t dropped, std::uint64_t per_item) {
  state.SetItemsProcessed(state.iterations());
  const double pushes = static_cast<double>(state.iterations()) * static_cast<double>(per_item);
  state.counters["dropped%"] = pushes == 0 ? 0.0 : 100.0 * static_cast<double>(dropped) / pushes;
}

void fanout_herald(benchmark::State& state, herald::Producers producers) {
  const auto subs_count = static_cast<std::size_t>(state.range(0));
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle({.producers = producers}).value();
  std::vector<herald::Subscription> subs;
  for (std::size_t i = 0; i < subs_count; ++i)
    subs.push_back(kernel.subscribe(h, {.capacity = kCapacity}).value());
  herald_bench::pin_to_cpu(0);
  {
    // The consumer gets the subscriptions' address, not the vector on this thread's stack.
    herald_bench::Drainer consumer(
        [first = subs.data(), count = subs.size(), buf = Buffer{}]() mutable {
          std::size_t n = 0;
          for (std::size_t s = 0; s < count; ++s) n += first[s].try_recv_batch(buf);
          return n;
        });
    std::int64_t i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(kernel.notify(h, ++i));
    consumer.stop();
  }
  herald_bench::unpin();
  std::uint64_t dropped = 0;
  for (auto& s : subs) dropped += s.dropped();
  set_counters(state, dropped, subs_count);
}

void fanout_boost_spsc(benchmark::State& state) {
  using Queue =
      boost::lockfree::spsc_queue<herald::Notification, boost::lockfree::capacity<kCapacity>>;
  const auto owned = std::make_unique<Queue>();  // off this thread's stack, as herald's rings are
  Queue& queue = *owned;
  herald_bench::pin_to_cpu(0);
  std::uint64_t dropped = 0;
  {
    herald_bench::Drainer consumer(
        [&queue, buf = Buffer{}]() mutable { return queue.pop(buf.data(), buf.size()); });
    std::uint64_t seq = 0;
    for (auto _ : state) {
      ++seq;
      if (!queue.push(herald::Notification{seq, static_cast<std::int64_t>(seq)})) ++dropped;
    }
    consumer.stop();
  }
  herald_bench::unpin();
  set_counters(state, dropped, 1);
}

void fanout_moodycamel(benchmark::State& state) {
  const auto owned = std::make_unique<moodycamel::ConcurrentQueue<herald::Notification>>(kCapacity);
  auto& queue = *owned;
  moodycamel::ProducerToken token(queue);
  herald_bench::pin_to_cpu(0);
  std::uint64_t dropped = 0;
  {
    herald_bench::Drainer consumer([&queue, buf = Buffer{}]() mutable {
      return queue.try_dequeue_bulk(buf.data(), buf.size());
    });
    std::uint64_t seq = 0;
    for (auto _ : state) {
      ++seq;
      // try_enqueue never allocates: a full queue drops, as the other bounded queues do.
      if (!queue.try_enqueue(token, herald::Notification{seq, static_cast<std::int64_t>(seq)}))
        ++dropped;
    }
    consumer.stop();
  }
  herald_bench::unpin();
  set_counters(state, dropped, 1);
}

void fanout_mutex_deque(benchmark::State& state) {
  struct alignas(64) Shared {
    std::mutex mutex;
    std::deque<herald::Notification> queue;
  };
  const auto owned = std::make_unique<Shared>();
  std::mutex& mutex = owned->mutex;
  std::deque<herald::Notification>& queue = owned->queue;
  herald_bench::pin_to_cpu(0);
  std::uint64_t dropped = 0;
  {
    herald_bench::Drainer consumer([&mutex, &queue, buf = Buffer{}]() mutable {
      std::lock_guard lock(mutex);
      std::size_t n = 0;
      for (; n < buf.size() && !queue.empty(); ++n) {
        buf[n] = queue.front();
        queue.pop_front();
      }
      return n;
    });
    std::uint64_t seq = 0;
    for (auto _ : state) {
      ++seq;
      std::lock_guard lock(mutex);
      if (queue.size() < kCapacity) {
        queue.push_back(herald::Notification{seq, static_cast<std::int64_t>(seq)});
      } else {
        ++dropped;
      }
    }
    consumer.stop();
  }
  herald_bench::unpin();
  set_counters(state, dropped, 1);
}

void fanout_seed(benchmark::State& state) {
  const auto owned = std::make_unique<seed::Kernel>();  // its mutex off this thread's stack
  seed::Kernel& kernel = *owned;
  const seed::Kernel::Id h = kernel.register_handle();
  auto sub = kernel.subscribe(h, kCapacity);
  herald_bench::pin_to_cpu(0);
  {
    herald_bench::Drainer consumer(
        [&kernel, sub = sub.get(), buf = std::array<seed::Notification, kDrainBatch>{}]() mutable {
          return kernel.try_recv_batch(*sub, buf);
        });
    std::int64_t i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(kernel.notify(h, ++i));
    consumer.stop();
  }
  herald_bench::unpin();
  set_counters(state, kernel.dropped(*sub), 1);
}

}  // namespace

// Registration order is run order. On a shared VM cross-core costs shift in spells of seconds,
// so the rows a target compares run next to each other: seed_design, boost_spsc, herald at
// subs:1, herald at subs:16, then the rest.
BENCHMARK(fanout_seed)->Name("notify_fanout/seed_design/subs:1")->UseRealTime();
BENCHMARK(fanout_boost_spsc)->Name("notify_fanout/boost_spsc/subs:1")->UseRealTime();
BENCHMARK_CAPTURE(fanout_herald, single, herald::Producers::single)
    ->Name("notify_fanout/herald")
    ->ArgName("subs")
    ->Arg(1)
    ->Arg(16)
    ->Arg(4)
    ->Arg(0)
    ->UseRealTime();
BENCHMARK(fanout_moodycamel)->Name("notify_fanout/moodycamel_rwq/subs:1")->UseRealTime();
BENCHMARK(fanout_mutex_deque)->Name("notify_fanout/mutex_deque/subs:1")->UseRealTime();
BENCHMARK_CAPTURE(fanout_herald, multi, herald::Producers::multi)
    ->Name("notify_fanout/herald_multi")
    ->ArgName("subs")
    ->Arg(1)
    ->UseRealTime();
