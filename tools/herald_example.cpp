// A worker thread notifies; a subscriber drains a bounded channel and a blocking waiter waits.
#include <herald/herald.hpp>

#include <cstdio>
#include <thread>

int main() {
  herald::Kernel kernel;
  const herald::Handle disk = kernel.register_handle({.debug_hint = "disk-io"}).value();
  herald::Subscription log = kernel.subscribe(disk, {.capacity = 4, .debug_hint = "log"}).value();

  const herald::Ticket seen = kernel.observe(disk).value();
  std::thread worker([&] {
    for (std::int64_t block = 100; block < 110; ++block) (void)kernel.notify(disk, block);
  });
  const auto woke = kernel.wait_blocking(disk, seen);  // no lost wakeup: the ticket came first
  worker.join();
  std::printf("waiter woke with seq %llu (arg %lld)\n", static_cast<unsigned long long>(woke->seq),
              static_cast<long long>(woke->arg));

  while (auto n = log.try_recv())
    std::printf("log received seq %llu arg %lld\n", static_cast<unsigned long long>(n->seq),
                static_cast<long long>(n->arg));
  std::printf("log dropped %llu (capacity 4, drop_newest)\n",
              static_cast<unsigned long long>(log.dropped()));

  (void)kernel.unregister_handle(disk);
  std::printf("after unregister: notify -> %s, receive -> %s\n",
              herald::to_string(kernel.notify(disk, 1).error()).data(),
              herald::to_string(log.try_recv().error()).data());
  std::printf("%s\n", kernel.describe().c_str());
}
