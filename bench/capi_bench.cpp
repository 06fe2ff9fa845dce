// capi/notify/*: the C ABI's herald_notify (through libherald.so.0, a PLT call) against
// Kernel::notify on the same shape of kernel, in the same binary and run. One handle; with
// subs:1, one subscription that the loop drains every 64 notifications.

#include <benchmark/benchmark.h>

#include <cstdint>

#include "herald/herald.h"
#include "herald/kernel.hpp"

namespace {

constexpr std::int64_t kDrainEvery = 64;

void capi_notify_c(benchmark::State& state) {
  herald_kernel* kernel = nullptr;
  herald_handle h = 0;
  herald_sub* sub = nullptr;
  if (herald_kernel_create(nullptr, &kernel) != HERALD_OK ||
      herald_register(kernel, nullptr, &h) != HERALD_OK) {
    state.SkipWithError("setup failed");
    return;
  }
  if (state.range(0) == 1 && herald_subscribe(kernel, h, nullptr, &sub) != HERALD_OK) {
    state.SkipWithError("subscribe failed");
    return;
  }
  herald_notification batch[kDrainEvery];
  std::int64_t i = 0;
  for (auto _ : state) {
    herald_receipt r;
    benchmark::DoNotOptimize(herald_notify(kernel, h, i, &r));
    benchmark::DoNotOptimize(r);
    if (sub != nullptr && (++i & (kDrainEvery - 1)) == 0) {
      benchmark::DoNotOptimize(herald_sub_try_recv_batch(sub, batch, kDrainEvery));
    }
  }
  state.SetItemsProcessed(state.iterations());
  herald_sub_destroy(sub);
  herald_kernel_destroy(kernel);
}

void capi_notify_cpp(benchmark::State& state) {
  herald::Kernel kernel;
  const herald::Handle h = kernel.register_handle().value();
  herald::Subscription sub;
  if (state.range(0) == 1) sub = kernel.subscribe(h).value();
  herald::Notification batch[kDrainEvery];
  std::int64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(kernel.notify(h, i));
    if (sub && (++i & (kDrainEvery - 1)) == 0) {
      benchmark::DoNotOptimize(sub.try_recv_batch(batch));
    }
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(capi_notify_c)
    ->Name("capi/notify/herald_c")
    ->ArgName("subs")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime();
BENCHMARK(capi_notify_cpp)
    ->Name("capi/notify/herald_cpp")
    ->ArgName("subs")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime();
