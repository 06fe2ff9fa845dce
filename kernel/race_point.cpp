#include "race_point.hpp"

#ifdef HERALD_RACE_INJECTION
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include "config.hpp"

namespace herald::detail {
namespace {

std::uint64_t base_seed() {
  static const std::uint64_t seed = [] {
    // Read once, by the first race point, inside this static's initialisation.
    const char* env = std::getenv("HERALD_RACE_SEED");  // NOLINT(concurrency-mt-unsafe)
    return env != nullptr ? std::strtoull(env, nullptr, 10) : 1;
  }();
  return seed;
}

std::atomic<std::uint64_t> g_threads{0};
std::atomic<RaceHook> g_hook{nullptr};

}  // namespace

void set_race_hook(RaceHook hook) noexcept { g_hook.store(hook); }

void race_point(const char* where) noexcept {
  if (RaceHook hook = g_hook.load(std::memory_order_acquire)) {  // pairs with set_race_hook
    hook(where);
    return;
  }
  // One xorshift stream per thread, derived from the run's seed and the thread's arrival order.
  thread_local std::uint64_t state =
      (base_seed() + 1) * 0x9E3779B97F4A7C15ull + g_threads.fetch_add(1) * 0xBF58476D1CE4E5B9ull;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  switch (state % 16) {
    case 0:
    case 1:
    case 2:
      std::this_thread::yield();
      break;
    case 3:
      std::this_thread::sleep_for(std::chrono::microseconds(1 + (state >> 8) % 50));
      break;
    case 4:
    case 5:
      for (unsigned i = (state >> 8) % 512; i != 0; --i) cpu_relax();
      break;
    default:
      break;  // most of the time, run on
  }
}

}  // namespace herald::detail
#endif
