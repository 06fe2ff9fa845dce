// A worker thread notifies; a subscriber drains a bounded channel, a blocking waiter waits, and a
// coroutine on an EventLoop waits on the same handle.
#include <herald/herald.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

using namespace std::chrono_literals;

namespace {

herald::Task<void> on_disk(herald::Kernel& k, herald::Handle disk, herald::EventLoop& loop) {
  herald::Ticket seen = k.observe(disk).value();
  for (int i = 0; i < 3; ++i) {
    auto n =
        co_await k.wait(disk, seen, {.timeout = std::chrono::seconds(1)});  // resumes on `loop`
    if (!n) break;  // timed_out, cancelled, closed ...
    std::printf("coroutine: block %lld ready (seq %llu)\n", static_cast<long long>(n->arg),
                static_cast<unsigned long long>(n->seq));
    seen.seq = n->seq;
  }
  loop.stop();
}

}  // namespace

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

  // The coroutine form: a task on an EventLoop, notified from a worker thread.
  herald::EventLoop loop;
  herald::spawn(loop, on_disk(kernel, disk, loop));  // arguments, not captures, reach the frame
  std::thread slow_worker([&] {
    for (std::int64_t b = 0; b < 3; ++b) {
      std::this_thread::sleep_for(10ms);
      (void)kernel.notify(disk, b);
    }
  });
  loop.run();  // the coroutine never runs on the worker's thread
  slow_worker.join();

  (void)kernel.unregister_handle(disk);
  std::size_t left = 0;
  while (log.try_recv()) ++left;  // buffered before the unregister: still handed out
  std::printf("after unregister: %zu buffered received, then notify -> %s, receive -> %s\n", left,
              herald::to_string(kernel.notify(disk, 1).error()).data(),
              herald::to_string(log.try_recv().error()).data());
  std::printf("%s\n", kernel.describe().c_str());
}
