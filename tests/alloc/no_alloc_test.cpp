// Replaces global operator new to prove that the data plane allocates nothing after setup.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "test_support.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_allocations{0};

void* counted_alloc(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace herald;
using namespace std::chrono_literals;

namespace {
struct Counting {
  Counting() {
    g_allocations = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  std::size_t count() const { return g_allocations.load(); }
};
}  // namespace

TEST_SUITE("allocation") {
  TEST_CASE("the counter sees an allocation (the hook works)") {
    Counting c;
    auto* p = new int(1);
    const std::size_t seen = c.count();
    delete p;
    CHECK(seen == 1);
  }

  TEST_CASE_TEMPLATE("notify, observe, try_recv and ready waits allocate nothing after setup", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.debug_hint = "alloc", .producers = P::value}).value();
    Subscription drop = k.subscribe(h, {.capacity = 8}).value();
    Subscription keep = k.subscribe(h, {.capacity = 8, .overflow = Overflow::keep_latest}).value();
    (void)k.notify(h, 0);  // first data-plane call on this thread: claims its epoch record
    std::array<Notification, 4> batch{};

    std::size_t allocations = 0;
    {
      Counting c;
      for (int i = 0; i < 10000; ++i) {
        (void)k.notify(h, i);
        (void)k.notify(Handle::from_raw(0xdeadbeef), i);  // rejected
        (void)k.observe(h);
        (void)drop.try_recv();
        (void)keep.try_recv_batch(batch);
        (void)k.wait_blocking(h, Ticket{0});                               // ready at once
        (void)k.wait_blocking(h, k.observe(h).value(), {.timeout = 0ns});  // enlists, times out
        (void)drop.recv_blocking({.timeout = 0ns});
        (void)k.stats(h);
        (void)drop.size();
        (void)keep.dropped();
      }
      allocations = c.count();
    }
    CHECK(allocations == 0);
  }

  TEST_CASE("parking, waking and receiving across threads allocate nothing") {
    Kernel k;
    const Handle h = k.register_handle().value();
    Subscription s = k.subscribe(h).value();
    std::atomic<int> phase{0};
    std::atomic<std::size_t> woken{0};
    std::thread waiter;
    {
      waiter = std::thread([&] {
        (void)k.observe(h);  // claim the epoch record before counting
        phase = 1;
        while (phase.load() != 2) std::this_thread::yield();
        for (int i = 0; i < 200; ++i) {
          const Ticket t = k.observe(h).value();
          if (k.wait_blocking(h, t, {.timeout = 1s})) woken.fetch_add(1);
          (void)s.recv_blocking({.timeout = 1s});
        }
      });
      while (phase.load() != 1) std::this_thread::yield();
      (void)k.notify(h, 0);
      (void)s.try_recv();
      Counting c;
      phase = 2;
      for (int i = 0; i < 200; ++i) {
        while (k.stats(h).value().waiters == 0 && woken.load() == static_cast<std::size_t>(i))
          std::this_thread::yield();
        (void)k.notify(h, i);
        while (woken.load() == static_cast<std::size_t>(i)) {
          (void)k.notify(h, i);
          std::this_thread::yield();
        }
      }
      waiter.join();
      CHECK(c.count() == 0);
    }
    CHECK(woken.load() == 200);
  }
}
