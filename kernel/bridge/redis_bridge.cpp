// RedisBridge: two hiredis links, each on a thread of its own (see the class comment in
// include/herald/redis_bridge.hpp).
//
// Why blocking hiredis and not its async API: hiredis 0.14's async API needs an event-library
// adapter (libevent, libev, ae) or one written by hand, and its callbacks run wherever that loop
// runs. A dedicated thread per link, blocking on the socket with SO_RCVTIMEO/SO_SNDTIMEO and
// waiting in poll(2) on the socket beside an eventfd for commands, needs none of it: reconnects
// are a loop with a sleep, a stopped server costs one timeout on the bridge's own thread, and the
// kernel's notify() never meets the network.

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "herald/redis_bridge.hpp"

namespace herald {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Notifications a publisher round takes from all exports before it writes them out.
constexpr std::size_t kMaxBatch = 1024;

struct ContextFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Errc io_errc(const redisContext* c) {
  const std::string_view why = c->errstr;
  if (why.find("timed out") != std::string_view::npos ||
      why.find("temporarily unavailable") != std::string_view::npos)
    return Errc::timed_out;
  return Errc::closed;
}

Reply command(redisContext* c, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

/// Backoff from min to max (x2), each delay jittered by +-20%.
class Backoff {
 public:
  Backoff(milliseconds min, milliseconds max) : min_(min), max_(max), current_(min) {}
  milliseconds next() {
    const milliseconds base = current_;
    current_ = std::min(max_, current_ * 2);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return milliseconds(
        static_cast<std::int64_t>(static_cast<double>(base.count()) * jitter(rng_)));
  }
  void reset() { current_ = min_; }

 private:
  milliseconds min_, max_, current_;
  std::minstd_rand rng_{std::random_device{}()};
};

/// Blocks SIGPIPE on this thread for its scope (hiredis writes with write(2), and a write to a
/// socket the server reset would otherwise kill the process); a SIGPIPE raised meanwhile is
/// consumed before the mask is restored.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      const timespec zero{};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false, blocked_ = false;
};

void signal_fd(int fd) {
  const std::uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}
void drain_fd(int fd) {
  std::uint64_t value = 0;
  (void)!::read(fd, &value, sizeof value);
}

int poll_timeout(Clock::time_point until) {
  const auto left = std::chrono::ceil<milliseconds>(until - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, 60000));
}

std::string make_origin() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown");
  std::random_device rd;
  char tail[16];
  std::snprintf(tail, sizeof tail, "%08x", static_cast<unsigned>(rd()));
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + tail;
}

void append_json_escaped(std::string& out, std::string_view s) {
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
}

/// {"seq":N,"arg":N,"origin":"<escaped>"} into `out` (reusing its capacity).
void format_message_into(std::string& out, std::uint64_t seq, std::int64_t arg,
                         std::string_view escaped_origin) {
  char num[24];
  out.assign("{\"seq\":");
  out.append(num, std::to_chars(num, num + sizeof num, seq).ptr);
  out.append(",\"arg\":");
  out.append(num, std::to_chars(num, num + sizeof num, arg).ptr);
  out.append(",\"origin\":\"");
  out.append(escaped_origin);
  out.append("\"}");
}

}  // namespace

struct RedisBridge::Impl {
  Impl(Kernel& k, RedisOptions o, RedisEndpoint e)
      : kernel(k), options(std::move(o)), endpoint(std::move(e)) {}

  Kernel& kernel;
  RedisOptions options;
  RedisEndpoint endpoint;
  std::string escaped_origin;

  std::atomic<bool> stopping{false};
  std::atomic<bool> pub_up{false}, sub_up{false};
  std::atomic<std::uint64_t> reconnects{0}, connect_failures{0}, published{0}, received{0},
      link_drops{0}, foreign{0}, malformed{0}, resyncs{0}, publish_seq{0};

  mutable std::mutex error_mutex;
  std::string last_error;

  // ---- publisher ----
  struct Export {
    std::string channel;  // prefix:channel
    Subscription sub;
    int fd = -1;  // its pollable fd, asked for on the publisher thread
  };
  struct Outgoing {
    std::string channel;
    std::uint64_t seq;
    std::int64_t arg;
  };
  int pub_ctl = -1;
  mutable std::mutex pub_mutex;
  std::vector<std::unique_ptr<Export>> exports;  // appended by export_handle, removed by the thread
  std::deque<Outgoing> outgoing;                 // publish(): at most export_capacity
  std::uint64_t retired_drops = 0;               // dropped() of exports that ended
  std::thread pub_thread;

  // ---- subscriber ----
  struct Channel {
    std::vector<Handle> handles;
    bool active = false;  // Redis confirmed the SUBSCRIBE on the current link
    bool resync = false;  // notify kResync when it is confirmed
  };
  struct SubCommand {
    bool subscribe;
    std::string channel;
  };
  int sub_ctl = -1;
  mutable std::mutex sub_mutex;
  std::condition_variable sub_cv;
  std::map<std::string, Channel, std::less<>> channels;
  std::unordered_map<Handle, std::string> imported;
  std::deque<SubCommand> sub_commands;
  std::thread sub_thread;

  void set_error(std::string why) {
    std::lock_guard lock(error_mutex);
    last_error = std::move(why);
  }
  std::string full_channel(std::string_view channel) const {
    std::string full = options.prefix;
    full += ':';
    full += channel;
    return full;
  }

  /// Connects, authenticates, selects the db and checks that the server answers.
  Result<Context> open_link(std::string* why) const {
    Context c(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port,
                                      to_timeval(options.connect_timeout)));
    if (!c) return Errc::out_of_memory;
    const std::string where = endpoint.host + ":" + std::to_string(endpoint.port);
    if (c->err != 0) {
      if (why) *why = "cannot connect to " + where + ": " + c->errstr;
      return io_errc(c.get());
    }
    redisSetTimeout(c.get(), to_timeval(options.command_timeout));
    redisEnableKeepAlive(c.get());
    auto check = [&](Reply r, const char* what) -> Result<void> {
      if (!r) {
        if (why) *why = std::string(what) + " on " + where + ": " + c->errstr;
        return io_errc(c.get());
      }
      if (r->type == REDIS_REPLY_ERROR) {
        if (why) *why = std::string(what) + " refused by " + where + ": " + r->str;
        return Errc::invalid_argument;
      }
      return {};
    };
    if (!endpoint.password.empty()) {
      auto r = endpoint.user.empty() ? command(c.get(), {"AUTH", endpoint.password})
                                     : command(c.get(), {"AUTH", endpoint.user, endpoint.password});
      if (auto ok = check(std::move(r), "AUTH"); !ok) return ok.error();
    }
    if (endpoint.db != 0) {
      const std::string db = std::to_string(endpoint.db);
      if (auto ok = check(command(c.get(), {"SELECT", db}), "SELECT"); !ok) return ok.error();
    }
    if (auto ok = check(command(c.get(), {"PING"}), "PING"); !ok) return ok.error();
    return c;
  }

  bool flush(redisContext* c) {
    int done = 0;
    while (done == 0) {
      if (redisBufferWrite(c, &done) == REDIS_ERR) return false;
    }
    return true;
  }

  // ---- the publisher thread ----

  struct Item {
    const std::string* channel;
    std::string payload;
  };

  void publisher_main(Context c) {
    Backoff backoff(options.reconnect_min, options.reconnect_max);
    bool ever_up = c != nullptr;
    Clock::time_point next_attempt = Clock::now(), last_traffic = Clock::now();
    std::vector<pollfd> fds;
    std::vector<Notification> batch(256);
    std::vector<Item> items;
    std::deque<std::string> owned_channels;        // for publish()'s messages in this round
    std::vector<std::unique_ptr<Export>> retired;  // ended exports, kept while items name them
    std::size_t used = 0;
    SigpipeBlock no_sigpipe;  // a write to a reset socket fails with EPIPE instead

    auto drop_link = [&](const char* why) {
      set_error(std::string("publisher: ") + why + ": " + (c ? c->errstr : ""));
      c.reset();
      pub_up.store(false);
      next_attempt = Clock::now() + backoff.next();
    };

    while (!stopping.load()) {
      if (!c && Clock::now() >= next_attempt) {
        std::string why;
        if (auto r = open_link(&why)) {
          c = std::move(*r);
          if (ever_up) reconnects.fetch_add(1);
          ever_up = true;
          pub_up.store(true);
          backoff.reset();
          last_traffic = Clock::now();
        } else {
          connect_failures.fetch_add(1);
          set_error("publisher: " + why);
          next_attempt = Clock::now() + backoff.next();
        }
      }

      fds.clear();
      fds.push_back({pub_ctl, POLLIN, 0});
      {
        std::lock_guard lock(pub_mutex);
        for (auto& e : exports) {
          if (e->fd < 0) e->fd = e->sub.pollable_fd();
          if (e->fd >= 0) fds.push_back({e->fd, POLLIN, 0});
        }
      }
      const auto until = c ? last_traffic + options.health_interval : next_attempt;
      (void)::poll(fds.data(), fds.size(), poll_timeout(until));
      if ((fds[0].revents & POLLIN) != 0) drain_fd(pub_ctl);
      if (stopping.load()) break;

      // Take what is there: every export until empty (bounded per round), and publish()'s queue.
      used = 0;
      owned_channels.clear();
      retired.clear();
      auto next_item = [&]() -> Item& {
        if (used == items.size()) items.emplace_back();
        return items[used++];
      };
      {
        std::lock_guard lock(pub_mutex);
        for (auto it = exports.begin(); it != exports.end();) {
          Export& e = **it;
          bool closed = false;
          while (used < kMaxBatch) {
            const std::size_t want = std::min(batch.size(), kMaxBatch - used);
            const std::size_t n = e.sub.try_recv_batch(std::span(batch.data(), want));
            for (std::size_t i = 0; i < n; ++i) {
              Item& item = next_item();
              item.channel = &e.channel;
              format_message_into(item.payload, batch[i].seq, batch[i].arg, escaped_origin);
            }
            if (n == 0) {
              // Empty, or closed once the handle is unregistered (its fd stays readable then).
              auto last = e.sub.try_recv();
              if (last) {
                Item& item = next_item();
                item.channel = &e.channel;
                format_message_into(item.payload, last->seq, last->arg, escaped_origin);
                continue;
              }
              closed = last.error() == Errc::closed;
              break;
            }
          }
          if (closed) {
            retired_drops += e.sub.dropped();
            retired.push_back(std::move(*it));
            it = exports.erase(it);
          } else {
            ++it;
          }
        }
        while (!outgoing.empty() && used < kMaxBatch) {
          owned_channels.push_back(std::move(outgoing.front().channel));
          Item& item = next_item();
          item.channel = &owned_channels.back();
          format_message_into(item.payload, outgoing.front().seq, outgoing.front().arg,
                              escaped_origin);
          outgoing.pop_front();
        }
      }

      if (!c) {
        link_drops.fetch_add(used);
        continue;
      }
      if (used == 0) {
        if (Clock::now() - last_traffic >= options.health_interval) {
          Reply r = command(c.get(), {"PING"});
          if (!r) {
            drop_link("no reply to PING");
            continue;
          }
          last_traffic = Clock::now();
        }
        continue;
      }
      // One pipelined batch: append every PUBLISH, write them out, read every reply.
      for (std::size_t i = 0; i < used; ++i) {
        const char* argv[3] = {"PUBLISH", items[i].channel->data(), items[i].payload.data()};
        const std::size_t lens[3] = {7, items[i].channel->size(), items[i].payload.size()};
        redisAppendCommandArgv(c.get(), 3, argv, lens);
      }
      if (!flush(c.get())) {
        link_drops.fetch_add(used);
        drop_link("write failed");
        continue;
      }
      std::size_t answered = 0;
      for (; answered < used; ++answered) {
        void* raw = nullptr;
        if (redisGetReply(c.get(), &raw) != REDIS_OK || raw == nullptr) break;
        Reply r(static_cast<redisReply*>(raw));
        if (r->type == REDIS_REPLY_INTEGER) {
          published.fetch_add(1);
        } else {
          link_drops.fetch_add(1);
        }
      }
      if (answered < used) {
        link_drops.fetch_add(used - answered);
        drop_link("no reply to PUBLISH");
        continue;
      }
      last_traffic = Clock::now();
    }
    pub_up.store(false);
  }

  // ---- the subscriber thread ----

  void send_subscriptions(redisContext* c, bool all) {
    // Under sub_mutex. all: after (re)connecting, every channel, each to be resynced.
    if (all) {
      sub_commands.clear();
      for (auto& [name, ch] : channels) {
        ch.active = false;
        ch.resync = true;
        const char* argv[2] = {"SUBSCRIBE", name.data()};
        const std::size_t lens[2] = {9, name.size()};
        redisAppendCommandArgv(c, 2, argv, lens);
      }
      return;
    }
    for (const SubCommand& cmd : sub_commands) {
      const char* verb = cmd.subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
      const char* argv[2] = {verb, cmd.channel.data()};
      const std::size_t lens[2] = {std::strlen(verb), cmd.channel.size()};
      redisAppendCommandArgv(c, 2, argv, lens);
    }
    sub_commands.clear();
  }

  void on_reply(const redisReply* r, bool& pong) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      return;  // an error reply (a server refusing a command): nothing to deliver
    }
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "pong") {
      pong = true;
      return;
    }
    if (r->element[1]->type != REDIS_REPLY_STRING) return;
    const std::string_view name(r->element[1]->str, r->element[1]->len);
    std::lock_guard lock(sub_mutex);
    const auto it = channels.find(name);
    if (kind == "message" && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
      // A channel released, or imported again but not yet confirmed: the message was published
      // before this import asked for it.
      if (it == channels.end() || !it->second.active) {
        foreign.fetch_add(1);
        return;
      }
      auto m = parse_bridge_message(std::string_view(r->element[2]->str, r->element[2]->len));
      if (!m) {
        malformed.fetch_add(1);
        return;
      }
      for (const Handle h : it->second.handles) (void)kernel.notify(h, m->arg);
      received.fetch_add(1);
    } else if (kind == "subscribe" && it != channels.end()) {
      it->second.active = true;
      if (it->second.resync) {
        it->second.resync = false;
        for (const Handle h : it->second.handles) (void)kernel.notify(h, kResync);
        resyncs.fetch_add(1);
      }
      sub_cv.notify_all();
    } else if (kind == "message") {
      foreign.fetch_add(1);
    }
  }

  void subscriber_main(Context c) {
    Backoff backoff(options.reconnect_min, options.reconnect_max);
    bool ever_up = c != nullptr;
    Clock::time_point next_attempt = Clock::now(), last_traffic = Clock::now(), ping_deadline{};
    bool ping_outstanding = false;
    SigpipeBlock no_sigpipe;  // a write to a reset socket fails with EPIPE instead

    auto drop_link = [&](const char* why) {
      set_error(std::string("subscriber: ") + why + ": " + (c ? c->errstr : ""));
      c.reset();
      {
        std::lock_guard lock(sub_mutex);
        sub_up.store(false);
        for (auto& [name, ch] : channels) ch.active = false;
      }
      sub_cv.notify_all();
      ping_outstanding = false;
      next_attempt = Clock::now() + backoff.next();
    };

    while (!stopping.load()) {
      if (!c && Clock::now() >= next_attempt) {
        std::string why;
        if (auto r = open_link(&why)) {
          c = std::move(*r);
          bool ok = false;
          {
            std::lock_guard lock(sub_mutex);
            send_subscriptions(c.get(), true);
            ok = flush(c.get());
            if (ok) sub_up.store(true);
          }
          if (!ok) {
            drop_link("write failed");
            continue;
          }
          if (ever_up) reconnects.fetch_add(1);
          ever_up = true;
          backoff.reset();
          last_traffic = Clock::now();
        } else {
          connect_failures.fetch_add(1);
          set_error("subscriber: " + why);
          next_attempt = Clock::now() + backoff.next();
        }
      }

      pollfd fds[2] = {{sub_ctl, POLLIN, 0}, {c ? c->fd : -1, POLLIN, 0}};
      const auto until = !c                 ? next_attempt
                         : ping_outstanding ? ping_deadline
                                            : last_traffic + options.health_interval;
      (void)::poll(fds, c ? 2 : 1, poll_timeout(until));
      if ((fds[0].revents & POLLIN) != 0) drain_fd(sub_ctl);
      if (stopping.load()) break;
      if (!c) {
        std::lock_guard lock(sub_mutex);
        sub_commands.clear();  // the reconnect subscribes to every channel there is then
        continue;
      }
      {
        std::unique_lock lock(sub_mutex);
        if (!sub_commands.empty()) {
          send_subscriptions(c.get(), false);
          if (!flush(c.get())) {
            lock.unlock();
            drop_link("write failed");
            continue;
          }
        }
      }
      if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        if (redisBufferRead(c.get()) == REDIS_ERR) {
          drop_link("read failed");
          continue;
        }
        last_traffic = Clock::now();
        bool broken = false;
        for (;;) {
          void* raw = nullptr;
          if (redisGetReplyFromReader(c.get(), &raw) == REDIS_ERR) {
            broken = true;
            break;
          }
          if (raw == nullptr) break;
          Reply r(static_cast<redisReply*>(raw));
          bool pong = false;
          on_reply(r.get(), pong);
          if (pong) ping_outstanding = false;
        }
        if (broken) {
          drop_link("protocol error");
          continue;
        }
      }
      const auto now = Clock::now();
      if (ping_outstanding && now >= ping_deadline) {
        drop_link("no reply to PING");
        continue;
      }
      if (!ping_outstanding && now - last_traffic >= options.health_interval) {
        const char* argv[1] = {"PING"};
        const std::size_t lens[1] = {4};
        redisAppendCommandArgv(c.get(), 1, argv, lens);
        if (!flush(c.get())) {
          drop_link("write failed");
          continue;
        }
        ping_outstanding = true;
        ping_deadline = now + options.command_timeout;
      }
    }
    sub_up.store(false);
  }
};

RedisBridge::RedisBridge(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}

Result<std::unique_ptr<RedisBridge>> RedisBridge::connect(Kernel& kernel, RedisOptions options) {
  return connect(kernel, std::move(options), nullptr);
}

Result<std::unique_ptr<RedisBridge>> RedisBridge::connect(Kernel& kernel, RedisOptions options,
                                                          std::string* why) {
  auto fail = [&](Errc e, std::string text) -> Result<std::unique_ptr<RedisBridge>> {
    if (why) *why = std::move(text);
    return e;
  };
  auto endpoint = parse_redis_url(options.url);
  if (!endpoint)
    return fail(Errc::invalid_argument,
                "malformed URL (expected redis://[[user]:password@]host[:port][/db])");
  if (!valid_channel_name(options.prefix))
    return fail(Errc::invalid_argument, "the prefix is not a valid channel name");
  if (options.export_capacity == 0 ||
      options.export_capacity > kernel.options().max_subscription_capacity)
    return fail(Errc::invalid_argument, "export_capacity is 0 or above the kernel's maximum");
  if (options.reconnect_min.count() <= 0 || options.reconnect_max < options.reconnect_min)
    return fail(Errc::invalid_argument, "reconnect_min must be > 0 and <= reconnect_max");
  if (options.connect_timeout.count() <= 0 || options.command_timeout.count() <= 0 ||
      options.health_interval.count() <= 0)
    return fail(Errc::invalid_argument, "timeouts and health_interval must be > 0");
  if (options.origin.empty()) options.origin = make_origin();

  auto impl = std::make_unique<Impl>(kernel, std::move(options), std::move(*endpoint));
  std::string escaped;
  append_json_escaped(escaped, impl->options.origin);
  impl->escaped_origin = std::move(escaped);

  Context pub, sub;
  if (impl->options.require_initial_connection) {
    SigpipeBlock no_sigpipe;
    std::string text;
    auto p = impl->open_link(&text);
    if (!p) return fail(p.error(), text);
    auto s = impl->open_link(&text);
    if (!s) return fail(s.error(), text);
    pub = std::move(*p);
    sub = std::move(*s);
  }
  impl->pub_ctl = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl->sub_ctl = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->pub_ctl < 0 || impl->sub_ctl < 0) {
    if (impl->pub_ctl >= 0) ::close(impl->pub_ctl);
    if (impl->sub_ctl >= 0) ::close(impl->sub_ctl);
    return fail(Errc::out_of_memory, "cannot create an eventfd");
  }
  Impl* raw = impl.get();
  raw->pub_up.store(pub != nullptr);  // up from the start when connected here
  raw->sub_up.store(sub != nullptr);
  raw->pub_thread =
      std::thread([raw, c = std::move(pub)]() mutable { raw->publisher_main(std::move(c)); });
  raw->sub_thread =
      std::thread([raw, c = std::move(sub)]() mutable { raw->subscriber_main(std::move(c)); });
  return std::unique_ptr<RedisBridge>(new RedisBridge(std::move(impl)));
}

RedisBridge::~RedisBridge() {
  Impl& b = *impl_;
  b.stopping.store(true);
  signal_fd(b.pub_ctl);
  signal_fd(b.sub_ctl);
  b.pub_thread.join();
  b.sub_thread.join();
  {
    std::lock_guard lock(b.pub_mutex);
    b.exports.clear();
  }
  std::vector<Handle> handles;
  {
    std::lock_guard lock(b.sub_mutex);
    for (const auto& [h, name] : b.imported) handles.push_back(h);
    b.imported.clear();
    b.channels.clear();
  }
  for (const Handle h : handles) (void)b.kernel.unregister_handle(h);
  ::close(b.pub_ctl);
  ::close(b.sub_ctl);
}

Result<void> RedisBridge::export_handle(Handle h, std::string_view channel) {
  Impl& b = *impl_;
  if (!valid_channel_name(channel)) return Errc::invalid_argument;
  SubscriptionOptions so;
  so.capacity = b.options.export_capacity;
  so.overflow = Overflow::drop_newest;
  so.debug_hint = "redis export";
  auto sub = b.kernel.subscribe(h, so);
  if (!sub) return sub.error();
  auto e = std::make_unique<Impl::Export>();
  e->channel = b.full_channel(channel);
  e->sub = std::move(*sub);
  {
    std::lock_guard lock(b.pub_mutex);
    b.exports.push_back(std::move(e));
  }
  signal_fd(b.pub_ctl);
  return {};
}

Result<Handle> RedisBridge::import_channel(std::string_view channel, const HandleOptions& options) {
  Impl& b = *impl_;
  if (!valid_channel_name(channel)) return Errc::invalid_argument;
  const std::string full = b.full_channel(channel);
  HandleOptions ho = options;
  const std::string hint = "redis:" + full;
  if (ho.debug_hint.empty()) ho.debug_hint = hint;
  auto h = b.kernel.register_handle(ho);
  if (!h) return h.error();
  std::unique_lock lock(b.sub_mutex);
  Impl::Channel& ch = b.channels[full];
  ch.handles.push_back(*h);
  b.imported.emplace(*h, full);
  if (ch.handles.size() == 1) {
    b.sub_commands.push_back({true, full});
    signal_fd(b.sub_ctl);
  }
  // Wait for Redis to confirm the SUBSCRIBE, so that a message published after this returns is
  // delivered; while the link is down the reconnect subscribes and notifies kResync instead.
  b.sub_cv.wait_for(lock, b.options.command_timeout, [&] {
    const auto it = b.channels.find(full);
    return it == b.channels.end() || it->second.active || !b.sub_up.load() || b.stopping.load();
  });
  return *h;
}

Result<void> RedisBridge::release_channel(Handle h) {
  Impl& b = *impl_;
  {
    std::lock_guard lock(b.sub_mutex);
    const auto it = b.imported.find(h);
    if (it == b.imported.end()) return Errc::unknown_handle;
    const auto ch = b.channels.find(it->second);
    if (ch != b.channels.end()) {
      std::erase(ch->second.handles, h);
      if (ch->second.handles.empty()) {
        b.sub_commands.push_back({false, ch->first});
        b.channels.erase(ch);
        signal_fd(b.sub_ctl);
      }
    }
    b.imported.erase(it);
  }
  return b.kernel.unregister_handle(h);
}

Result<void> RedisBridge::publish(std::string_view channel, std::int64_t arg) {
  Impl& b = *impl_;
  if (!valid_channel_name(channel)) return Errc::invalid_argument;
  if (!b.pub_up.load()) {
    b.link_drops.fetch_add(1);
    return Errc::closed;
  }
  {
    std::lock_guard lock(b.pub_mutex);
    if (b.outgoing.size() >= b.options.export_capacity) {
      b.link_drops.fetch_add(1);
      return Errc::full;
    }
    b.outgoing.push_back({b.full_channel(channel), b.publish_seq.fetch_add(1) + 1, arg});
  }
  signal_fd(b.pub_ctl);
  return {};
}

bool RedisBridge::connected() const noexcept {
  return impl_->pub_up.load() && impl_->sub_up.load();
}
bool RedisBridge::subscriber_connected() const noexcept { return impl_->sub_up.load(); }
std::uint64_t RedisBridge::reconnects() const noexcept { return impl_->reconnects.load(); }
const std::string& RedisBridge::origin() const noexcept { return impl_->options.origin; }
const RedisOptions& RedisBridge::options() const noexcept { return impl_->options; }

std::string RedisBridge::stats() const {
  const Impl& b = *impl_;
  std::uint64_t drops = b.link_drops.load();
  std::size_t exports = 0, imported = 0;
  {
    std::lock_guard lock(b.pub_mutex);
    drops += b.retired_drops;
    for (const auto& e : b.exports) drops += e->sub.dropped();
    exports = b.exports.size();
  }
  {
    std::lock_guard lock(b.sub_mutex);
    imported = b.channels.size();
  }
  std::string error;
  {
    std::lock_guard lock(b.error_mutex);
    append_json_escaped(error, b.last_error);
  }
  auto flag = [](bool v) { return v ? "true" : "false"; };
  std::string out = "{";
  out += "\"connected\":" + std::string(flag(b.pub_up.load() && b.sub_up.load()));
  out += ",\"publisher_connected\":" + std::string(flag(b.pub_up.load()));
  out += ",\"subscriber_connected\":" + std::string(flag(b.sub_up.load()));
  out += ",\"reconnects\":" + std::to_string(b.reconnects.load());
  out += ",\"connect_failures\":" + std::to_string(b.connect_failures.load());
  out += ",\"published\":" + std::to_string(b.published.load());
  out += ",\"received\":" + std::to_string(b.received.load());
  out += ",\"export_drops\":" + std::to_string(drops);
  out += ",\"foreign\":" + std::to_string(b.foreign.load());
  out += ",\"malformed\":" + std::to_string(b.malformed.load());
  out += ",\"resyncs\":" + std::to_string(b.resyncs.load());
  out += ",\"exports\":" + std::to_string(exports);
  out += ",\"imported_channels\":" + std::to_string(imported);
  out += ",\"origin\":\"" + b.escaped_origin + "\"";
  out += ",\"last_error\":\"" + error + "\"";
  out += "}";
  return out;
}

}  // namespace herald
