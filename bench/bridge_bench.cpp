// bridge/<family>/<impl>: the Redis bridge against raw hiredis on the same redis-server, in the
// same run. The bench starts its own redis-server on a free loopback port (no persistence) and
// stops it at exit; without one, every bridge benchmark reports why and skips.
//   bridge/wake_latency/{herald,raw_hiredis}: notify on an exported handle -> a thread parked on
//       the imported handle of a second bridge (its own two connections) wakes; against PUBLISH on
//       one connection -> the message read on a SUBSCRIBEd second connection, both on the
//       measuring thread (no thread hop at all), and raw_hiredis_threads: the same with a reader
//       thread that wakes the measuring thread (one hop). Manual time = the latency; p50/p99.
//   bridge/export_throughput/{herald,raw_pipelined}: 4096 notifications -> all published (the
//       bridge's thread drains and pipelines); against 4096 PUBLISHes appended, written and
//       answered in one pipeline. items/s; the export's drops as a counter.
//   bridge/poll_fallback/herald/delay_ms:D: Redis down (nothing listens on the port), a task's
//       state flips D ms after subscribe_to_task; the latency until the stream yields it shows
//       the polling backoff (polls at 0, 100, 300, 700, 1500, 3100 ms ...).
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <herald/herald.hpp>
#include <herald/redis_bridge.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// The bench's redis-server: started on first use, killed at exit (and with this process).
class BenchServer {
 public:
  static BenchServer& get() {
    static BenchServer server;
    return server;
  }
  bool up() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  ~BenchServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

 private:
  BenchServer() {
    std::string binary;
    for (const char* c :
         {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}) {
      if (::access(c, X_OK) == 0) {
        binary = c;
        break;
      }
    }
    if (const char* env = std::getenv("HERALD_REDIS_SERVER")) binary = env;
    if (binary.empty()) {
      why_ = "redis-server not found (tools/setup installs it)";
      return;
    }
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "herald-bench-redis-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    port_ = free_port();
    const std::string port = std::to_string(port_);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execl(binary.c_str(), "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), "--logfile",
              (dir_ + "/redis.log").c_str(), nullptr);
      ::_exit(127);
    }
    pid_ = pid;
    for (int i = 0; i < 500; ++i) {
      timeval tv{0, 100000};
      redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
      const bool ok = c != nullptr && c->err == 0;
      if (c != nullptr) redisFree(c);
      if (ok) return;
      std::this_thread::sleep_for(10ms);
    }
    why_ = "redis-server did not start";
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string dir_, why_;
  int port_ = 0;
  pid_t pid_ = -1;
};

bool need_server(benchmark::State& state) {
  if (BenchServer::get().up()) return true;
  state.SkipWithError(("skipped: " + BenchServer::get().why()).c_str());
  return false;
}

herald::RedisOptions bench_options() {
  herald::RedisOptions o;
  o.url = BenchServer::get().url();
  o.prefix = "herald-bench";
  o.export_capacity = 65536;
  return o;
}

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
}

void wake_latency_herald(benchmark::State& state) {
  if (!need_server(state)) return;
  herald::Kernel kernel_a, kernel_b;  // two kernels: what two processes would hold
  auto a = herald::RedisBridge::connect(kernel_a, bench_options());
  auto b = herald::RedisBridge::connect(kernel_b, bench_options());
  if (!a || !b) {
    state.SkipWithError("connect failed");
    return;
  }
  const herald::Handle source = kernel_a.register_handle().value();
  if (!(*a)->export_handle(source, "wake")) {
    state.SkipWithError("export failed");
    return;
  }
  const herald::Handle imported = (*b)->import_channel("wake").value();
  std::vector<double> us;
  std::int64_t k = 0;
  for (auto _ : state) {
    const herald::Ticket t = kernel_b.observe(imported).value();
    const auto t0 = Clock::now();
    (void)kernel_a.notify(source, ++k);
    auto n = kernel_b.wait_blocking(imported, t, {.timeout = 5s});
    const auto t1 = Clock::now();
    if (!n || n->arg != k) {
      state.SkipWithError("lost a wake");
      break;
    }
    const double d = std::chrono::duration<double, std::micro>(t1 - t0).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  report_percentiles(state, us);
}

void wake_latency_raw(benchmark::State& state) {
  if (!need_server(state)) return;
  timeval tv{5, 0};
  redisContext* pub = redisConnectWithTimeout("127.0.0.1", BenchServer::get().port(), tv);
  redisContext* sub = redisConnectWithTimeout("127.0.0.1", BenchServer::get().port(), tv);
  if (pub == nullptr || sub == nullptr || pub->err != 0 || sub->err != 0) {
    state.SkipWithError("connect failed");
    if (pub) redisFree(pub);
    if (sub) redisFree(sub);
    return;
  }
  redisSetTimeout(sub, tv);
  freeReplyObject(redisCommand(sub, "SUBSCRIBE herald-bench:raw-wake"));
  std::vector<double> us;
  std::int64_t k = 0;
  for (auto _ : state) {
    ++k;
    const std::string payload =
        "{\"seq\":" + std::to_string(k) + ",\"arg\":" + std::to_string(k) + ",\"origin\":\"raw\"}";
    const auto t0 = Clock::now();
    redisAppendCommand(pub, "PUBLISH herald-bench:raw-wake %b", payload.data(), payload.size());
    int done = 0;
    while (done == 0) redisBufferWrite(pub, &done);
    void* msg = nullptr;
    const int rc = redisGetReply(sub, &msg);
    const auto t1 = Clock::now();
    if (rc != REDIS_OK || msg == nullptr) {
      state.SkipWithError("lost a message");
      break;
    }
    freeReplyObject(msg);
    void* reply = nullptr;
    if (redisGetReply(pub, &reply) == REDIS_OK) freeReplyObject(reply);
    const double d = std::chrono::duration<double, std::micro>(t1 - t0).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  report_percentiles(state, us);
  redisFree(pub);
  redisFree(sub);
}

/// The raw round trip shaped like a waiter in another process: the measuring thread PUBLISHes,
/// a reader thread blocked on the SUBSCRIBEd connection gets the message and wakes the measuring
/// thread (one thread hop, where herald has two: its publisher thread and its subscriber thread).
void wake_latency_raw_threads(benchmark::State& state) {
  if (!need_server(state)) return;
  timeval tv{5, 0};
  redisContext* pub = redisConnectWithTimeout("127.0.0.1", BenchServer::get().port(), tv);
  redisContext* sub = redisConnectWithTimeout("127.0.0.1", BenchServer::get().port(), tv);
  if (pub == nullptr || sub == nullptr || pub->err != 0 || sub->err != 0) {
    state.SkipWithError("connect failed");
    if (pub) redisFree(pub);
    if (sub) redisFree(sub);
    return;
  }
  freeReplyObject(redisCommand(sub, "SUBSCRIBE herald-bench:raw-wake-threads"));
  std::atomic<std::int64_t> seen{0};
  std::atomic<std::uint32_t> seen_gen{0};  // the futex word: bumped after every store to `seen`
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      void* msg = nullptr;
      if (redisGetReply(sub, &msg) != REDIS_OK || msg == nullptr) break;
      auto* r = static_cast<redisReply*>(msg);
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3)
        seen.store(std::atoll(r->element[2]->str), std::memory_order_release);
      freeReplyObject(msg);
      seen_gen.fetch_add(1, std::memory_order_release);
      herald_bench::futex_wake(seen_gen);
    }
  });
  std::vector<double> us;
  std::int64_t k = 0;
  for (auto _ : state) {
    ++k;
    const std::string payload = std::to_string(k);
    const auto t0 = Clock::now();
    auto* reply = static_cast<redisReply*>(redisCommand(
        pub, "PUBLISH herald-bench:raw-wake-threads %b", payload.data(), payload.size()));
    if (reply != nullptr) freeReplyObject(reply);
    for (;;) {
      const std::uint32_t gen = seen_gen.load(std::memory_order_acquire);
      if (seen.load(std::memory_order_acquire) == k) break;
      herald_bench::futex_wait(seen_gen, gen);
    }
    const auto t1 = Clock::now();
    const double d = std::chrono::duration<double, std::micro>(t1 - t0).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  report_percentiles(state, us);
  stop.store(true);
  freeReplyObject(redisCommand(pub, "PUBLISH herald-bench:raw-wake-threads 0"));
  reader.join();
  redisFree(pub);
  redisFree(sub);
}

constexpr int kBurst = 4096;

long long stat(const std::string& json, const char* key) {
  const std::string needle = std::string("\"") + key + "\":";
  const auto at = json.find(needle);
  return at == std::string::npos ? -1 : std::atoll(json.c_str() + at + needle.size());
}

void export_throughput_herald(benchmark::State& state) {
  if (!need_server(state)) return;
  herald::Kernel kernel;
  auto bridge = herald::RedisBridge::connect(kernel, bench_options());
  if (!bridge) {
    state.SkipWithError("connect failed");
    return;
  }
  const herald::Handle h = kernel.register_handle().value();
  (void)(*bridge)->export_handle(h, "throughput");
  long long done = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBurst; ++i) (void)kernel.notify(h, i);
    done += kBurst;
    const auto deadline = Clock::now() + 10s;
    for (;;) {
      const std::string s = (*bridge)->stats();
      if (stat(s, "published") + stat(s, "export_drops") >= done) break;
      if (Clock::now() > deadline) {
        state.SkipWithError("export stalled");
        return;
      }
      std::this_thread::sleep_for(20us);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  state.counters["drops"] = static_cast<double>(stat((*bridge)->stats(), "export_drops"));
}

void export_throughput_raw(benchmark::State& state) {
  if (!need_server(state)) return;
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", BenchServer::get().port(), tv);
  if (c == nullptr || c->err != 0) {
    state.SkipWithError("connect failed");
    if (c) redisFree(c);
    return;
  }
  redisSetTimeout(c, tv);
  const std::string channel = "herald-bench:raw-throughput";
  std::uint64_t seq = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBurst; ++i) {
      const std::string payload = "{\"seq\":" + std::to_string(++seq) +
                                  ",\"arg\":" + std::to_string(i) + ",\"origin\":\"raw\"}";
      const char* argv[3] = {"PUBLISH", channel.data(), payload.data()};
      const std::size_t lens[3] = {7, channel.size(), payload.size()};
      redisAppendCommandArgv(c, 3, argv, lens);
    }
    int done = 0;
    while (done == 0) redisBufferWrite(c, &done);
    for (int i = 0; i < kBurst; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) {
        state.SkipWithError("no reply");
        redisFree(c);
        return;
      }
      freeReplyObject(reply);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  redisFree(c);
}

void poll_fallback(benchmark::State& state) {
  const auto delay = std::chrono::milliseconds(state.range(0));
  herald::Kernel kernel;
  herald::RedisOptions o;
  o.url = "redis://127.0.0.1:" + std::to_string(free_port());  // nothing listens: Redis is down
  o.require_initial_connection = false;
  auto bridge = herald::RedisBridge::connect(kernel, o);
  if (!bridge) {
    state.SkipWithError("bridge failed");
    return;
  }
  std::vector<double> us;
  int task = 0;
  for (auto _ : state) {
    std::atomic<Clock::rep> flipped_at{0};
    herald::TaskNotifier notifier(kernel, bridge->get(), [&](std::string_view) {
      const auto at = flipped_at.load();
      return (at != 0 && Clock::now().time_since_epoch().count() >= at)
                 ? herald::TaskState::completed
                 : herald::TaskState::running;
    });
    auto stream = notifier.subscribe_to_task("t" + std::to_string(++task), 30s);
    (void)stream.next_blocking(1s);  // running, from the first poll
    const auto flip = Clock::now() + delay;
    flipped_at = flip.time_since_epoch().count();
    auto s = stream.next_blocking(30s);
    const auto t1 = Clock::now();
    if (!s || *s != herald::TaskState::completed) {
      state.SkipWithError("the stream did not complete");
      break;
    }
    const double d = std::chrono::duration<double, std::micro>(t1 - flip).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  report_percentiles(state, us);
}

}  // namespace

BENCHMARK(wake_latency_herald)
    ->Name("bridge/wake_latency/herald")
    ->UseManualTime()
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(wake_latency_raw)
    ->Name("bridge/wake_latency/raw_hiredis")
    ->UseManualTime()
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(wake_latency_raw_threads)
    ->Name("bridge/wake_latency/raw_hiredis_threads")
    ->UseManualTime()
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(export_throughput_herald)->Name("bridge/export_throughput/herald")->UseRealTime();
BENCHMARK(export_throughput_raw)->Name("bridge/export_throughput/raw_pipelined")->UseRealTime();
// Each sample waits out part of a poll interval; a few samples per delay.
BENCHMARK(poll_fallback)
    ->Name("bridge/poll_fallback/herald")
    ->ArgName("delay_ms")
    ->Arg(50)
    ->Arg(250)
    ->Arg(1000)
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
