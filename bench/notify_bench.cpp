// notify() against a raw Boost.Lockfree spsc_queue, in one binary and one run.
//
// notify_fanout/<impl>/subs:N   one notifier (the benchmark thread), N subscriptions drained by
//                               one consumer thread; items/s counts notifications.
// notify_cost/<impl>/subs:N     one thread: 64 notifies, then drain every subscription; the cost
//                               of producing and consuming with no cache line changing hands.
#include <benchmark/benchmark.h>
#include <herald/herald.hpp>

#include <array>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <thread>
#include <vector>

namespace {

constexpr std::uint32_t kCapacity = 4096;
constexpr int kBatch = 64;

void notify_fanout_herald(benchmark::State& state, herald::Producers producers) {
  const auto subs_count = static_cast<std::size_t>(state.range(0));
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle({.producers = producers}).value();
  std::vector<herald::Subscription> subs;
  for (std::size_t i = 0; i < subs_count; ++i)
    subs.push_back(kernel.subscribe(h, {.capacity = kCapacity}).value());
  std::atomic<bool> stop{false};
  std::thread consumer;
  if (subs_count != 0) {
    consumer = std::thread([&] {
      std::array<herald::Notification, 256> buf{};
      std::uint64_t got = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (auto& s : subs) got += s.try_recv_batch(buf);
      }
      benchmark::DoNotOptimize(got);
    });
  }
  std::int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(kernel.notify(h, ++i));
  stop = true;
  if (consumer.joinable()) consumer.join();
  std::uint64_t dropped = 0;
  for (auto& s : subs) dropped += s.dropped();
  state.SetItemsProcessed(state.iterations());
  state.counters["dropped%"] = subs_count == 0
                                   ? 0.0
                                   : 100.0 * static_cast<double>(dropped) /
                                         static_cast<double>(state.iterations() * subs_count);
}

void notify_fanout_boost_spsc(benchmark::State& state) {
  boost::lockfree::spsc_queue<herald::Notification, boost::lockfree::capacity<kCapacity>> queue;
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    std::array<herald::Notification, 256> buf{};
    std::uint64_t got = 0;
    while (!stop.load(std::memory_order_relaxed)) got += queue.pop(buf.data(), buf.size());
    benchmark::DoNotOptimize(got);
  });
  std::uint64_t seq = 0;
  std::uint64_t dropped = 0;
  for (auto _ : state) {
    ++seq;
    if (!queue.push(herald::Notification{seq, static_cast<std::int64_t>(seq)})) ++dropped;
  }
  stop = true;
  consumer.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["dropped%"] =
      100.0 * static_cast<double>(dropped) / static_cast<double>(state.iterations());
}

void notify_cost_herald(benchmark::State& state) {
  const auto subs_count = static_cast<std::size_t>(state.range(0));
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle({.producers = herald::Producers::single}).value();
  std::vector<herald::Subscription> subs;
  for (std::size_t i = 0; i < subs_count; ++i)
    subs.push_back(kernel.subscribe(h, {.capacity = kCapacity}).value());
  std::array<herald::Notification, kBatch> buf{};
  std::int64_t arg = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(kernel.notify(h, ++arg));
    for (auto& s : subs) benchmark::DoNotOptimize(s.try_recv_batch(buf));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void notify_cost_boost_spsc(benchmark::State& state) {
  boost::lockfree::spsc_queue<herald::Notification, boost::lockfree::capacity<kCapacity>> queue;
  std::array<herald::Notification, kBatch> buf{};
  std::uint64_t seq = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      ++seq;
      benchmark::DoNotOptimize(
          queue.push(herald::Notification{seq, static_cast<std::int64_t>(seq)}));
    }
    benchmark::DoNotOptimize(queue.pop(buf.data(), buf.size()));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

}  // namespace

BENCHMARK_CAPTURE(notify_fanout_herald, multi, herald::Producers::multi)
    ->Name("notify_fanout/herald_multi")
    ->ArgName("subs")
    ->Arg(1)
    ->UseRealTime();
BENCHMARK_CAPTURE(notify_fanout_herald, single, herald::Producers::single)
    ->Name("notify_fanout/herald")
    ->ArgName("subs")
    ->Arg(0)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->UseRealTime();
BENCHMARK(notify_fanout_boost_spsc)->Name("notify_fanout/boost_spsc/subs:1")->UseRealTime();
BENCHMARK(notify_cost_herald)
    ->Name("notify_cost/herald")
    ->ArgName("subs")
    ->Arg(0)
    ->Arg(1)
    ->Arg(16)
    ->UseRealTime();
BENCHMARK(notify_cost_boost_spsc)->Name("notify_cost/boost_spsc/subs:1")->UseRealTime();
