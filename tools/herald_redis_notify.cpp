// herald-redis-notify: the notifying side of the bridge demo. Exports a kernel handle on a Redis
// channel and notifies it (each notification is PUBLISHed by the bridge's thread), or publishes a
// task state through TaskNotifier (writing it to a state file first: the durable store a waiter
// polls when Redis is down).
#include <herald/herald.hpp>
#include <herald/redis_bridge.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace {

constexpr const char* kUsage =
    "usage: herald-redis-notify [options] CHANNEL          notify CHANNEL --count times\n"
    "       herald-redis-notify [options] --task ID STATE  publish a task state\n"
    "options:\n"
    "  --url URL          redis://[[user]:password@]host[:port][/db] (default $HERALD_REDIS_URL,\n"
    "                     else redis://127.0.0.1:6379)\n"
    "  --prefix P         channel namespace (default herald)\n"
    "  --count N          notifications (default 1); arg k for the k-th\n"
    "  --interval-ms MS   between notifications (default 0)\n"
    "  --state-file PATH  --task: write STATE there first (the store a waiter polls)\n"
    "exit status: 0 every message published, 1 Redis refused or dropped some, 2 bad usage\n";

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "herald-redis-notify: %s\n%s", why, kUsage);
  std::exit(2);
}

std::optional<herald::TaskState> parse_state(const std::string& s) {
  for (int i = 0; i <= static_cast<int>(herald::TaskState::cancelled); ++i) {
    const auto state = static_cast<herald::TaskState>(i);
    if (herald::to_string(state) == s) return state;
  }
  return std::nullopt;
}

long long stat(const std::string& json, const char* key) {
  const std::string needle = std::string("\"") + key + "\":";
  const auto at = json.find(needle);
  return at == std::string::npos ? -1 : std::atoll(json.c_str() + at + needle.size());
}

}  // namespace

int main(int argc, char** argv) {
  herald::RedisOptions options;
  if (const char* env = std::getenv("HERALD_REDIS_URL")) options.url = env;
  long count = 1, interval_ms = 0;
  std::string task, state_name, state_file, channel;
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
    } else if (a == "--interval-ms") {
      interval_ms = std::atol(value().c_str());
    } else if (a == "--state-file") {
      state_file = value();
    } else if (a == "--task") {
      task = value();
      state_name = value();
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      usage(("unknown option " + a).c_str());
    } else {
      channel = a;
    }
  }
  if (task.empty() == channel.empty()) usage("give a CHANNEL or --task ID STATE");

  herald::Kernel kernel;
  std::string why;
  auto bridge = herald::RedisBridge::connect(kernel, options, &why);
  if (!bridge) {
    std::fprintf(stderr, "herald-redis-notify: %s (%s)\n", why.c_str(),
                 std::string(herald::to_string(bridge.error())).c_str());
    return 1;
  }
  long expected = count;
  if (!task.empty()) {
    const auto state = parse_state(state_name);
    if (!state) usage("STATE is one of pending running completed failed timed_out cancelled");
    if (!state_file.empty()) std::ofstream(state_file) << state_name << "\n";
    herald::TaskNotifier notifier(kernel, bridge->get(), nullptr);
    if (auto r = notifier.notify_task_updated(task, *state); !r) {
      std::fprintf(stderr, "herald-redis-notify: %s\n",
                   std::string(herald::to_string(r.error())).c_str());
      return 1;
    }
    expected = 1;
    std::printf("task %s -> %s\n", task.c_str(), state_name.c_str());
  } else {
    const herald::Handle h = kernel.register_handle().value();
    if (auto r = (*bridge)->export_handle(h, channel); !r) {
      std::fprintf(stderr, "herald-redis-notify: channel '%s': %s\n", channel.c_str(),
                   std::string(herald::to_string(r.error())).c_str());
      return 1;
    }
    for (long k = 1; k <= count; ++k) {
      const auto receipt = kernel.notify(h, k).value();
      std::printf("notify seq=%llu arg=%ld\n", static_cast<unsigned long long>(receipt.seq), k);
      if (interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  }
  // Wait (bounded) until the bridge's thread has published everything, or counted it dropped.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string stats = (*bridge)->stats();
  while (stat(stats, "published") + stat(stats, "export_drops") < expected &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    stats = (*bridge)->stats();
  }
  std::printf("stats %s\n", stats.c_str());
  return stat(stats, "published") == expected ? 0 : 1;
}
