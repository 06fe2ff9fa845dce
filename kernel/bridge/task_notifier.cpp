// TaskNotifier and TaskStream: task-state notifications over the bridge, with polling as the
// fallback and as the resync after every reconnect.

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include "herald/redis_bridge.hpp"

namespace herald {

namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/// Messages a stream buffers before it drops (and then polls).
constexpr std::uint32_t kStreamCapacity = 64;
}  // namespace

/// One stream's state machine, shared by next() and next_blocking(): ready() says whether a state
/// (or the end) is there now; otherwise the consumer waits on `sub` for at most slice() and hands
/// the outcome to on_outcome().
struct TaskStream::Core {
  Kernel* kernel = nullptr;
  RedisBridge* bridge = nullptr;
  TaskNotifier::PollState poll_state;
  std::string id;
  TaskNotifierOptions options;

  Handle handle{};        // the imported channel's handle, or a private one (never notified)
  bool imported = false;  // handle belongs to the bridge (release_channel) or to us (unregister)
  Subscription sub;
  std::uint64_t seen_dropped = 0;

  Clock::time_point expiry_at{}, next_poll{};
  milliseconds interval{};
  std::optional<TaskState> last, pending;
  bool started = false, ended = false, resync = false;
  Errc error{};  // set: every next() reports it
  std::atomic<std::uint64_t> polls{0};
  std::atomic<bool> finished{false};

  ~Core() {
    sub = Subscription();
    if (!handle) return;
    if (imported && bridge != nullptr) {
      (void)bridge->release_channel(handle);
    } else if (!imported) {
      (void)kernel->unregister_handle(handle);
    }
  }

  /// A private handle to wait on (the timer of the polling fallback).
  void use_private_handle() {
    sub = Subscription();
    if (imported && bridge != nullptr && handle) (void)bridge->release_channel(handle);
    imported = false;
    handle = Handle{};
    HandleOptions ho;
    ho.debug_hint = "task stream (polling)";
    auto h = kernel->register_handle(ho);
    if (!h) {
      error = h.error();
      return;
    }
    handle = *h;
    SubscriptionOptions so;
    so.capacity = 1;
    auto s = kernel->subscribe(handle, so);
    if (!s) {
      error = s.error();
      return;
    }
    sub = std::move(*s);
  }

  bool link_up() const { return imported && bridge != nullptr && bridge->subscriber_connected(); }

  void offer(TaskState s) {
    if (last && *last == s) return;
    pending = s;
  }

  void poll_now() {
    polls.fetch_add(1, std::memory_order_relaxed);
    if (auto s = poll_state ? poll_state(id) : std::nullopt) offer(*s);
  }

  std::optional<Result<TaskState>> ready() {
    if (error != Errc{}) return Result<TaskState>(error);
    if (ended) return Result<TaskState>(Errc::closed);
    const auto now = Clock::now();
    if (!started) {
      started = true;
      poll_now();
      next_poll = now + interval;
    }
    if (!pending && resync) {
      resync = false;
      poll_now();
      interval = options.poll_min;
      next_poll = now + interval;
    }
    if (pending) {
      const TaskState s = *pending;
      pending.reset();
      last = s;
      if (is_terminal(s)) finish();
      return Result<TaskState>(s);
    }
    if (now >= expiry_at) {
      last = TaskState::timed_out;
      finish();
      return Result<TaskState>(TaskState::timed_out);
    }
    return std::nullopt;
  }

  void finish() {
    ended = true;
    finished.store(true, std::memory_order_release);
  }

  nanoseconds slice() const {
    const auto until = std::min(next_poll, expiry_at);
    return std::max<nanoseconds>(until - Clock::now(), nanoseconds(0));
  }

  /// The outcome of one wait on `sub`; an Errc that ends this next() call, or nothing.
  std::optional<Errc> on_outcome(const Result<Notification>& n) {
    if (n) {
      const std::int64_t arg = n->arg;
      if (arg >= 0 && arg <= static_cast<std::int64_t>(TaskState::cancelled)) {
        offer(static_cast<TaskState>(arg));
      } else {
        resync = true;  // kResync, or a value that is not a state: re-read the store
      }
      if (const auto d = sub.dropped(); d != seen_dropped) {
        seen_dropped = d;
        resync = true;  // messages were lost to a full buffer
      }
      return std::nullopt;
    }
    switch (n.error()) {
      case Errc::timed_out: {
        const auto now = Clock::now();
        if (now >= next_poll) {
          if (!link_up()) poll_now();
          interval = std::min(options.poll_max, interval * 2);
          next_poll = now + interval;
        }
        return std::nullopt;
      }
      case Errc::closed:
        // The imported handle went away (the bridge was destroyed): poll from now on.
        bridge = nullptr;
        use_private_handle();
        resync = true;
        return std::nullopt;
      default:
        return n.error();
    }
  }
};

TaskStream::TaskStream() noexcept = default;
TaskStream::TaskStream(std::unique_ptr<Core> core) noexcept : core_(std::move(core)) {}
TaskStream::TaskStream(TaskStream&&) noexcept = default;
TaskStream& TaskStream::operator=(TaskStream&&) noexcept = default;
TaskStream::~TaskStream() = default;

bool TaskStream::done() const noexcept {
  return !core_ || core_->finished.load(std::memory_order_acquire);
}
std::uint64_t TaskStream::polls() const noexcept {
  return core_ ? core_->polls.load(std::memory_order_relaxed) : 0;
}

Task<Result<TaskState>> TaskStream::next() {
  Core* c = core_.get();
  if (c == nullptr) co_return Result<TaskState>(Errc::closed);
  for (;;) {
    if (auto r = c->ready()) co_return std::move(*r);
    WaitOptions wo;
    wo.timeout = c->slice();
    Result<Notification> n = co_await c->sub.recv(wo);
    if (auto e = c->on_outcome(n)) co_return Result<TaskState>(*e);
  }
}

Result<TaskState> TaskStream::next_blocking(std::chrono::milliseconds timeout) {
  Core* c = core_.get();
  if (c == nullptr) return Errc::closed;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto r = c->ready()) return std::move(*r);
    const auto left = deadline - Clock::now();
    if (left <= nanoseconds(0)) return Errc::timed_out;
    WaitOptions wo;
    wo.timeout = std::min<nanoseconds>(c->slice(), left);
    const Result<Notification> n = c->sub.recv_blocking(wo);
    if (auto e = c->on_outcome(n)) return *e;
  }
}

TaskNotifier::TaskNotifier(Kernel& kernel, RedisBridge* bridge, PollState poll_state)
    : TaskNotifier(kernel, bridge, std::move(poll_state), TaskNotifierOptions{}) {}

TaskNotifier::TaskNotifier(Kernel& kernel, RedisBridge* bridge, PollState poll_state,
                           TaskNotifierOptions options)
    : kernel_(kernel), bridge_(bridge), poll_state_(std::move(poll_state)), options_(options) {
  if (options_.poll_min.count() <= 0) options_.poll_min = milliseconds(1);
  if (options_.poll_max < options_.poll_min) options_.poll_max = options_.poll_min;
}

Result<void> TaskNotifier::notify(std::string channel, TaskState state) {
  if (!valid_channel_name(channel)) return Errc::invalid_argument;
  if (bridge_ == nullptr) return {};
  return bridge_->publish(channel, static_cast<std::int64_t>(state));
}

Result<void> TaskNotifier::notify_task_updated(std::string_view task_id, TaskState state) {
  if (task_id.empty()) return Errc::invalid_argument;
  return notify("task:" + std::string(task_id), state);
}
Result<void> TaskNotifier::notify_task_completed(std::string_view task_id) {
  return notify_task_updated(task_id, TaskState::completed);
}
Result<void> TaskNotifier::notify_execution_updated(std::string_view execution_id,
                                                    TaskState state) {
  if (execution_id.empty()) return Errc::invalid_argument;
  return notify("execution:" + std::string(execution_id), state);
}

TaskStream TaskNotifier::subscribe_to_task(std::string_view task_id,
                                           std::chrono::milliseconds expiry) {
  return subscribe("task:" + std::string(task_id), task_id, expiry);
}
TaskStream TaskNotifier::subscribe_to_execution(std::string_view execution_id,
                                                std::chrono::milliseconds expiry) {
  return subscribe("execution:" + std::string(execution_id), execution_id, expiry);
}

TaskStream TaskNotifier::subscribe(std::string channel, std::string_view id,
                                   std::chrono::milliseconds expiry) {
  auto core = std::make_unique<TaskStream::Core>();
  core->kernel = &kernel_;
  core->bridge = bridge_;
  core->poll_state = poll_state_;
  core->id = std::string(id);
  core->options = options_;
  core->interval = options_.poll_min;
  core->expiry_at = Clock::now() + std::max(expiry, milliseconds(0));
  if (id.empty() || !valid_channel_name(channel)) {
    core->error = Errc::invalid_argument;
    return TaskStream(std::move(core));
  }
  if (bridge_ != nullptr) {
    // Subscribed before the first poll, so that no change falls between the two.
    if (auto h = bridge_->import_channel(channel)) {
      core->handle = *h;
      core->imported = true;
      SubscriptionOptions so;
      so.capacity = kStreamCapacity;
      so.debug_hint = "task stream";
      if (auto s = kernel_.subscribe(*h, so)) {
        core->sub = std::move(*s);
        return TaskStream(std::move(core));
      }
    }
  }
  core->use_private_handle();
  return TaskStream(std::move(core));
}

}  // namespace herald
