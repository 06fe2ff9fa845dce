// Written against API.md only: every name and call here is the public contract.
#include <herald/herald.hpp>

#include <cstdio>
#include <functional>
#include <stop_token>
#include <thread>
#include <type_traits>

using namespace herald;

static_assert(std::is_trivially_destructible_v<WaitOptions>);
static_assert(std::is_trivially_copyable_v<Handle> && sizeof(Handle) == 8);
static_assert(std::is_error_code_enum<Errc>::value);

#define EXPECT(cond)                                                          \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                               \
    }                                                                         \
  } while (0)

Task<int> waiter(Kernel& k, Handle h, const std::stop_token* tok) {
  const Ticket t = k.observe(h).value();
  // A braced temporary in the co_await operand (see API.md on GCC 12).
  auto r = co_await k.wait(h, t, {.timeout = std::chrono::seconds(5), .stop = tok});
  co_return r ? static_cast<int>(r->arg) : -1;
}

Task<int> receiver(Subscription& s) {
  auto r = co_await s.recv({.timeout = std::chrono::seconds(5)});
  co_return r ? static_cast<int>(r->arg) : -1;
}

int main() {
  Kernel k(KernelOptions{.max_handles = 16});
  const Handle h = k.register_handle({.debug_hint = "consumer"}).value();
  auto s = k.subscribe(h).value();
  EXPECT(std::hash<Handle>{}(h) == std::hash<Handle>{}(Handle::from_raw(h.raw())));
  EXPECT(k.notify(Handle::from_raw(12345), 0).error() == Errc::unknown_handle);
  EXPECT(make_error_code(Errc::closed).category().name() == std::string("herald"));

  EventLoop loop;
  std::stop_source source;
  const std::stop_token token = source.get_token();
  std::thread worker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (void)k.notify(h, 42);
  });
  EXPECT(sync_wait(loop, waiter(k, h, &token)) == 42);
  worker.join();
  EXPECT(sync_wait(loop, receiver(s)) == 42);

  EXPECT(k.wait_blocking(h, Ticket{0}).value().seq == 1);
  EXPECT(s.try_recv().error() == Errc::empty);
  Result<void> gone = k.unregister_handle(h);
  EXPECT(gone.has_value());
  EXPECT(s.try_recv().error() == Errc::closed);
  EXPECT(k.stats().notifications == 1);
  std::puts("consumer: ok");
  return 0;
}
