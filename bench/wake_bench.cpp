// wake_latency/<impl>: one-way latency from a worker's wake call to the woken side running, with
// the woken side idle (parked) before every wake. Each iteration: the worker sleeps so the other
// side parks, stamps t0, wakes it; the woken side computes now - t0 and acknowledges. Reported:
// manual time = the latency, plus p50/p99 counters over all samples.
//   herald_coroutine: Kernel::notify -> a coroutine on an EventLoop parked in run()
//   eventfd:          write(eventfd) -> a thread blocked in read()
//   futex:            atomic store + FUTEX_WAKE -> a thread in FUTEX_WAIT
#include <benchmark/benchmark.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <herald/herald.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kIdleGap = std::chrono::microseconds(30);  // lets the woken side park

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void report(benchmark::State& state, std::vector<double>& samples_us) {
  if (samples_us.empty()) return;
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = samples_us[samples_us.size() / 2];
  state.counters["p99_us"] = samples_us[samples_us.size() * 99 / 100];
}

herald::Task<void> woken_coroutine(herald::Kernel& k, herald::Handle wake, herald::Handle ack,
                                   std::atomic<std::int64_t>& latency) {
  herald::Ticket seen{0};
  for (;;) {
    auto r = co_await k.wait(wake, seen);
    if (!r) co_return;  // unregistered: the benchmark is over
    seen.seq = r->seq;
    latency.store(now_ns() - r->arg, std::memory_order_relaxed);
    (void)k.notify(ack, 0);
  }
}

void wake_latency_herald(benchmark::State& state) {
  herald::Kernel k;
  const herald::Handle wake = k.register_handle().value();
  const herald::Handle ack = k.register_handle().value();
  herald::EventLoop loop;
  std::atomic<std::int64_t> latency{0};
  herald::spawn(loop, woken_coroutine(k, wake, ack, latency));
  std::thread runner([&] { loop.run(); });
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  herald::Ticket acked{0};
  for (auto _ : state) {
    std::this_thread::sleep_for(kIdleGap);
    (void)k.notify(wake, now_ns());
    acked = herald::Ticket{k.wait_blocking(ack, acked).value().seq};
    const double us = static_cast<double>(latency.load(std::memory_order_relaxed)) / 1000.0;
    samples.push_back(us);
    state.SetIterationTime(us / 1e6);
  }
  (void)k.unregister_handle(wake);
  loop.stop();
  runner.join();
  report(state, samples);
}

void wake_latency_eventfd(benchmark::State& state) {
  const int wake = ::eventfd(0, EFD_CLOEXEC);
  const int ack = ::eventfd(0, EFD_CLOEXEC);
  std::atomic<std::int64_t> stamp{0};
  std::atomic<std::int64_t> latency{0};
  std::thread woken([&] {
    for (;;) {
      std::uint64_t v = 0;
      if (::read(wake, &v, sizeof v) != sizeof v || v == 2) return;
      latency.store(now_ns() - stamp.load(std::memory_order_relaxed), std::memory_order_relaxed);
      const std::uint64_t one = 1;
      (void)!::write(ack, &one, sizeof one);
    }
  });
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    std::this_thread::sleep_for(kIdleGap);
    stamp.store(now_ns(), std::memory_order_relaxed);
    const std::uint64_t one = 1;
    (void)!::write(wake, &one, sizeof one);
    std::uint64_t v = 0;
    (void)!::read(ack, &v, sizeof v);
    const double us = static_cast<double>(latency.load(std::memory_order_relaxed)) / 1000.0;
    samples.push_back(us);
    state.SetIterationTime(us / 1e6);
  }
  const std::uint64_t two = 2;
  (void)!::write(wake, &two, sizeof two);
  woken.join();
  ::close(wake);
  ::close(ack);
  report(state, samples);
}

void wake_latency_futex(benchmark::State& state) {
  std::atomic<std::int64_t> stamp{0};    // the waker's clock; -1: stop
  std::atomic<std::uint32_t> posted{0};  // the futex word the woken thread sleeps on
  std::atomic<std::uint32_t> acked{0};
  std::atomic<std::int64_t> latency{0};
  std::thread woken([&] {
    for (std::uint32_t n = 1;; ++n) {
      for (std::uint32_t p = posted.load(std::memory_order_acquire); p < n;
           p = posted.load(std::memory_order_acquire))
        herald_bench::futex_wait(posted, p);
      const std::int64_t t0 = stamp.load(std::memory_order_acquire);
      if (t0 < 0) return;
      latency.store(now_ns() - t0, std::memory_order_relaxed);
      acked.store(n, std::memory_order_release);
      herald_bench::futex_wake(acked);
    }
  });
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint32_t n = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(kIdleGap);
    ++n;
    stamp.store(now_ns(), std::memory_order_release);
    posted.store(n, std::memory_order_release);
    herald_bench::futex_wake(posted);
    for (std::uint32_t a = acked.load(std::memory_order_acquire); a != n;
         a = acked.load(std::memory_order_acquire))
      herald_bench::futex_wait(acked, a);
    const double us = static_cast<double>(latency.load(std::memory_order_relaxed)) / 1000.0;
    samples.push_back(us);
    state.SetIterationTime(us / 1e6);
  }
  stamp.store(-1, std::memory_order_release);
  posted.store(n + 1, std::memory_order_release);
  herald_bench::futex_wake(posted);
  woken.join();
  report(state, samples);
}

}  // namespace

BENCHMARK(wake_latency_herald)
    ->Name("wake_latency/herald_coroutine")
    ->UseManualTime()
    ->Iterations(5000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(wake_latency_eventfd)
    ->Name("wake_latency/eventfd")
    ->UseManualTime()
    ->Iterations(5000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(wake_latency_futex)
    ->Name("wake_latency/futex")
    ->UseManualTime()
    ->Iterations(5000)
    ->Unit(benchmark::kMicrosecond);
