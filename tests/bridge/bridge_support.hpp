#pragma once

// What the bridge suites share: a real redis-server on a free loopback port (started, paused,
// killed and restarted by the test, always stopped at scope end and killed with this process),
// a raw hiredis client for what a test does behind the bridge's back, and child processes (this
// binary in a child mode).

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <herald/redis_bridge.hpp>

#include "child_process.hpp"

namespace herald::test {

/// Writes a whole line to stdout with one write(2).
inline void report_line(const std::string& line) {
  const std::string l = line + "\n";
  (void)!::write(STDOUT_FILENO, l.data(), l.size());
}

/// A loopback TCP port nobody listens on right now.
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// The redis-server binary: $HERALD_REDIS_SERVER, else the first on PATH, else "".
inline std::string find_redis_server() {
  if (const char* env = std::getenv("HERALD_REDIS_SERVER"); env != nullptr && *env != '\0')
    return env;
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/bin:/usr/sbin:/usr/local/bin";
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

/// Under CI a missing redis-server is a failure, not a skip (tools/setup installs it).
inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

/// A redis-server of its own: loopback only, no persistence (--save '' --appendonly no), in a
/// temporary directory. Killed (SIGKILL) at scope end, and by the kernel if this process dies
/// (PR_SET_PDEATHSIG), so a failing test never leaves one behind.
class RedisServer {
 public:
  /// On `port`, or (0) on a free loopback port.
  explicit RedisServer(std::vector<std::string> extra_args = {}, int port = 0)
      : binary_(find_redis_server()), extra_(std::move(extra_args)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "herald-redis-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    if (binary_.empty()) {
      why_ = "redis-server not found (install the redis-server package: tools/setup)";
      return;
    }
    if (::access(binary_.c_str(), X_OK) != 0) {
      why_ = binary_ + " is not an executable file ($HERALD_REDIS_SERVER or PATH)";
      return;
    }
    if (port != 0) {
      port_ = port;
      start();
      return;
    }
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = free_loopback_port();
      start();
    }
  }
  ~RedisServer() {
    kill_now();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool running() const { return pid_ > 0; }
  const std::string& why_not() const { return why_; }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// Starts the server on port() and waits (up to 5 s) until it answers PING.
  bool start() {
    if (pid_ > 0) return true;
    const std::string log = dir_ + "/redis.log";
    std::vector<std::string> args = {binary_,  "--port",       std::to_string(port_),
                                     "--bind", "127.0.0.1",    "--save",
                                     "",       "--appendonly", "no",
                                     "--dir",  dir_,           "--daemonize",
                                     "no",     "--logfile",    log};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
      ::dup2(devnull, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid < 0) {
      why_ = "fork failed";
      return false;
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        std::ifstream in(log);
        std::stringstream text;
        text << in.rdbuf();
        why_ = "redis-server exited at start on port " + std::to_string(port_) + ": " + text.str();
        return false;
      }
      if (answers_ping()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill_now();
    why_ = "redis-server did not answer PING within 5 s";
    return false;
  }
  /// SIGKILL, then reaps it: the port is free again.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

 private:
  bool answers_ping() const {
    timeval tv{0, 200000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    bool ok = false;
    if (c != nullptr && c->err == 0) {
      redisSetTimeout(c, tv);
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      // A server that requires a password answers NOAUTH: it is up all the same.
      ok = r != nullptr;
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
    return ok;
  }

  std::string binary_;
  std::vector<std::string> extra_;
  std::string dir_;
  std::string why_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A raw hiredis connection (not the bridge's): 2 s timeouts.
class RawClient {
 public:
  explicit RawClient(int port) {
    timeval tv{2, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c_ != nullptr && c_->err == 0) redisSetTimeout(c_, tv);
  }
  ~RawClient() {
    if (c_ != nullptr) redisFree(c_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool ok() const { return c_ != nullptr && c_->err == 0; }
  redisContext* get() const { return c_; }

  /// PUBLISH channel payload (binary-safe); the number of receivers, or -1.
  long long publish(std::string_view channel, std::string_view payload) {
    const char* argv[3] = {"PUBLISH", channel.data(), payload.data()};
    const std::size_t lens[3] = {7, channel.size(), payload.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, 3, argv, lens));
    long long n = -1;
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER) n = r->integer;
    if (r != nullptr) freeReplyObject(r);
    return n;
  }
  /// SUBSCRIBE channel and wait for the confirmation.
  bool subscribe(std::string_view channel) {
    const char* argv[2] = {"SUBSCRIBE", channel.data()};
    const std::size_t lens[2] = {9, channel.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, 2, argv, lens));
    const bool ok = r != nullptr && r->type == REDIS_REPLY_ARRAY;
    if (r != nullptr) freeReplyObject(r);
    return ok;
  }
  /// The payload of the next message (subscribed connection), or "" after the timeout.
  std::string next_message() {
    void* raw = nullptr;
    if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) return "";
    auto* r = static_cast<redisReply*>(raw);
    std::string payload;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING)
      payload.assign(r->element[2]->str, r->element[2]->len);
    freeReplyObject(r);
    return payload;
  }

 private:
  redisContext* c_ = nullptr;
};

/// Polls `pred` every millisecond until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// The number after "key": in a flat JSON object, or -1.
inline long long json_number(const std::string& json, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const auto at = json.find(needle);
  if (at == std::string::npos) return -1;
  return std::atoll(json.c_str() + at + needle.size());
}
inline bool json_true(const std::string& json, std::string_view key) {
  return json.find("\"" + std::string(key) + "\":true") != std::string::npos;
}

/// --notify-child URL CHANNEL N: exports a handle on CHANNEL, notifies it N times, reports each.
int notify_child(int argc, char** argv);

}  // namespace herald::test

/// Starts a RedisServer named `server`; without one, the test says why and skips (fails under CI).
#define HERALD_REDIS_OR_SKIP(server)                                     \
  if (!(server).running()) {                                             \
    if (::herald::test::running_in_ci())                                 \
      FAIL("redis-server is required under CI: " << (server).why_not()); \
    MESSAGE("skipped: no redis-server: " << (server).why_not());         \
    return;                                                              \
  }
