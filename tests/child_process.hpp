#pragma once

// A child process for the cross-process and crash tests: the test binary itself, started again in
// one of its child modes, so that the child is built with the same sanitizers as the parent.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace herald::test {

/// This test binary run again with `args`; its stdout is a pipe the parent reads line by line.
/// Destroying a Child that is still running kills and reaps it.
class Child {
 public:
  static constexpr std::chrono::milliseconds kForever = std::chrono::milliseconds::max();

  explicit Child(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<std::string> argv_s{"/proc/self/exe"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill();
      (void)wait();
    }
    if (out_ >= 0) ::close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  [[nodiscard]] bool started() const { return pid_ > 0; }

  /// Reads one line, without its newline. False at EOF (a last partial line, a write cut by a
  /// kill, is dropped) or when `timeout` passes first.
  bool read_line(std::string& line, std::chrono::milliseconds timeout = kForever) {
    const auto deadline = timeout == kForever ? std::chrono::steady_clock::time_point::max()
                                              : std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      int wait_ms = -1;
      if (timeout != kForever) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        wait_ms = static_cast<int>(left.count());
      }
      pollfd p{out_, POLLIN, 0};
      const int ready = ::poll(&p, 1, wait_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  void kill() {
    if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);
  }

  /// Waits for the child to end; its wait status (WIFEXITED, WIFSIGNALED ...), or -1 if it was
  /// never started or already reaped.
  int wait() {
    if (pid_ <= 0 || reaped_) return -1;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

  /// Waits at most `timeout` for the child to exit, then kills it; its exit code, or -1 if it
  /// had to be killed, died of a signal, or was never started.
  int exit_code(std::chrono::milliseconds timeout) {
    if (pid_ <= 0 || reaped_) return -1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (r < 0 && errno != EINTR) {
        reaped_ = true;  // not ours to wait for any more: never signal a pid that may be reused
        return -1;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill();
        (void)wait();
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  bool reaped_ = false;
};

}  // namespace herald::test
