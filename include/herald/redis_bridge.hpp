#pragma once

// herald::redis: kernel handles bridged to Redis pub/sub, across processes and machines
// (BRIDGE.md). Target herald::redis (Debian's hiredis 0.14: RESP2, no TLS); neither the kernel
// nor the outbox depends on it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "herald/error.hpp"
#include "herald/handle.hpp"
#include "herald/kernel.hpp"
#include "herald/options.hpp"
#include "herald/subscription.hpp"
#include "herald/task.hpp"

namespace herald {

struct RedisOptions {
  std::string url = "redis://127.0.0.1:6379";  ///< redis://[[user]:password@]host[:port][/db]
  std::string prefix = "herald";               ///< channel namespace: prefix:channel
  std::chrono::milliseconds reconnect_min{100}, reconnect_max{5000};  ///< backoff, x2, +-20%
  std::uint32_t export_capacity = 4096;  ///< the bounded subscription each export drains
  /// TCP connect, and each command's reply (SO_RCVTIMEO / SO_SNDTIMEO on the socket).
  std::chrono::milliseconds connect_timeout{1000}, command_timeout{1000};
  /// An idle link is PINGed this often; no reply within command_timeout drops it (a stopped or
  /// unreachable server is noticed even when nothing is published).
  std::chrono::milliseconds health_interval{1000};
  /// true: connect() fails (closed, timed_out, invalid_argument) when the first connection cannot
  /// be made. false: connect() returns a bridge that keeps trying with backoff.
  bool require_initial_connection = true;
  /// Names this bridge in every message it publishes; empty: "host:pid:random".
  std::string origin = {};
};

/// Where a redis:// URL points.
struct RedisEndpoint {
  std::string host;
  std::uint16_t port = 6379;
  std::string user;      ///< empty: AUTH with the password only
  std::string password;  ///< empty: no AUTH
  std::uint32_t db = 0;  ///< SELECT db when not 0
};

/// Parses redis://[[user]:password@]host[:port][/db] (host may be [v6]; user and password may be
/// %-encoded). invalid_argument for anything else: another scheme, an empty host, a port outside
/// 1..65535, a db that is not a number below 2^31, trailing text, control bytes or spaces.
Result<RedisEndpoint> parse_redis_url(std::string_view url);

/// One message as the bridge publishes it: {"seq":N,"arg":N,"origin":"..."}.
struct BridgeMessage {
  std::uint64_t seq = 0;
  std::int64_t arg = 0;
  std::string origin;
};
/// The JSON text of `m`.
std::string format_bridge_message(const BridgeMessage& m);
/// Parses herald's JSON (keys in any order, unknown keys with scalar values ignored; seq and arg
/// required, integers in range). invalid_argument for anything else, and above 4096 bytes.
Result<BridgeMessage> parse_bridge_message(std::string_view json);

/// A channel name the bridge accepts: 1..256 bytes of printable ASCII without spaces or the glob
/// characters *?[] (Redis would take them; herald refuses them so that every name means one
/// channel and reads the same in logs and URLs).
bool valid_channel_name(std::string_view channel) noexcept;

/// Kernel handles bridged to Redis pub/sub.
///
/// Two connections, each owned by a thread of the bridge: the publisher drains the bounded
/// subscription of every exported handle and PUBLISHes pipelined batches; the subscriber holds
/// the SUBSCRIBEs of every imported channel and notifies the local handles. Both use blocking
/// hiredis with timeouts, driven by poll(2) beside an eventfd for commands, so a call on the
/// bridge never waits on the network beyond its own timeout, and notify() never touches it.
/// A lost link is re-made with backoff (reconnect_min .. reconnect_max, x2, +-20% jitter); the
/// subscriber then subscribes again and notifies kResync on every imported handle.
///
/// Redis pub/sub is fire-and-forget: the bridge only ever wakes. What happened is re-read from
/// durable state after a kResync.
///
/// Accounting: every notification an export observes is published, or counted in export_drops
/// (its subscription was full, the link was down, or the PUBLISH got no reply). Every message the
/// subscriber reads is received (notified on each handle of its channel), malformed (not herald's
/// JSON) or foreign (a channel the bridge does not import, or imports again but Redis has not yet
/// confirmed that SUBSCRIBE: the message was published before the import asked for it).
///
/// Thread-safety: every member is thread-safe. The Kernel must outlive the bridge; destroying
/// the bridge stops both threads, drops the export subscriptions and unregisters the imported
/// handles (waiters on them complete with closed).
class RedisBridge {
 public:
  /// Parses the URL (invalid_argument), checks the options (invalid_argument: prefix not a valid
  /// channel name, export_capacity 0 or above the kernel's max, reconnect_min 0 or above
  /// reconnect_max), connects both links (unless !require_initial_connection): closed when
  /// refused or unreachable, timed_out when the server does not answer, invalid_argument when it
  /// refuses AUTH or SELECT.
  static Result<std::unique_ptr<RedisBridge>> connect(Kernel& kernel, RedisOptions options = {});
  /// The same; on failure `why` (when not null) receives a sentence naming the cause.
  static Result<std::unique_ptr<RedisBridge>> connect(Kernel& kernel, RedisOptions options,
                                                      std::string* why);
  ~RedisBridge();
  RedisBridge(const RedisBridge&) = delete;
  RedisBridge& operator=(const RedisBridge&) = delete;

  /// Every notification of `h` (from now on) is published on prefix:channel as JSON
  /// {"seq","arg","origin"}. Control plane: subscribes to `h` with export_capacity (drop_newest);
  /// the bridge's publisher thread drains it, never notify(). invalid_argument for a bad channel
  /// name; the kernel's errors from subscribe (unknown_handle, limit_exceeded, out_of_memory).
  /// The export ends when `h` is unregistered.
  Result<void> export_handle(Handle h, std::string_view channel);
  /// A new local handle notified for every message on prefix:channel (arg from the message), and
  /// with kResync after every reconnect. Returns once Redis confirmed the SUBSCRIBE (bounded by
  /// command_timeout), or at once while the link is down (the reconnect brings a kResync).
  /// invalid_argument for a bad channel name; the kernel's errors from register_handle.
  Result<Handle> import_channel(std::string_view channel, const HandleOptions& options = {});
  /// Unregisters an imported handle (its waiters complete with closed) and UNSUBSCRIBEs the
  /// channel when it was the last one. unknown_handle if `h` is not an imported handle.
  Result<void> release_channel(Handle h);
  /// PUBLISHes {"seq","arg","origin"} on prefix:channel from the publisher thread, seq drawn from
  /// the bridge's own counter. Any thread; never waits on the network. invalid_argument for a
  /// bad channel name; closed while the publisher link is down and full when export_capacity
  /// messages are already queued (both counted in export_drops).
  Result<void> publish(std::string_view channel, std::int64_t arg);

  /// Notified on every imported handle after every reconnect: re-read durable state.
  static constexpr std::int64_t kResync = std::numeric_limits<std::int64_t>::min();

  /// Both links are up now (a snapshot).
  bool connected() const noexcept;
  /// The subscriber link is up now (a snapshot): imported handles are being fed.
  bool subscriber_connected() const noexcept;
  /// Links re-made after a loss so far (both links).
  std::uint64_t reconnects() const noexcept;
  /// This bridge's origin string.
  const std::string& origin() const noexcept;
  /// The options, with the URL parsed.
  const RedisOptions& options() const noexcept;
  /// One JSON object (a snapshot): connected, publisher_connected, subscriber_connected,
  /// reconnects, connect_failures, published, received, export_drops, foreign, malformed,
  /// resyncs, exports, imported_channels, origin, last_error.
  std::string stats() const;

  struct Impl;

 private:
  explicit RedisBridge(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

/// Task-state notifications as a durable-execution runtime uses them.
enum class TaskState : std::uint8_t { pending, running, completed, failed, timed_out, cancelled };
/// completed, failed, timed_out, cancelled.
constexpr bool is_terminal(TaskState s) noexcept { return s >= TaskState::completed; }
/// "pending", "running", ... ; "unknown" otherwise.
std::string_view to_string(TaskState s) noexcept;

/// The polling fallback's bounds: the interval starts at poll_min and doubles up to poll_max.
struct TaskNotifierOptions {
  std::chrono::milliseconds poll_min{100}, poll_max{5000};
};

/// The state changes of one task (or execution), from Redis messages and from polling.
///
/// Yields each change of state once (the first poll yields the state found at the start), and
/// ends after a terminal state, or when the expiry passes (yields timed_out); after its end every
/// next() gives closed. A message carries the new state; a kResync (a reconnect), a dropped
/// message or an unknown value makes it poll. While the bridge is null or its subscriber link is
/// down it polls with backoff (poll_min -> poll_max, x2); after every reconnect it polls once and
/// the interval starts again at poll_min. poll_state runs on the consuming thread (the loop for
/// next(), the caller for next_blocking()).
///
/// Move-only. One consumer at a time. The TaskNotifier, its bridge and its Kernel must outlive it;
/// an EventLoop that awaits next() must outlive the bridge (the bridge's subscriber thread may
/// still be inside the loop's post() after the coroutine it woke has finished).
class TaskStream {
 public:
  TaskStream() noexcept;
  TaskStream(TaskStream&&) noexcept;
  TaskStream& operator=(TaskStream&&) noexcept;
  ~TaskStream();

  /// `co_await stream.next()` -> Result<TaskState>: the next state change, or closed after the
  /// end, or invalid_argument for an invalid id. Awaited on an EventLoop (timed waits need one);
  /// resumes there.
  Task<Result<TaskState>> next();
  /// Blocks the calling thread for the next state change; Errc::timed_out when `timeout` passes
  /// first (the stream goes on: call again), closed after the end, invalid_argument for a bad id.
  Result<TaskState> next_blocking(std::chrono::milliseconds timeout);
  /// True once the stream yielded its terminal (or expiry) state.
  bool done() const noexcept;
  /// poll_state calls so far.
  std::uint64_t polls() const noexcept;

  struct Core;

 private:
  friend class TaskNotifier;
  explicit TaskStream(std::unique_ptr<Core> core) noexcept;
  std::unique_ptr<Core> core_;
};

/// Publishes task and execution state changes (prefix:task:{id}, prefix:execution:{id}) and
/// follows them (TaskStream). bridge may be null: then only the polling fallback runs, and the
/// notify_* calls validate the id and publish nothing.
///
/// Thread-safety: every member is thread-safe. The Kernel and the bridge must outlive it and its
/// streams.
class TaskNotifier {
 public:
  using PollState = std::function<std::optional<TaskState>(std::string_view id)>;
  TaskNotifier(Kernel& kernel, RedisBridge* bridge, PollState poll_state);
  TaskNotifier(Kernel& kernel, RedisBridge* bridge, PollState poll_state,
               TaskNotifierOptions options);

  /// PUBLISH prefix:task:{id} with the state as arg. invalid_argument for an empty id or one that
  /// does not make a valid channel name; the bridge's publish() errors (closed, full).
  Result<void> notify_task_updated(std::string_view task_id, TaskState state);
  Result<void> notify_task_completed(std::string_view task_id);
  /// The state changes of task_id until a terminal state or until `expiry` passes (timed_out).
  TaskStream subscribe_to_task(std::string_view task_id, std::chrono::milliseconds expiry);

  /// The same pair for executions (prefix:execution:{id}; poll_state gets the execution id).
  Result<void> notify_execution_updated(std::string_view execution_id, TaskState state);
  TaskStream subscribe_to_execution(std::string_view execution_id,
                                    std::chrono::milliseconds expiry);

 private:
  Result<void> notify(std::string channel, TaskState state);
  TaskStream subscribe(std::string channel, std::string_view id, std::chrono::milliseconds expiry);

  Kernel& kernel_;
  RedisBridge* bridge_;
  PollState poll_state_;
  TaskNotifierOptions options_;
};

}  // namespace herald
