// Single-thread costs that depend on the kernel's own structures, with seed_design beside them.
//
// notify_slow_subscriber/<impl>/full   one subscription (capacity 1024, on a handle of the
//                                      default Producers::multi) that never reads: every notify
//                                      finds it full and counts a drop
// notify_slow_subscriber/<impl>/empty  one subscription drained after every notify
// notify_handles/<impl>/handles:H      H registered handles, no subscriptions; each notify goes to
//                                      a handle drawn at random (a precomputed sequence of 2^20).
//                                      herald's handles are Producers::single (one notifier
//                                      thread); herald_multi is the default mode, whose notify
//                                      takes seq with an atomic read-modify-write.
//                                      table_floor is the least any registry can do: load the
//                                      handle's table slot, then increment a counter in the
//                                      256-byte record it points to (the size of a handle's state)
// handle_churn/<impl>                  register + subscribe + unsubscribe + unregister
#include <benchmark/benchmark.h>
#include <herald/herald.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "seed_design.hpp"

namespace {

constexpr std::uint32_t kSlowCapacity = 1024;
constexpr std::size_t kSequence = std::size_t{1} << 20;

void slow_subscriber_herald(benchmark::State& state, bool drained) {
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle().value();
  herald::Subscription sub = kernel.subscribe(h, {.capacity = kSlowCapacity}).value();
  std::int64_t i = 0;
  if (drained) {
    for (auto _ : state) {
      benchmark::DoNotOptimize(kernel.notify(h, ++i));
      benchmark::DoNotOptimize(sub.try_recv());
    }
  } else {
    for (auto _ : state) benchmark::DoNotOptimize(kernel.notify(h, ++i));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["dropped%"] =
      100.0 * static_cast<double>(sub.dropped()) / static_cast<double>(state.iterations());
}

void slow_subscriber_seed(benchmark::State& state, bool drained) {
  seed::Kernel kernel;
  const seed::Kernel::Id h = kernel.register_handle();
  auto sub = kernel.subscribe(h, kSlowCapacity);
  std::array<seed::Notification, 1> one{};
  std::int64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(kernel.notify(h, ++i));
    if (drained) benchmark::DoNotOptimize(kernel.try_recv_batch(*sub, one));
  }
  state.SetItemsProcessed(state.iterations());
}

/// Builds the H handles once per H: Google Benchmark calls the function several times while it
/// sizes the iteration count, and registering a million handles takes a while.
template <class Setup>
Setup& cached_setup(std::int64_t handles) {
  static std::unique_ptr<Setup> cached;
  if (!cached || cached->handles != handles) {
    cached.reset();  // free the previous size first
    cached = std::make_unique<Setup>(handles);
  }
  return *cached;
}

template <class Id>
std::vector<Id> random_sequence(const std::vector<Id>& ids) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::size_t> pick(0, ids.size() - 1);
  std::vector<Id> sequence(kSequence);
  for (auto& id : sequence) id = ids[pick(rng)];
  return sequence;
}

template <herald::Producers kProducers>
struct HeraldHandles {
  explicit HeraldHandles(std::int64_t h)
      : handles(h),
        kernel(herald::KernelOptions{.max_handles = static_cast<std::uint32_t>(h),
                                     .memory_limit = std::size_t{4} << 30}) {
    std::vector<herald::Handle> ids;
    ids.reserve(static_cast<std::size_t>(h));
    for (std::int64_t i = 0; i < h; ++i)
      ids.push_back(kernel.register_handle({.producers = kProducers}).value());
    sequence = random_sequence(ids);
  }
  std::int64_t handles;
  herald::Kernel kernel;
  std::vector<herald::Handle> sequence;
};

struct SeedHandles {
  explicit SeedHandles(std::int64_t h) : handles(h) {
    std::vector<seed::Kernel::Id> ids;
    ids.reserve(static_cast<std::size_t>(h));
    for (std::int64_t i = 0; i < h; ++i) ids.push_back(kernel.register_handle());
    sequence = random_sequence(ids);
  }
  std::int64_t handles;
  seed::Kernel kernel;
  std::vector<seed::Kernel::Id> sequence;
};

struct FloorHandles {
  struct alignas(64) Record {
    std::uint64_t seq = 0;
    char rest[248];
  };
  explicit FloorHandles(std::int64_t h) : handles(h), records(static_cast<std::size_t>(h)) {
    std::vector<Record*> table_order;
    for (auto& r : records) table_order.push_back(&r);
    std::shuffle(table_order.begin(), table_order.end(), std::mt19937_64(7));  // scattered records
    table = table_order;
    std::vector<std::size_t> ids(table.size());
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = i;
    sequence = random_sequence(ids);
  }
  std::int64_t handles;
  std::vector<Record> records;
  std::vector<Record*> table;
  std::vector<std::size_t> sequence;
};

void notify_handles_floor(benchmark::State& state) {
  auto& setup = cached_setup<FloorHandles>(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    FloorHandles::Record* r = setup.table[setup.sequence[i & (kSequence - 1)]];
    benchmark::DoNotOptimize(++r->seq);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

/// herald's and seed_design's kernels have the same notify(handle, arg) shape.
template <class Setup>
void notify_handles(benchmark::State& state) {
  auto& setup = cached_setup<Setup>(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        setup.kernel.notify(setup.sequence[i & (kSequence - 1)], static_cast<std::int64_t>(i)));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

void handle_churn_herald(benchmark::State& state) {
  herald::Kernel kernel;
  for (auto _ : state) {
    const herald::Handle h = kernel.register_handle().value();
    {
      herald::Subscription sub = kernel.subscribe(h).value();
      benchmark::DoNotOptimize(sub);
    }  // unsubscribes
    (void)kernel.unregister_handle(h);
  }
  state.SetItemsProcessed(state.iterations());
}

void handle_churn_seed(benchmark::State& state) {
  seed::Kernel kernel;
  for (auto _ : state) {
    const seed::Kernel::Id h = kernel.register_handle();
    auto sub = kernel.subscribe(h, 256);
    kernel.unsubscribe(h, sub);
    kernel.unregister_handle(h);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK_CAPTURE(slow_subscriber_herald, full, false)
    ->Name("notify_slow_subscriber/herald/full")
    ->UseRealTime();
BENCHMARK_CAPTURE(slow_subscriber_herald, empty, true)
    ->Name("notify_slow_subscriber/herald/empty")
    ->UseRealTime();
BENCHMARK_CAPTURE(slow_subscriber_seed, full, false)
    ->Name("notify_slow_subscriber/seed_design/full")
    ->UseRealTime();
BENCHMARK_CAPTURE(slow_subscriber_seed, empty, true)
    ->Name("notify_slow_subscriber/seed_design/empty")
    ->UseRealTime();
// 1 and 1M first, next to each other: they are the ratio the target compares.
BENCHMARK_TEMPLATE(notify_handles, HeraldHandles<herald::Producers::single>)
    ->Name("notify_handles/herald")
    ->ArgName("handles")
    ->Arg(1)
    ->Arg(1048576)
    ->Arg(1024)
    ->Arg(65536)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_handles, HeraldHandles<herald::Producers::multi>)
    ->Name("notify_handles/herald_multi")
    ->ArgName("handles")
    ->Arg(1)
    ->Arg(1048576)
    ->UseRealTime();
BENCHMARK_TEMPLATE(notify_handles, SeedHandles)
    ->Name("notify_handles/seed_design")
    ->ArgName("handles")
    ->Arg(1)
    ->Arg(1048576)
    ->UseRealTime();
BENCHMARK(notify_handles_floor)
    ->Name("notify_handles/table_floor")
    ->ArgName("handles")
    ->Arg(1)
    ->Arg(1048576)
    ->UseRealTime();
BENCHMARK(handle_churn_herald)->Name("handle_churn/herald")->UseRealTime();
BENCHMARK(handle_churn_seed)->Name("handle_churn/seed_design")->UseRealTime();
