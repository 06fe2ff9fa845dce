// scale/<workload>/<impl>/threads:T — how each shared path holds up as threads are added, T = 1,
// 2, 4 ... up to hardware_concurrency() (and W = 1, 2, 4, 8 ... waiters). On a 2-core machine the
// curve has two points; a bigger machine prints the whole of it from the same binary.
//
//   delivered      T notifiers -> one subscription (Producers::multi) -> one polling consumer;
//                  items/s delivered. Peers: moodycamel ConcurrentQueue (a producer token per
//                  notifier), boost::lockfree::queue, seed_design.
//   shared_handle  T notifiers on one handle, nobody listening. Peers: a raw fetch_add on one
//                  cache line (the one counter a handle's sequence needs), seed_design, and two
//                  that bound what herald's notify can reach: raw_announced (the fetch_add with
//                  a locked exchange and a store on the thread's own line around it: a read
//                  section's announcement) and raw_herald_atomics (every atomic instruction a
//                  multi-producer notify with nobody listening executes, in its order, with no
//                  lookup and no logic), and raw_lanes (the atomics of the notify that would reach
//                  the counter, PROTOCOLS.md: plain-store announcement, per-notifier lane, no
//                  fence).
//   own_handle     each notifier its own handle. Peer: seed_design.
//   waiters        one notifier, W blocking waiters re-waiting; the notify rate.
//   churn          register + subscribe + unsubscribe + unregister, T threads. Peer: seed_design.
//
// Every thread of a point is a Google Benchmark thread (a barrier starts and stops them
// together), except the delivered consumer and the waiters, which are plain threads. Threads are
// not pinned: T may exceed the cores.
#include <benchmark/benchmark.h>
#include <herald/herald.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "peer_queues.hpp"
#include "seed_design.hpp"

namespace {

using herald::Notification;
using herald_bench::kDrainBatch;
using namespace herald_bench::peers;

/// 1, 2, 4 ... and hardware_concurrency() itself.
std::vector<int> thread_counts(int at_least = 1) {
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int top = std::max(hw, at_least);
  std::vector<int> counts;
  for (int t = 1; t < top; t *= 2) counts.push_back(t);
  counts.push_back(top);
  return counts;
}

// ---- delivered ----

template <class Queue>
struct Delivered {
  explicit Delivered(unsigned producers) : queue(producers) {}
  Queue queue;
  herald_bench::Drainer consumer{
      [this, buf = std::array<Notification, kDrainBatch>{}]() mutable { return queue.drain(buf); },
      /*polite=*/true};
};

template <class Queue>
void scale_delivered(benchmark::State& state) {
  static std::optional<Delivered<Queue>> shared;
  const int thread = state.thread_index();
  if (thread == 0) shared.emplace(static_cast<unsigned>(state.threads()));
  std::int64_t accepted = 0;
  std::int64_t v = 0;
  for (auto _ : state) {
    if (shared->queue.push(thread, ++v)) {
      ++accepted;
    } else {
      std::this_thread::yield();  // full: back off as a client of a bounded queue would
    }
  }
  if (thread == 0) shared->consumer.stop();
  state.SetItemsProcessed(accepted);
  if (thread == 0) shared.reset();  // past the stop barrier nobody else touches it
}

// ---- shared_handle ----

struct HeraldShared {
  herald::Kernel kernel;
  herald::Handle h = kernel.register_handle({.producers = herald::Producers::multi}).value();
  void notify(std::int64_t v) { benchmark::DoNotOptimize(kernel.notify(h, v)); }
};
struct RawCounter {
  alignas(64) std::atomic<std::uint64_t> seq{0};
  void notify(std::int64_t /*v*/) {
    benchmark::DoNotOptimize(seq.fetch_add(1, std::memory_order_relaxed));
  }
};
/// A thread's own line, as a reclamation record is.
struct alignas(64) OwnLine {
  std::atomic<std::uint64_t> word{0};
};
inline thread_local OwnLine t_own_line;

struct RawAnnounced {
  alignas(64) std::atomic<std::uint64_t> seq{0};
  void notify(std::int64_t /*v*/) {
    std::atomic<std::uint64_t>& own = t_own_line.word;
    own.exchange(own.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    benchmark::DoNotOptimize(seq.fetch_add(1, std::memory_order_release));
    own.store(own.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
};
/// The shape of HandleCore's hot line: seq, the subscriber list, the waiters' word, two latest
/// cells.
struct RawHeraldAtomics {
  struct alignas(64) Hot {
    std::atomic<std::uint64_t> seq{0};
    std::atomic<void*> subs{nullptr};
    std::atomic<std::uint64_t> wake{0};
    std::atomic<std::uint64_t> tag[2] = {};
    std::atomic<std::int64_t> arg[2] = {};
  } hot;
  void notify(std::int64_t v) {
    std::atomic<std::uint64_t>& own = t_own_line.word;
    own.exchange(own.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    const std::uint64_t s = hot.seq.fetch_add(1, std::memory_order_release) + 1;
    std::atomic<std::uint64_t>& tag = hot.tag[s % 2];
    std::uint64_t t = tag.load(std::memory_order_relaxed);
    if ((t >> 1) < s && (t & 1) == 0)
      tag.compare_exchange_strong(t, (s << 1) | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    hot.arg[s % 2].store(v, std::memory_order_relaxed);
    tag.store(s << 1, std::memory_order_release);
    benchmark::DoNotOptimize(hot.subs.load(std::memory_order_seq_cst));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    benchmark::DoNotOptimize(hot.wake.load(std::memory_order_relaxed));
    own.store(own.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
};
/// A notifier's own latest cell, on a line no other notifier writes.
struct alignas(64) Lane {
  std::atomic<std::uint64_t> tag{0};
  std::atomic<std::int64_t> arg{0};
};
inline thread_local Lane t_lane;
/// The atomics of the notify PROTOCOLS.md describes as reaching the counter (not built in the
/// kernel): the read section announced with plain stores on the thread's own line (the grace
/// period would force the fence with membarrier), the one fetch_add, the latest notification in
/// the notifier's own lane (a line no other notifier writes), the hot line read, and no fence.
struct RawLanes {
  RawHeraldAtomics::Hot hot;  // the same hot line; its latest cells stay unused
  void notify(std::int64_t v) {
    std::atomic<std::uint64_t>& own = t_own_line.word;
    // relaxed, and only a compiler fence: in that design the grace period's membarrier supplies
    // the announcement's hardware fence.
    own.store(own.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const std::uint64_t s = hot.seq.fetch_add(1, std::memory_order_seq_cst) + 1;
    // The lane's seqlock (single writer): odd tag, release fence, arg, even tag with release.
    t_lane.tag.store((s << 1) | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    t_lane.arg.store(v, std::memory_order_relaxed);
    t_lane.tag.store(s << 1, std::memory_order_release);
    // relaxed: in that design the waiters count themselves into the word the fetch_add above
    // changed, so that RMW is the Dekker pair and these loads need no fence.
    benchmark::DoNotOptimize(hot.subs.load(std::memory_order_relaxed));
    benchmark::DoNotOptimize(hot.wake.load(std::memory_order_relaxed));
    std::atomic_signal_fence(std::memory_order_seq_cst);
    own.store(own.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
};
struct SeedShared {
  seed::Kernel kernel;
  seed::Kernel::Id h = kernel.register_handle();
  void notify(std::int64_t v) { benchmark::DoNotOptimize(kernel.notify(h, v)); }
};

template <class Impl>
void scale_shared_handle(benchmark::State& state) {
  static std::unique_ptr<Impl> impl;
  if (state.thread_index() == 0) impl = std::make_unique<Impl>();
  std::int64_t v = 0;
  for (auto _ : state) impl->notify(++v);
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) impl.reset();
}

// ---- own_handle ----

struct HeraldOwn {
  explicit HeraldOwn(int threads) {
    for (int i = 0; i < threads; ++i)
      handles.push_back(kernel.register_handle({.producers = herald::Producers::single}).value());
  }
  herald::Kernel kernel;
  std::vector<herald::Handle> handles;
  void notify(int thread, std::int64_t v) {
    benchmark::DoNotOptimize(kernel.notify(handles[static_cast<std::size_t>(thread)], v));
  }
};
struct SeedOwn {
  explicit SeedOwn(int threads) {
    for (int i = 0; i < threads; ++i) handles.push_back(kernel.register_handle());
  }
  seed::Kernel kernel;
  std::vector<seed::Kernel::Id> handles;
  void notify(int thread, std::int64_t v) {
    benchmark::DoNotOptimize(kernel.notify(handles[static_cast<std::size_t>(thread)], v));
  }
};

template <class Impl>
void scale_own_handle(benchmark::State& state) {
  static std::unique_ptr<Impl> impl;
  const int thread = state.thread_index();
  if (thread == 0) impl = std::make_unique<Impl>(state.threads());
  std::int64_t v = 0;
  for (auto _ : state) impl->notify(thread, ++v);
  state.SetItemsProcessed(state.iterations());
  if (thread == 0) impl.reset();
}

// ---- waiters ----

void scale_waiters(benchmark::State& state) {
  const auto waiters = static_cast<int>(state.range(0));
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle({.max_waiters = 1024}).value();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        const herald::Ticket t = kernel.observe(h).value();
        if (kernel.wait_blocking(h, t, {.timeout = std::chrono::milliseconds(10)})) {
          woken.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  std::int64_t v = 0;
  for (auto _ : state) benchmark::DoNotOptimize(kernel.notify(h, ++v));
  stop.store(true);
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["wakes/notify"] =
      static_cast<double>(woken.load()) / static_cast<double>(state.iterations());
}

// ---- churn ----

void scale_churn_herald(benchmark::State& state) {
  static std::unique_ptr<herald::Kernel> kernel;
  if (state.thread_index() == 0) kernel = std::make_unique<herald::Kernel>();
  for (auto _ : state) {
    const herald::Handle h = kernel->register_handle().value();
    {
      herald::Subscription s = kernel->subscribe(h, {.capacity = 64}).value();
      benchmark::DoNotOptimize(s);
    }
    (void)kernel->unregister_handle(h);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) kernel.reset();
}

void scale_churn_seed(benchmark::State& state) {
  static std::unique_ptr<seed::Kernel> kernel;
  if (state.thread_index() == 0) kernel = std::make_unique<seed::Kernel>();
  for (auto _ : state) {
    const seed::Kernel::Id h = kernel->register_handle();
    {
      auto s = kernel->subscribe(h, 64);
      kernel->unsubscribe(h, s);
    }
    kernel->unregister_handle(h);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) kernel.reset();
}

/// Registers `fn` as `name` once per thread count.
template <class Fn>
void register_threads(const char* name, Fn fn) {
  auto* b = benchmark::RegisterBenchmark(name, fn)->UseRealTime();
  for (const int t : thread_counts()) b->Threads(t);
}

const bool registered = [] {
  register_threads("scale/delivered/herald", scale_delivered<HeraldQueue>);
  register_threads("scale/delivered/moodycamel_cq", scale_delivered<MoodycamelQueue>);
  register_threads("scale/delivered/boost_queue", scale_delivered<BoostQueue>);
  register_threads("scale/delivered/seed_design", scale_delivered<SeedQueue>);
  register_threads("scale/shared_handle/herald", scale_shared_handle<HeraldShared>);
  register_threads("scale/shared_handle/raw_fetch_add", scale_shared_handle<RawCounter>);
  register_threads("scale/shared_handle/seed_design", scale_shared_handle<SeedShared>);
  register_threads("scale/shared_handle/raw_announced", scale_shared_handle<RawAnnounced>);
  register_threads("scale/shared_handle/raw_herald_atomics", scale_shared_handle<RawHeraldAtomics>);
  register_threads("scale/shared_handle/raw_lanes", scale_shared_handle<RawLanes>);
  register_threads("scale/own_handle/herald", scale_own_handle<HeraldOwn>);
  register_threads("scale/own_handle/seed_design", scale_own_handle<SeedOwn>);
  auto* w = benchmark::RegisterBenchmark("scale/waiters/herald", scale_waiters)->UseRealTime();
  w->ArgName("threads");
  for (const int t : thread_counts(8)) w->Arg(t);
  register_threads("scale/churn/herald", scale_churn_herald);
  register_threads("scale/churn/seed_design", scale_churn_seed);
  return true;
}();

}  // namespace
