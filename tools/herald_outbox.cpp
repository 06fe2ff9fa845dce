// herald-outbox: what an operator uses on an outbox file. Enqueue entries, list them by status,
// show counts, retry dead letters, release a restarted owner's leases, and drain a queue with a
// shell command as the handler (exit 0 acks, anything else fails with backoff, up to the
// dead-letter state). --json for scripts; a progress line on long drains.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <herald/outbox.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: herald-outbox [--db PATH] [--json] [options] COMMAND [ARGS]\n"
    "commands:\n"
    "  enqueue QUEUE ID [PAYLOAD|-]   commit one entry (payload from stdin with '-' or none)\n"
    "  enqueue QUEUE --lines          commit 'ID<TAB>PAYLOAD' lines from stdin, 100 per commit\n"
    "  list [QUEUE] [--status queued|leased|failed] [--limit N]\n"
    "  stats [QUEUE]                  counts by status, oldest due time\n"
    "  retry [QUEUE] ID               a failed entry (dead letter) is due again, attempts reset\n"
    "  release OWNER                  re-queue every lease OWNER holds (it restarted)\n"
    "  drain QUEUE --exec CMD         one pass: run 'sh -c CMD' per due entry, payload on stdin,\n"
    "                                 HERALD_OUTBOX_QUEUE/_ID/_ATTEMPT set; exit 0 acks\n"
    "  semantics                      what this outbox promises, as JSON\n"
    "options:\n"
    "  --db PATH            the outbox file (default $HERALD_OUTBOX_DB, else ./outbox.db)\n"
    "  --json               machine-readable output\n"
    "  --delay MS           enqueue: due after MS milliseconds\n"
    "  --owner NAME         drain: the lease owner (default herald-outbox:<pid>)\n"
    "  --max-attempts N     retry policy: attempts before the dead-letter state (default 5)\n"
    "  --backoff-ms MS      retry policy: the first backoff (default 1000)\n"
    "  --lease-ms MS        lease per claim (default 30000)\n"
    "exit status: 0 done, 1 the outbox refused (the reason is printed), 2 bad usage\n";

struct Args {
  std::string db;
  bool json = false;
  std::optional<long> delay_ms, limit, max_attempts, backoff_ms, lease_ms;
  std::optional<std::string> status, owner, exec;
  bool lines = false;
  std::vector<std::string> words;  // the command and its positional arguments
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "herald-outbox: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

long number(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0)
    usage(std::string(flag) + " needs a non-negative number, got '" + text + "'");
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  if (const char* env = std::getenv("HERALD_OUTBOX_DB")) a.db = env;
  if (a.db.empty()) a.db = "outbox.db";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--db") {
      a.db = value();
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--delay") {
      a.delay_ms = number("--delay", value());
    } else if (arg == "--limit") {
      a.limit = number("--limit", value());
    } else if (arg == "--max-attempts") {
      a.max_attempts = number("--max-attempts", value());
    } else if (arg == "--backoff-ms") {
      a.backoff_ms = number("--backoff-ms", value());
    } else if (arg == "--lease-ms") {
      a.lease_ms = number("--lease-ms", value());
    } else if (arg == "--status") {
      a.status = value();
    } else if (arg == "--owner") {
      a.owner = value();
    } else if (arg == "--exec") {
      a.exec = value();
    } else if (arg == "--lines") {
      a.lines = true;
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
      usage("unknown option " + std::string(arg));
    } else {
      a.words.emplace_back(arg);
    }
  }
  if (a.words.empty()) usage("no command");
  return a;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string as_text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// The payload as JSON: a string when it is printable text, else its bytes in hex.
std::string payload_json(const std::vector<std::byte>& b) {
  bool printable = true;
  for (std::byte x : b) {
    const auto c = static_cast<unsigned char>(x);
    printable = printable && (c >= 0x20 || c == '\n' || c == '\t') && c != 0x7f;
  }
  if (printable) return "\"payload\":" + json_string(as_text(b));
  std::string hex;
  char buf[3];
  for (std::byte x : b) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(x));
    hex += buf;
  }
  return "\"payload_hex\":\"" + hex + "\"";
}

std::string iso_time(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

int refused(const herald::Outbox* box, herald::Errc e, const std::string& what) {
  std::string detail = box != nullptr ? box->last_error() : std::string();
  std::fprintf(stderr, "herald-outbox: %s: %s%s%s\n", what.c_str(),
               std::string(herald::to_string(e)).c_str(), detail.empty() ? "" : " (",
               detail.empty() ? "" : (detail + ")").c_str());
  return 1;
}

std::string read_stdin() {
  std::string s;
  char buf[65536];
  for (ssize_t n; (n = ::read(STDIN_FILENO, buf, sizeof buf)) > 0;)
    s.append(buf, static_cast<std::size_t>(n));
  return s;
}

/// Runs `sh -c cmd` with the payload on stdin; true when it exits 0. Its stdout goes to ours,
/// or to stderr when `quiet_stdout` (--json keeps stdout for the result).
bool run_handler(const std::string& cmd, const herald::Entry& e, bool quiet_stdout,
                 std::string& error) {
  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    error = "pipe: " + std::string(std::strerror(errno));
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  if (quiet_stdout) posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "HERALD_OUTBOX_", 14) != 0) env_s.emplace_back(*e);
  }
  env_s.push_back("HERALD_OUTBOX_QUEUE=" + e.queue);
  env_s.push_back("HERALD_OUTBOX_ID=" + e.id);
  env_s.push_back("HERALD_OUTBOX_ATTEMPT=" + std::to_string(e.attempts));
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", command = cmd;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  if (rc != 0) {
    ::close(in[1]);
    error = "cannot start /bin/sh: " + std::string(std::strerror(rc));
    return false;
  }
  const auto* p = reinterpret_cast<const char*>(e.payload.data());
  std::size_t left = e.payload.size();
  while (left > 0) {  // a handler that does not read its stdin gets EPIPE here, not a signal
    const ssize_t n = ::write(in[1], p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  error = WIFEXITED(status) ? "handler exited with status " + std::to_string(WEXITSTATUS(status))
                            : "handler killed by signal " + std::to_string(WTERMSIG(status));
  return false;
}

int cmd_enqueue(herald::Outbox& box, const Args& a) {
  if (a.words.size() < 2) usage("enqueue QUEUE ID [PAYLOAD|-] or enqueue QUEUE --lines");
  const std::string& queue = a.words[1];
  const auto delay = std::chrono::milliseconds(a.delay_ms.value_or(0));
  if (a.lines) {
    std::vector<std::string> ids, payloads;
    std::size_t inserted = 0, existed = 0;
    auto flush = [&]() -> int {
      std::vector<herald::OutboxItem> items;
      for (std::size_t i = 0; i < ids.size(); ++i)
        items.push_back({ids[i], std::as_bytes(std::span(payloads[i]))});
      auto r = box.enqueue_batch(queue, items, delay);
      if (!r) return refused(&box, r.error(), "enqueue");
      for (const auto& e : *r) ++(e.inserted ? inserted : existed);
      ids.clear();
      payloads.clear();
      return 0;
    };
    for (std::string line; std::getline(std::cin, line);) {
      const auto tab = line.find('\t');
      ids.push_back(line.substr(0, tab));
      payloads.push_back(tab == std::string::npos ? std::string() : line.substr(tab + 1));
      if (ids.size() == 100) {
        if (const int rc = flush(); rc != 0) return rc;
      }
    }
    if (!ids.empty()) {
      if (const int rc = flush(); rc != 0) return rc;
    }
    if (a.json) {
      std::printf("{\"queue\":%s,\"inserted\":%zu,\"existed\":%zu}\n", json_string(queue).c_str(),
                  inserted, existed);
    } else {
      std::printf("enqueued %zu into %s (%zu ids existed)\n", inserted, queue.c_str(), existed);
    }
    return 0;
  }
  if (a.words.size() < 3) usage("enqueue QUEUE ID [PAYLOAD|-]");
  const std::string& id = a.words[2];
  const std::string payload = a.words.size() >= 4 && a.words[3] != "-" ? a.words[3] : read_stdin();
  auto r = box.enqueue(queue, id, payload, delay);
  if (!r) return refused(&box, r.error(), "enqueue " + id);
  if (a.json) {
    std::printf("{\"queue\":%s,\"id\":%s,\"inserted\":%s,\"notified\":%s}\n",
                json_string(queue).c_str(), json_string(id).c_str(), r->inserted ? "true" : "false",
                r->notified ? "true" : "false");
  } else {
    std::printf("%s %s/%s\n", r->inserted ? "enqueued" : "exists (unchanged)", queue.c_str(),
                id.c_str());
  }
  return 0;
}

int cmd_list(herald::Outbox& box, const Args& a) {
  std::optional<herald::EntryStatus> status;
  if (a.status) {
    if (*a.status == "queued") {
      status = herald::EntryStatus::queued;
    } else if (*a.status == "leased") {
      status = herald::EntryStatus::leased;
    } else if (*a.status == "failed") {
      status = herald::EntryStatus::failed;
    } else {
      usage("--status is queued, leased or failed");
    }
  }
  const std::string queue = a.words.size() >= 2 ? a.words[1] : std::string();
  auto r = box.list(queue, status, static_cast<std::size_t>(a.limit.value_or(1000)));
  if (!r) return refused(&box, r.error(), "list");
  if (a.json) {
    std::string out = "[";
    for (std::size_t i = 0; i < r->size(); ++i) {
      const herald::Entry& e = (*r)[i];
      if (i != 0) out += ",";
      out += "{\"queue\":" + json_string(e.queue) + ",\"id\":" + json_string(e.id);
      out += ",\"status\":\"" + std::string(herald::to_string(e.status)) + "\"";
      out += ",\"attempts\":" + std::to_string(e.attempts);
      out += ",\"enqueued_at_ms\":" + std::to_string(e.enqueued_at_ms);
      out += ",\"due_at_ms\":" + std::to_string(e.due_at_ms);
      out += ",\"lease_owner\":" + json_string(e.lease_owner);
      out += ",\"last_error\":" + json_string(e.last_error) + "," + payload_json(e.payload) + "}";
    }
    std::printf("%s]\n", out.c_str());
    return 0;
  }
  std::printf("%-7s %-8s %-24s %-16s %-24s %s\n", "STATUS", "ATTEMPTS", "DUE (UTC)", "QUEUE", "ID",
              "LAST ERROR");
  for (const herald::Entry& e : *r) {
    std::printf("%-7s %-8u %-24s %-16s %-24s %s\n",
                std::string(herald::to_string(e.status)).c_str(), e.attempts,
                iso_time(e.due_at_ms).c_str(), e.queue.c_str(), e.id.c_str(), e.last_error.c_str());
  }
  std::printf("(%zu entries)\n", r->size());
  return 0;
}

int cmd_stats(herald::Outbox& box, const Args& a) {
  const std::string queue = a.words.size() >= 2 ? a.words[1] : std::string();
  auto r = box.stats(queue);
  if (!r) return refused(&box, r.error(), "stats");
  if (a.json) {
    std::printf("%s\n", r->c_str());
    return 0;
  }
  // The same numbers, one line per queue.
  auto field = [](const std::string& j, std::size_t from, const char* key) -> std::string {
    const std::string k = std::string("\"") + key + "\":";
    const auto at = j.find(k, from);
    if (at == std::string::npos) return "?";
    const auto start = at + k.size();
    return j.substr(start, j.find_first_of(",}", start) - start);
  };
  std::size_t pos = 0;
  while ((pos = r->find("{\"queue\":", pos)) != std::string::npos) {
    std::string name = field(*r, pos, "queue");
    if (name.size() >= 2 && name.front() == '"') name = name.substr(1, name.size() - 2);
    std::string due = field(*r, pos, "oldest_due_ms");
    if (due != "null" && due != "?") due = iso_time(std::stoll(due));
    std::printf("%s: queued %s, leased %s (expired %s), failed %s; oldest due %s\n", name.c_str(),
                field(*r, pos, "queued").c_str(), field(*r, pos, "leased").c_str(),
                field(*r, pos, "expired_leases").c_str(), field(*r, pos, "failed").c_str(),
                due.c_str());
    ++pos;
  }
  return 0;
}

int cmd_retry(herald::Outbox& box, const Args& a) {
  if (a.words.size() < 2) usage("retry [QUEUE] ID");
  const bool with_queue = a.words.size() >= 3;
  const std::string& id = with_queue ? a.words[2] : a.words[1];
  auto r = with_queue ? box.retry(a.words[1], id) : box.retry(id);
  if (!r) return refused(&box, r.error(), "retry " + id);
  if (a.json) {
    std::printf("{\"retried\":%s}\n", json_string(id).c_str());
  } else {
    std::printf("retried %s: queued, due now\n", id.c_str());
  }
  return 0;
}

int cmd_release(herald::Outbox& box, const Args& a) {
  if (a.words.size() < 2) usage("release OWNER");
  auto r = box.release_leases(a.words[1]);
  if (!r) return refused(&box, r.error(), "release " + a.words[1]);
  if (a.json) {
    std::printf("{\"owner\":%s,\"released\":%u}\n", json_string(a.words[1]).c_str(), *r);
  } else {
    std::printf("released %u leases of %s\n", *r, a.words[1].c_str());
  }
  return 0;
}

int cmd_drain(herald::Outbox& box, const Args& a) {
  if (a.words.size() < 2 || !a.exec) usage("drain QUEUE --exec CMD");
  const std::string& queue = a.words[1];
  const std::string owner = a.owner.value_or("herald-outbox:" + std::to_string(::getpid()));
  ::signal(SIGPIPE, SIG_IGN);
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto start = Clock::now();
  auto last_progress = start;
  std::uint64_t handled = 0, ok = 0;
  bool progress_shown = false;
  auto progress = [&](bool final) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "%sdrain %s: %llu handled, %llu ok, %llu not ok, %.1f s (%.0f/s)%s",
                 tty ? "\r" : "", queue.c_str(), static_cast<unsigned long long>(handled),
                 static_cast<unsigned long long>(ok), static_cast<unsigned long long>(handled - ok),
                 secs, secs > 0 ? static_cast<double>(handled) / secs : 0.0,
                 tty && !final ? "" : "\n");
    progress_shown = true;
  };
  auto r = box.drain(queue, owner, [&](const herald::Entry& e) {
    std::string error;
    const bool sent = run_handler(*a.exec, e, a.json, error);
    ++handled;
    ok += sent ? 1 : 0;
    if (Clock::now() - last_progress >= std::chrono::milliseconds(500)) {
      last_progress = Clock::now();
      progress(false);
    }
    if (!sent) throw std::runtime_error(error);  // drain records what() as the last error
    return true;
  });
  if (progress_shown) progress(true);
  if (!r) return refused(&box, r.error(), "drain " + queue);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (a.json) {
    std::printf("{\"queue\":%s,\"sent\":%llu,\"retried\":%llu,\"failed\":%llu,\"seconds\":%.3f}\n",
                json_string(queue).c_str(), static_cast<unsigned long long>(r->sent),
                static_cast<unsigned long long>(r->retried),
                static_cast<unsigned long long>(r->failed), secs);
  } else {
    std::printf("drained %s: sent %llu, retried %llu, failed %llu (%.2f s)\n", queue.c_str(),
                static_cast<unsigned long long>(r->sent),
                static_cast<unsigned long long>(r->retried),
                static_cast<unsigned long long>(r->failed), secs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  herald::OutboxOptions options;
  if (a.max_attempts) options.retry.max_attempts = static_cast<std::uint32_t>(*a.max_attempts);
  if (a.backoff_ms) {
    options.retry.initial = std::chrono::milliseconds(*a.backoff_ms);
    options.retry.max = std::max(options.retry.max, options.retry.initial);
  }
  if (a.lease_ms) options.lease = std::chrono::milliseconds(*a.lease_ms);
  const std::string& cmd = a.words[0];
  if (cmd != "enqueue" && cmd != "list" && cmd != "stats" && cmd != "retry" && cmd != "release" &&
      cmd != "drain" && cmd != "semantics") {
    usage("unknown command " + cmd);
  }
  std::string why;
  auto opened = herald::Outbox::open(a.db, options, &why);
  if (!opened) {
    std::fprintf(stderr, "herald-outbox: %s: %s\n",
                 std::string(herald::to_string(opened.error())).c_str(), why.c_str());
    return 1;
  }
  herald::Outbox& box = **opened;
  if (cmd == "enqueue") return cmd_enqueue(box, a);
  if (cmd == "list") return cmd_list(box, a);
  if (cmd == "stats") return cmd_stats(box, a);
  if (cmd == "retry") return cmd_retry(box, a);
  if (cmd == "release") return cmd_release(box, a);
  if (cmd == "drain") return cmd_drain(box, a);
  std::printf("%s\n", box.semantics().c_str());
  return 0;
}
