// Round trips between the benchmark thread (CPU 0) and an echo thread (CPU 1) through two
// channels, "ping" and "pong"; one round trip per iteration, real time.
//
// pingpong_blocking/<impl>: both sides block in the implementation's wait.
//   futex       FUTEX_WAIT / FUTEX_WAKE on a 32-bit word, called directly
//   eventfd     write(2) / read(2) on two eventfds
//   condvar     one std::mutex, two std::condition_variable
//   seed_design notify + a promise-based wait through the seed kernel
//   herald      Kernel::notify + Kernel::wait_blocking on two handles
// pingpong_coroutine/<impl>: a coroutine on a single-threaded loop (the benchmark thread) sends
// ping and awaits pong; the echo thread blocks in the implementation's own idle wait.
//   asio        experimental::concurrent_channel with use_awaitable; each side on an io_context
//   herald      a Task on an EventLoop: notify + co_await Kernel::wait; echo uses wait_blocking
#include <benchmark/benchmark.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <herald/herald.hpp>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>

#include "bench_support.hpp"
#include "seed_design.hpp"

namespace {

/// Runs `echo` on CPU 1 for the benchmark's duration, the benchmark thread on CPU 0.
class EchoThread {
 public:
  template <class Echo>
  explicit EchoThread(Echo echo)
      : thread_([echo]() mutable {
          herald_bench::pin_to_cpu(1);
          echo();
        }) {
    herald_bench::pin_to_cpu(0);
  }
  EchoThread(const EchoThread&) = delete;
  EchoThread& operator=(const EchoThread&) = delete;
  ~EchoThread() {
    thread_.join();
    herald_bench::unpin();
  }

 private:
  std::thread thread_;
};

// ---- blocking ----

void pingpong_futex(benchmark::State& state) {
  constexpr std::uint32_t kStop = std::numeric_limits<std::uint32_t>::max();
  alignas(64) std::atomic<std::uint32_t> ping{0};  // each word on its own cache line
  alignas(64) std::atomic<std::uint32_t> pong{0};
  EchoThread echo([&] {
    for (std::uint32_t last = 0;;) {
      std::uint32_t now = ping.load(std::memory_order_acquire);
      for (; now == last; now = ping.load(std::memory_order_acquire))
        herald_bench::futex_wait(ping, last);
      last = now;
      if (last == kStop) return;
      pong.store(last, std::memory_order_release);
      herald_bench::futex_wake(pong);
    }
  });
  std::uint32_t n = 0;
  for (auto _ : state) {
    ping.store(++n, std::memory_order_release);
    herald_bench::futex_wake(ping);
    for (std::uint32_t seen = pong.load(std::memory_order_acquire); seen != n;
         seen = pong.load(std::memory_order_acquire)) {
      herald_bench::futex_wait(pong, seen);
    }
  }
  ping.store(kStop, std::memory_order_release);
  herald_bench::futex_wake(ping);
}

void pingpong_eventfd(benchmark::State& state) {
  const int ping = ::eventfd(0, EFD_CLOEXEC);
  const int pong = ::eventfd(0, EFD_CLOEXEC);
  constexpr std::uint64_t kStop = 1ULL << 40;
  {
    EchoThread echo([&] {
      for (;;) {
        std::uint64_t v = 0;
        if (::read(ping, &v, sizeof v) != sizeof v || v >= kStop) return;
        (void)!::write(pong, &v, sizeof v);
      }
    });
    for (auto _ : state) {
      const std::uint64_t one = 1;
      (void)!::write(ping, &one, sizeof one);
      std::uint64_t v = 0;
      (void)!::read(pong, &v, sizeof v);
    }
    (void)!::write(ping, &kStop, sizeof kStop);
  }
  ::close(ping);
  ::close(pong);
}

void pingpong_condvar(benchmark::State& state) {
  std::mutex mutex;
  std::condition_variable ping_cv;
  std::condition_variable pong_cv;
  std::uint64_t ping = 0;
  std::uint64_t pong = 0;
  bool stop = false;
  EchoThread echo([&] {
    std::unique_lock lock(mutex);
    for (std::uint64_t last = 0;;) {
      ping_cv.wait(lock, [&] { return stop || ping != last; });
      if (stop) return;
      last = ping;
      pong = last;
      pong_cv.notify_one();
    }
  });
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::unique_lock lock(mutex);
    ping = ++n;
    ping_cv.notify_one();
    pong_cv.wait(lock, [&] { return pong == n; });
  }
  {
    std::lock_guard lock(mutex);
    stop = true;
  }
  ping_cv.notify_one();
}

void pingpong_seed(benchmark::State& state) {
  seed::Kernel kernel;
  const seed::Kernel::Id ping = kernel.register_handle();
  const seed::Kernel::Id pong = kernel.register_handle();
  {
    EchoThread echo([&] {
      for (std::uint64_t seen = 0;;) {
        const seed::Notification n = kernel.wait(ping, seen);
        if (n.seq == 0) return;  // unregistered
        seen = n.seq;
        kernel.notify(pong, n.arg);
      }
    });
    std::uint64_t seen = 0;
    for (auto _ : state) {
      kernel.notify(ping, 1);
      seen = kernel.wait(pong, seen).seq;
    }
    kernel.unregister_handle(ping);
  }
}

/// herald's echo side in both ping-pong families: a thread blocked in wait_blocking(ping) that
/// answers on pong, until ping is unregistered.
void herald_echo(herald::Kernel& kernel, herald::Handle ping, herald::Handle pong) {
  for (herald::Ticket seen{0};;) {
    const auto n = kernel.wait_blocking(ping, seen);
    if (!n) return;  // closed: unregistered
    seen.seq = n->seq;
    (void)kernel.notify(pong, n->arg);
  }
}

void pingpong_herald(benchmark::State& state) {
  herald::Kernel kernel;
  const herald::Handle ping =
      kernel.register_handle({.producers = herald::Producers::single}).value();
  const herald::Handle pong =
      kernel.register_handle({.producers = herald::Producers::single}).value();
  {
    EchoThread echo([&] { herald_echo(kernel, ping, pong); });
    herald::Ticket seen{0};
    for (auto _ : state) {
      (void)kernel.notify(ping, 1);
      seen.seq = kernel.wait_blocking(pong, seen).value().seq;
    }
    (void)kernel.unregister_handle(ping);
  }
}

// ---- coroutine ----

using Channel =
    boost::asio::experimental::concurrent_channel<void(boost::system::error_code, std::int64_t)>;

boost::asio::awaitable<void> asio_driver(benchmark::State& state, Channel& ping, Channel& pong) {
  for (auto _ : state) {
    co_await ping.async_send(boost::system::error_code{}, 1, boost::asio::use_awaitable);
    benchmark::DoNotOptimize(co_await pong.async_receive(boost::asio::use_awaitable));
  }
  ping.close();  // ends the echo coroutine
}

boost::asio::awaitable<void> asio_echo(Channel& ping, Channel& pong) {
  for (;;) {
    std::int64_t v = 0;
    try {
      v = co_await ping.async_receive(boost::asio::use_awaitable);
    } catch (const boost::system::system_error&) {
      co_return;  // closed
    }
    co_await pong.async_send(boost::system::error_code{}, v, boost::asio::use_awaitable);
  }
}

void pingpong_coroutine_asio(benchmark::State& state) {
  boost::asio::io_context io(1);       // run by the benchmark thread only
  boost::asio::io_context echo_io(1);  // run by the echo thread only
  Channel ping(echo_io, 1);
  Channel pong(io, 1);
  boost::asio::co_spawn(echo_io, asio_echo(ping, pong), boost::asio::detached);
  {
    EchoThread echo([&] { echo_io.run(); });
    boost::asio::co_spawn(io, asio_driver(state, ping, pong), boost::asio::detached);
    io.run();
  }
}

herald::Task<void> herald_driver(benchmark::State& state, herald::Kernel& kernel,
                                 herald::Handle ping, herald::Handle pong,
                                 herald::EventLoop& loop) {
  herald::Ticket seen{0};
  for (auto _ : state) {
    (void)kernel.notify(ping, 1);
    auto n = co_await kernel.wait(pong, seen);
    seen.seq = n.value().seq;
  }
  (void)kernel.unregister_handle(ping);  // ends the echo thread
  loop.stop();
}

void pingpong_coroutine_herald(benchmark::State& state) {
  herald::Kernel kernel;
  const herald::Handle ping =
      kernel.register_handle({.producers = herald::Producers::single}).value();
  const herald::Handle pong =
      kernel.register_handle({.producers = herald::Producers::single}).value();
  herald::EventLoop loop;
  {
    EchoThread echo([&] { herald_echo(kernel, ping, pong); });
    herald::spawn(loop, herald_driver(state, kernel, ping, pong, loop));
    loop.run();
  }
}

}  // namespace

// Registration order is run order: the rows a target compares run next to each other.
BENCHMARK(pingpong_futex)->Name("pingpong_blocking/futex")->UseRealTime();
BENCHMARK(pingpong_herald)->Name("pingpong_blocking/herald")->UseRealTime();
BENCHMARK(pingpong_eventfd)->Name("pingpong_blocking/eventfd")->UseRealTime();
BENCHMARK(pingpong_condvar)->Name("pingpong_blocking/condvar")->UseRealTime();
BENCHMARK(pingpong_seed)->Name("pingpong_blocking/seed_design")->UseRealTime();
BENCHMARK(pingpong_coroutine_asio)->Name("pingpong_coroutine/asio")->UseRealTime();
BENCHMARK(pingpong_coroutine_herald)->Name("pingpong_coroutine/herald")->UseRealTime();
