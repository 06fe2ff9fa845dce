// herald-stress: a load generator for sizing the kernel. Notifier threads notify random handles;
// every handle has subscriptions drained by a consumer thread; coroutine waiters (one EventLoop)
// and blocking waiters wait on the handles and measure wake latency. Ends with a summary and the
// conservation check (received + size + dropped == notifications, per subscription).
#include <unistd.h>
#include <herald/herald.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  unsigned notifiers = 2;
  unsigned handles = 64;
  unsigned subs = 4;
  unsigned capacity = 256;
  herald::Overflow overflow = herald::Overflow::drop_newest;
  unsigned coroutine_waiters = 4;
  unsigned blocking_waiters = 2;
  double duration = 10.0;
  bool describe = false;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: herald-stress [options]\n"
    "  --notifiers N           notifier threads (default 2)\n"
    "  --handles N             handles (default 64)\n"
    "  --subs N                subscriptions per handle (default 4)\n"
    "  --capacity N            subscription capacity (default 256)\n"
    "  --overflow POLICY       drop_newest | keep_latest (default drop_newest)\n"
    "  --coroutine-waiters N   coroutine waiters on one EventLoop (default 4)\n"
    "  --blocking-waiters N    threads in wait_blocking (default 2)\n"
    "  --duration SECONDS      how long to notify (default 10)\n"
    "  --describe              print Kernel::describe() JSON at the end\n"
    "  --json                  print the summary as JSON\n";

[[noreturn]] void bad(const std::string& why) {
  std::fprintf(stderr, "herald-stress: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

unsigned parse_count(std::string_view name, const char* text, unsigned min, unsigned max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max)
    bad(std::string(name) + " wants a whole number from " + std::to_string(min) + " to " +
        std::to_string(max) + ", not '" + text + "'");
  return static_cast<unsigned>(v);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--notifiers") {
      c.notifiers = parse_count(a, value(), 1, 256);
    } else if (a == "--handles") {
      c.handles = parse_count(a, value(), 1, 1u << 20);
    } else if (a == "--subs") {
      c.subs = parse_count(a, value(), 0, 1024);
    } else if (a == "--capacity") {
      c.capacity = parse_count(a, value(), 1, 1u << 20);
    } else if (a == "--overflow") {
      const std::string_view v = value();
      if (v == "drop_newest") {
        c.overflow = herald::Overflow::drop_newest;
      } else if (v == "keep_latest") {
        c.overflow = herald::Overflow::keep_latest;
      } else {
        bad("--overflow is drop_newest or keep_latest, not '" + std::string(v) + "'");
      }
    } else if (a == "--coroutine-waiters") {
      c.coroutine_waiters = parse_count(a, value(), 0, 4096);
    } else if (a == "--blocking-waiters") {
      c.blocking_waiters = parse_count(a, value(), 0, 256);
    } else if (a == "--duration") {
      const char* text = value();
      char* end = nullptr;
      c.duration = std::strtod(text, &end);
      if (end == text || *end != '\0' || !(c.duration > 0) || c.duration > 86400)
        bad(std::string("--duration wants seconds above 0, not '") + text + "'");
    } else if (a == "--describe") {
      c.describe = true;
    } else if (a == "--json") {
      c.json = true;
    } else {
      bad("unknown option '" + std::string(a) + "'");
    }
  }
  return c;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

/// Wake latencies (ns) gathered by one waiter; bounded so a long run cannot grow without end.
struct Samples {
  std::vector<std::int64_t> ns;
  std::uint64_t wakes = 0;
  void add(std::int64_t v) {
    ++wakes;
    if (ns.size() < (1u << 20)) ns.push_back(v);
  }
};

herald::Task<void> coroutine_waiter(herald::Kernel& k, herald::Handle h,
                                    const std::atomic<bool>& stop, Samples& out,
                                    std::atomic<unsigned>& running, herald::EventLoop& loop) {
  while (!stop.load(std::memory_order_relaxed)) {
    const herald::Ticket t = k.observe(h).value();
    auto r = co_await k.wait(h, t, {.timeout = std::chrono::milliseconds(100)});
    if (r) out.add(now_ns() - r->arg);
  }
  if (running.fetch_sub(1) == 1) loop.stop();
}

double percentile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return static_cast<double>(v[i]) / 1000.0;
}

std::string si(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (v >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  const bool tty = ::isatty(STDOUT_FILENO) != 0;

  herald::Kernel kernel(
      herald::KernelOptions{.max_handles = std::max(cfg.handles, 16u),
                            .max_subscription_capacity = std::max(cfg.capacity, 65536u),
                            .memory_limit = std::size_t{1} << 30});
  const auto producers = cfg.notifiers == 1 ? herald::Producers::single : herald::Producers::multi;
  std::vector<herald::Handle> handles;
  std::vector<herald::Subscription> subs;
  std::vector<unsigned> sub_handle;
  for (unsigned i = 0; i < cfg.handles; ++i) {
    auto h =
        kernel.register_handle({.debug_hint = "stress",
                                .producers = producers,
                                .max_waiters = cfg.coroutine_waiters + cfg.blocking_waiters + 1,
                                .max_subscribers = std::max(cfg.subs, 1u)});
    if (!h) bad(std::string("register_handle: ") + herald::to_string(h.error()).data());
    handles.push_back(*h);
    for (unsigned s = 0; s < cfg.subs; ++s) {
      auto sub = kernel.subscribe(*h, {.capacity = cfg.capacity, .overflow = cfg.overflow});
      if (!sub) bad(std::string("subscribe: ") + herald::to_string(sub.error()).data());
      subs.push_back(std::move(sub).value());
      sub_handle.push_back(i);
    }
  }

  std::atomic<bool> stop_notifying{false};
  std::atomic<bool> stop_waiting{false};
  std::atomic<unsigned> notifiers_done{0};
  std::vector<std::vector<std::uint64_t>> sent(cfg.notifiers,
                                               std::vector<std::uint64_t>(cfg.handles, 0));
  std::vector<std::uint64_t> received(subs.size(), 0);

  std::vector<std::thread> threads;
  for (unsigned t = 0; t < cfg.notifiers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      std::vector<std::uint64_t>& mine = sent[t];
      while (!stop_notifying.load(std::memory_order_relaxed)) {
        for (int burst = 0; burst < 256; ++burst) {
          const auto i = static_cast<unsigned>(rng() % cfg.handles);
          if (kernel.notify(handles[i], now_ns())) ++mine[i];
        }
      }
      notifiers_done.fetch_add(1);
    });
  }
  std::thread consumer([&] {
    std::array<herald::Notification, 256> batch{};
    for (;;) {
      const bool finished = notifiers_done.load() == cfg.notifiers;
      std::size_t got = 0;
      for (std::size_t i = 0; i < subs.size(); ++i) {
        const std::size_t n = subs[i].try_recv_batch(batch);
        received[i] += n;
        got += n;
      }
      if (finished && got == 0) return;
      if (got == 0) std::this_thread::yield();
    }
  });

  std::vector<Samples> blocking_samples(cfg.blocking_waiters);
  for (unsigned w = 0; w < cfg.blocking_waiters; ++w) {
    threads.emplace_back([&, w] {
      const herald::Handle h = handles[w % cfg.handles];
      while (!stop_waiting.load(std::memory_order_relaxed)) {
        const herald::Ticket t = kernel.observe(h).value();
        auto r = kernel.wait_blocking(h, t, {.timeout = std::chrono::milliseconds(100)});
        if (r) blocking_samples[w].add(now_ns() - r->arg);
      }
    });
  }
  herald::EventLoop loop;
  std::vector<Samples> coroutine_samples(cfg.coroutine_waiters);
  std::atomic<unsigned> coroutines_running{cfg.coroutine_waiters};
  for (unsigned w = 0; w < cfg.coroutine_waiters; ++w)
    herald::spawn(loop, coroutine_waiter(kernel, handles[w % cfg.handles], stop_waiting,
                                         coroutine_samples[w], coroutines_running, loop));
  std::thread loop_thread([&] {
    if (cfg.coroutine_waiters != 0) loop.run();
  });

  // Progress, and peak memory sampled every 100 ms.
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(cfg.duration));
  std::size_t peak_memory = 0;
  auto next_report = start + std::chrono::seconds(1);
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const herald::KernelStats s = kernel.stats();
    peak_memory = std::max(peak_memory, s.memory_used);
    if (Clock::now() >= next_report && !cfg.json) {
      next_report += std::chrono::seconds(1);
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      std::printf("%s[%5.1fs] notifications %s (%s/s)  delivered %s  dropped %s  memory %.1f MiB%s",
                  tty ? "\r" : "", secs, si(static_cast<double>(s.notifications)).c_str(),
                  si(static_cast<double>(s.notifications) / secs).c_str(),
                  si(static_cast<double>(s.delivered)).c_str(),
                  si(static_cast<double>(s.dropped)).c_str(),
                  static_cast<double>(s.memory_used) / (1 << 20), tty ? "" : "\n");
      std::fflush(stdout);
    }
  }
  stop_notifying = true;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (unsigned t = 0; t < cfg.notifiers; ++t) threads[t].join();
  consumer.join();
  stop_waiting = true;
  for (std::size_t t = cfg.notifiers; t < threads.size(); ++t) threads[t].join();
  loop_thread.join();
  if (tty && !cfg.json) std::printf("\n");

  // Conservation, per subscription: everything notified on its handle was received, is still
  // buffered, or was counted as dropped.
  std::vector<std::uint64_t> per_handle(cfg.handles, 0);
  for (const auto& mine : sent)
    for (unsigned i = 0; i < cfg.handles; ++i) per_handle[i] += mine[i];
  std::uint64_t notifications = 0;
  for (auto n : per_handle) notifications += n;
  std::size_t failures = 0;
  std::uint64_t delivered = 0, dropped = 0;
  for (std::size_t i = 0; i < subs.size(); ++i) {
    const std::uint64_t observed = per_handle[sub_handle[i]];
    delivered += received[i] + subs[i].size();
    dropped += subs[i].dropped();
    if (received[i] + subs[i].size() + subs[i].dropped() != observed) {
      if (failures++ < 5)
        std::fprintf(stderr,
                     "FAIL: subscription %zu: received %llu + size %zu + dropped %llu != %llu\n", i,
                     static_cast<unsigned long long>(received[i]), subs[i].size(),
                     static_cast<unsigned long long>(subs[i].dropped()),
                     static_cast<unsigned long long>(observed));
    }
  }
  const herald::KernelStats ks = kernel.stats();
  if (ks.notifications != notifications || ks.delivered + ks.dropped != delivered + dropped) {
    ++failures;
    std::fprintf(stderr, "FAIL: kernel totals disagree with the callers' counts\n");
  }
  std::vector<std::int64_t> lat;
  std::uint64_t wakes = 0;
  for (auto* group : {&coroutine_samples, &blocking_samples})
    for (Samples& s : *group) {
      lat.insert(lat.end(), s.ns.begin(), s.ns.end());
      wakes += s.wakes;
    }
  const double p50 = percentile(lat, 0.50), p99 = percentile(lat, 0.99),
               p999 = percentile(lat, 0.999);
  const bool pass = failures == 0;

  if (cfg.json) {
    std::printf(
        "{\"duration_s\":%.3f,\"notifiers\":%u,\"handles\":%u,\"subscriptions\":%zu,"
        "\"notifications\":%llu,\"notifications_per_s\":%.0f,\"delivered\":%llu,\"dropped\":%llu,"
        "\"wakes\":%llu,\"wake_latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p99_9\":%.2f},"
        "\"peak_memory_bytes\":%zu,\"conservation\":\"%s\"}\n",
        elapsed, cfg.notifiers, cfg.handles, subs.size(),
        static_cast<unsigned long long>(notifications),
        static_cast<double>(notifications) / elapsed, static_cast<unsigned long long>(delivered),
        static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(wakes), p50, p99,
        p999, peak_memory, pass ? "PASS" : "FAIL");
  } else {
    std::printf(
        "herald-stress: %u notifiers, %u handles x %u subscriptions (capacity %u, %s), "
        "%u coroutine + %u blocking waiters, %.1f s\n",
        cfg.notifiers, cfg.handles, cfg.subs, cfg.capacity,
        cfg.overflow == herald::Overflow::keep_latest ? "keep_latest" : "drop_newest",
        cfg.coroutine_waiters, cfg.blocking_waiters, elapsed);
    std::printf("  notifications  %llu (%s/s)\n", static_cast<unsigned long long>(notifications),
                si(static_cast<double>(notifications) / elapsed).c_str());
    std::printf("  delivered      %llu\n  dropped        %llu\n",
                static_cast<unsigned long long>(delivered),
                static_cast<unsigned long long>(dropped));
    std::printf("  wake latency   p50 %.1f us  p99 %.1f us  p99.9 %.1f us  (%llu wakes)\n", p50,
                p99, p999, static_cast<unsigned long long>(wakes));
    std::printf("  peak memory    %.2f MiB\n", static_cast<double>(peak_memory) / (1 << 20));
    std::printf(
        "  conservation   %s (received + size + dropped == notifications, %zu subscriptions)\n",
        pass ? "PASS" : "FAIL", subs.size());
  }
  if (cfg.describe) std::printf("%s\n", kernel.describe().c_str());
  return pass ? 0 : 1;
}
