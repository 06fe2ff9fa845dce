// herald-redis-wait: the waiting side of the bridge demo. Imports a Redis channel as a local
// kernel handle and waits on it like on any handle, printing each notification (kResync after a
// reconnect); or follows one task through TaskNotifier, polling a state file (the durable store)
// while Redis is down or absent.
#include <herald/herald.hpp>
#include <herald/redis_bridge.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

namespace {

constexpr const char* kUsage =
    "usage: herald-redis-wait [options] CHANNEL    print --count notifications of CHANNEL\n"
    "       herald-redis-wait [options] --task ID  print the task's states until it ends\n"
    "options:\n"
    "  --url URL          redis://[[user]:password@]host[:port][/db] (default $HERALD_REDIS_URL,\n"
    "                     else redis://127.0.0.1:6379)\n"
    "  --prefix P         channel namespace (default herald)\n"
    "  --count N          notifications to wait for (default 1)\n"
    "  --timeout-ms MS    give up after MS (default 10000; --task: the stream's expiry)\n"
    "  --state-file PATH  --task: poll the state there (one word) when Redis cannot tell\n"
    "  --no-redis         --task: no bridge at all, polling alone\n"
    "Prints 'ready' once subscribed. exit status: 0 done, 1 timeout or Redis refused, 2 bad "
    "usage\n";

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "herald-redis-wait: %s\n%s", why, kUsage);
  std::exit(2);
}

std::optional<herald::TaskState> read_state(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word)) return std::nullopt;
  for (int i = 0; i <= static_cast<int>(herald::TaskState::cancelled); ++i) {
    const auto state = static_cast<herald::TaskState>(i);
    if (herald::to_string(state) == word) return state;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  herald::RedisOptions options;
  if (const char* env = std::getenv("HERALD_REDIS_URL")) options.url = env;
  long count = 1, timeout_ms = 10000;
  bool no_redis = false;
  std::string task, state_file, channel;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--url") {
      options.url = value();
    } else if (a == "--prefix") {
      options.prefix = value();
    } else if (a == "--count") {
      count = std::atol(value().c_str());
      if (count < 1) usage("--count must be >= 1");
    } else if (a == "--timeout-ms") {
      timeout_ms = std::atol(value().c_str());
    } else if (a == "--state-file") {
      state_file = value();
    } else if (a == "--task") {
      task = value();
    } else if (a == "--no-redis") {
      no_redis = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      usage(("unknown option " + a).c_str());
    } else {
      channel = a;
    }
  }
  if (task.empty() == channel.empty()) usage("give a CHANNEL or --task ID");

  herald::Kernel kernel;
  std::unique_ptr<herald::RedisBridge> bridge;
  if (!no_redis) {
    // A task follower starts even while Redis is down: it polls until the link comes up.
    options.require_initial_connection = task.empty();
    std::string why;
    auto b = herald::RedisBridge::connect(kernel, options, &why);
    if (!b) {
      std::fprintf(stderr, "herald-redis-wait: %s (%s)\n", why.c_str(),
                   std::string(herald::to_string(b.error())).c_str());
      return 1;
    }
    bridge = std::move(*b);
  }
  const auto timeout = std::chrono::milliseconds(timeout_ms);

  if (!task.empty()) {
    herald::TaskNotifier notifier(kernel, bridge.get(), [&](std::string_view) {
      return state_file.empty() ? std::nullopt : read_state(state_file);
    });
    herald::TaskStream stream = notifier.subscribe_to_task(task, timeout);
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) {
      auto s = stream.next_blocking(timeout + std::chrono::seconds(1));
      if (!s) {
        std::fprintf(stderr, "herald-redis-wait: %s\n",
                     std::string(herald::to_string(s.error())).c_str());
        return 1;
      }
      std::printf("task %s: %s (polls so far: %llu)\n", task.c_str(),
                  std::string(herald::to_string(*s)).c_str(),
                  static_cast<unsigned long long>(stream.polls()));
      std::fflush(stdout);
      if (stream.done()) return *s == herald::TaskState::timed_out ? 1 : 0;
    }
  }

  auto h = bridge->import_channel(channel);
  if (!h) {
    std::fprintf(stderr, "herald-redis-wait: channel '%s': %s\n", channel.c_str(),
                 std::string(herald::to_string(h.error())).c_str());
    return 1;
  }
  auto sub = kernel.subscribe(*h).value();
  std::printf("ready\n");
  std::fflush(stdout);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (long got = 0; got < count;) {
    herald::WaitOptions wo;
    wo.timeout = deadline - std::chrono::steady_clock::now();
    auto n = sub.recv_blocking(wo);
    if (!n) {
      std::fprintf(stderr, "herald-redis-wait: %s after %ld of %ld\n",
                   std::string(herald::to_string(n.error())).c_str(), got, count);
      return 1;
    }
    if (n->arg == herald::RedisBridge::kResync) {
      std::printf("resync (the link was re-made: re-read durable state)\n");
    } else {
      ++got;
      std::printf("woken seq=%llu arg=%lld\n", static_cast<unsigned long long>(n->seq),
                  static_cast<long long>(n->arg));
    }
    std::fflush(stdout);
  }
  std::printf("stats %s\n", bridge->stats().c_str());
  return 0;
}
