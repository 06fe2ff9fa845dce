#pragma once

#include <atomic>
#include <cstddef>

namespace herald::detail {

/// The unit of false sharing: producer- and consumer-side fields live on different lines.
/// std::hardware_destructive_interference_size differs between compilers (GCC warns it is not
/// ABI-stable), and the tests build with both g++ and clang++, so the value is fixed: 64 bytes is
/// the line size of every x86-64 and of most AArch64 cores.
inline constexpr std::size_t kCacheLine = 64;

/// A polite busy-wait hint for the short, bounded spins the kernel allows itself.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// A small number for the calling thread, assigned round-robin at its first call: the index of
/// the shard (of per-thread credit, of free slots) it uses, so that a few busy threads land on
/// different cache lines.
inline std::atomic<unsigned> g_next_thread_shard{0};
inline thread_local unsigned t_thread_shard = ~0u;
inline unsigned thread_shard() noexcept {
  if (t_thread_shard == ~0u) [[unlikely]]
    t_thread_shard = g_next_thread_shard.fetch_add(1, std::memory_order_relaxed);  // a counter
  return t_thread_shard;
}

}  // namespace herald::detail
