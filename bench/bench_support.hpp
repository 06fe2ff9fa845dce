#pragma once

// Shared by the benchmark families: thread pinning, the common capacity, and the drain loop every
// consumer thread runs so that peers are driven identically.

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

namespace herald_bench {

/// Every bounded queue in the suite (herald rings, peers' queues, seed_design deques).
constexpr std::uint32_t kCapacity = 4096;
/// Items a draining consumer takes per call.
constexpr std::size_t kDrainBatch = 256;

inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// The futex peers call the system directly: libstdc++ 12's std::atomic::wait/notify_one was seen
/// to lose a wakeup here (a ping-pong stopped with both threads asleep on their words).
/// Waits while `word` holds `expected` (or returns early; callers recheck in a loop): first the
/// spin libstdc++'s std::atomic::wait does (12 pauses, then 4 yields), which herald's blocking
/// waits also do, then the futex.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  for (int i = 0; i < 16; ++i) {
    if (word.load(std::memory_order_relaxed) != expected) return;
    if (i < 12) {
      spin_pause();
    } else {
      std::this_thread::yield();
    }
  }
  syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
/// Wakes one thread sleeping on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

/// Pins the calling thread to `cpu` modulo the CPUs available; does nothing if the machine
/// refuses. Producer and consumer on different CPUs make a cross-core figure repeatable.
inline void pin_to_cpu(unsigned cpu) {
  const unsigned n = std::thread::hardware_concurrency();
  if (n < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % n, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/// Lets the calling thread run on every CPU again (the benchmark thread after a pinned run).
inline void unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const unsigned n = std::thread::hardware_concurrency();
  for (unsigned i = 0; i < n && i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/// A consumer thread on CPU 1 that calls `drain()` (returning items taken) until stopped. After an
/// empty drain it pauses (a spin-wait hint: on an SMT sibling the producer keeps the core's
/// resources), or, when `polite`, yields (used where more threads than CPUs run).
/// `drain` is moved into the thread, so state it owns (its buffer) does not share a cache line
/// with the benchmark thread's stack; the stop flag has a line of its own.
class Drainer {
 public:
  template <class Drain>
  explicit Drainer(Drain drain, bool polite = false)
      : thread_([this, drain = std::move(drain), polite]() mutable {
          if (!polite) pin_to_cpu(1);
          std::uint64_t got = 0;
          while (!stop_.load(std::memory_order_relaxed)) {
            const std::size_t n = drain();
            got += n;
            if (n == 0) {
              if (polite) {
                std::this_thread::yield();
              } else {
                spin_pause();
              }
            }
          }
          got_ = got;
        }) {}
  Drainer(const Drainer&) = delete;
  Drainer& operator=(const Drainer&) = delete;
  ~Drainer() { stop(); }

  /// Stops and joins; returns the items drained.
  std::uint64_t stop() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
    return got_;
  }

 private:
  alignas(64) std::atomic<bool> stop_{false};
  alignas(64) std::uint64_t got_ = 0;
  std::thread thread_;
};

}  // namespace herald_bench
