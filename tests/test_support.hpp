#pragma once

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include <herald/herald.hpp>

namespace herald::test {

/// Runs fn(i) on n threads that start together on a barrier; joins them all.
inline void run_threads(unsigned n, const std::function<void(unsigned)>& fn) {
  std::barrier start(static_cast<std::ptrdiff_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

/// How long each time-bounded stress phase runs: HERALD_STRESS_MS, default 1000 ms.
inline std::chrono::milliseconds stress_duration() {
  if (const char* env = std::getenv("HERALD_STRESS_MS"))
    return std::chrono::milliseconds(std::atoi(env));
  return std::chrono::milliseconds(1000);
}

/// A seed that differs per run unless HERALD_SEED pins it; printed by the tests that use it.
inline std::uint64_t test_seed() {
  if (const char* env = std::getenv("HERALD_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

/// A raw value that is not any handle in `live` (forged).
inline Handle forge(std::mt19937_64& rng, const std::vector<Handle>& live) {
  for (;;) {
    const Handle h = Handle::from_raw(rng());
    bool clash = false;
    for (Handle l : live) clash = clash || l == h;
    if (!clash) return h;
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kDeepChain = 2000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int kDeepChain = 2000;
#else
constexpr int kDeepChain = 100000;
#endif
#else
constexpr int kDeepChain = 100000;
#endif

struct SingleProducer {
  static constexpr Producers value = Producers::single;
};
struct MultiProducer {
  static constexpr Producers value = Producers::multi;
};

}  // namespace herald::test
