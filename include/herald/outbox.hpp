#pragma once

// herald::outbox: the durable half beside the kernel. A local queue on SQLite that persists
// first, then notifies (quietly by default), and a Dispatcher that claims due entries with a
// lease and runs handlers. Target herald::outbox; the kernel target does not depend on it.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "herald/error.hpp"
#include "herald/executor.hpp"
#include "herald/handle.hpp"
#include "herald/kernel.hpp"
#include "herald/task.hpp"

namespace herald {

/// How a failed (or abandoned) entry is retried: attempt n waits
/// min(max, initial x multiplier^(n-1)) x (1 +- jitter), the jitter drawn from std::random_device;
/// after max_attempts the entry is failed (the dead-letter state).
struct RetryPolicy {
  std::chrono::milliseconds initial{1000}, max{std::chrono::minutes(10)};
  double multiplier = 2.0;
  double jitter = 0.2;             ///< +-20%, from a CSPRNG (std::random_device)
  std::uint32_t max_attempts = 5;  ///< then the entry is failed (the dead-letter state)
};

/// The delay before attempt `attempts + 1` without jitter: min(max, initial x
/// multiplier^(attempts-1)) for attempts >= 1 (attempts 0 counts as 1).
std::chrono::milliseconds backoff_base(const RetryPolicy& policy, std::uint32_t attempts) noexcept;
/// The inclusive bounds any jittered backoff falls in: base x (1 - jitter) .. base x (1 + jitter).
std::pair<std::chrono::milliseconds, std::chrono::milliseconds> backoff_bounds(
    const RetryPolicy& policy, std::uint32_t attempts) noexcept;

/// What an enqueue announces after its commit. none: nothing (the default: a quiet queue);
/// kernel: Kernel::notify on the queue's handle (in-process wake-ups); callback: on_enqueue.
enum class NotifyMode : std::uint8_t { none, kernel, callback };

/// What a commit survives. process_crash: WAL with synchronous=NORMAL; a committed entry
/// survives the process being killed at any instant, while a power loss may roll back the last
/// commits (never corrupting the file). power_loss: synchronous=FULL, every commit reaches the
/// disk before it returns (slower: one fsync per commit).
enum class Durability : std::uint8_t { process_crash, power_loss };

struct OutboxOptions {
  RetryPolicy retry{};
  std::chrono::milliseconds lease{30000};
  NotifyMode notify = NotifyMode::none;
  Kernel* kernel = nullptr;  ///< NotifyMode::kernel: where to notify
  /// NotifyMode::callback: called after the commit, outside every lock, on the enqueuing thread.
  std::function<void(std::string_view queue, std::string_view id)> on_enqueue{};
  Durability durability = Durability::process_crash;
  /// How long a statement waits for another connection's lock before it gives up (timed_out).
  std::chrono::milliseconds busy_timeout{5000};
  /// PRAGMA max_page_count: caps the file's size in pages (0 = SQLite's default). Past it, a
  /// write gets Errc::full and changes nothing.
  std::uint32_t max_pages = 0;
};

enum class EntryStatus : std::uint8_t { queued, leased, failed };

/// One row of the outbox. due_at_ms: queued, when it may be claimed; leased, when the lease
/// expires; failed, when it failed. Times are milliseconds since the Unix epoch (system_clock),
/// so that every process sharing the file agrees on them.
struct Entry {
  std::string queue, id;
  std::vector<std::byte> payload;
  EntryStatus status;
  std::uint32_t attempts;
  std::int64_t enqueued_at_ms, due_at_ms;
  std::string lease_owner, last_error;
};

/// inserted=false: the id existed in the queue (dedup), nothing changed and nothing was notified.
struct Enqueued {
  bool inserted;
  bool notified;
};

/// One entry of an enqueue_batch.
struct OutboxItem {
  std::string_view id;
  std::span<const std::byte> payload;
};

/// What one drain pass did: acknowledged, re-queued with backoff, moved to failed.
struct DrainResult {
  std::uint64_t sent, retried, failed;
};

/// The name of each status ("queued", "leased", "failed").
std::string_view to_string(EntryStatus s) noexcept;

/// A durable queue (many named queues in one SQLite file): persist, then notify, then dispatch.
///
/// Storage: one SQLite connection per Outbox, WAL journal, busy_timeout, every state change one
/// transaction; claims run in BEGIN IMMEDIATE so two claimers (threads with their own Outbox, or
/// processes on the same file) never hold one entry at once. The schema is versioned
/// (PRAGMA user_version, PRAGMA application_id marks a herald file); an unknown or newer version
/// is refused at open with invalid_argument.
///
/// Notification: after the commit only, and only about a committed entry; it is never a delivery
/// guarantee (scope in-process: another process's enqueue wakes nobody here; a Dispatcher notices
/// those rows by polling).
///
/// Delivery is at-least-once: a handler runs twice for one entry only after a crash, a lease
/// expiry, or a fail. A lease holder is identified by `owner`; the Entry-taking forms of ack,
/// fail and extend also check the attempt number, so a holder whose lease expired and was claimed
/// again (even by the same owner) gets Errc::closed.
///
/// Errors: invalid_argument for bad input (empty or over-long queue or id, an id with a NUL, a
/// negative delay, a file that is not a herald outbox, a newer schema, a path that cannot be
/// opened or written); full when the disk (or max_pages) is full; timed_out when another
/// connection held the lock past busy_timeout; out_of_memory; closed for a call by a non-holder,
/// and for a store that failed with an I/O error. A failed call changes nothing; last_error()
/// gives SQLite's message.
///
/// Thread-safety: every member is thread-safe (calls are serialised on the connection's mutex).
/// The Kernel (NotifyMode::kernel) must outlive the Outbox; the Outbox unregisters its handles in
/// its destructor, so waiters on them complete with closed.
class Outbox {
 public:
  /// Opens (creating if needed) the outbox file at `path`. invalid_argument for conflicting
  /// options (kernel without a kernel, callback without a function, a zero lease or
  /// max_attempts, a jitter outside [0, 1), a multiplier below 1) and for a file that is not a
  /// herald outbox.
  static Result<std::unique_ptr<Outbox>> open(std::string path, OutboxOptions options = {});
  /// The same; on failure `why` (when not null) receives a sentence naming the cause.
  static Result<std::unique_ptr<Outbox>> open(std::string path, OutboxOptions options,
                                              std::string* why);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // ---- persist (then notify) ----

  /// Commits one entry due at now + delay, then notifies (semantic 1). An id already present in
  /// the queue (queued, leased or failed) gives inserted=false and changes nothing (semantic 2).
  Result<Enqueued> enqueue(std::string_view queue, std::string_view id,
                           std::span<const std::byte> payload,
                           std::chrono::milliseconds delay = {});
  Result<Enqueued> enqueue(std::string_view queue, std::string_view id, std::string_view payload,
                           std::chrono::milliseconds delay = {}) {
    return enqueue(queue, id, std::as_bytes(std::span(payload)), delay);
  }
  /// Commits every item in one transaction (all or nothing), then notifies once per inserted
  /// item (kernel: one notify whose arg is the count). One Enqueued per item, in order; an id
  /// repeated within the batch is inserted once.
  Result<std::vector<Enqueued>> enqueue_batch(std::string_view queue,
                                              std::span<const OutboxItem> items,
                                              std::chrono::milliseconds delay = {});

  // ---- dispatch ----

  /// Leases up to `max` due queued entries (oldest due first) to `owner` until now + lease
  /// (0: the options' lease), counting one attempt each; first re-queues (or fails) the queue's
  /// expired leases. One BEGIN IMMEDIATE transaction.
  Result<std::vector<Entry>> claim(std::string_view queue, std::string_view owner,
                                   std::uint32_t max, std::chrono::milliseconds lease = {});
  /// The holder moves its lease to now + lease. closed if `owner` does not hold it.
  Result<void> extend(std::string_view id, std::string_view owner, std::chrono::milliseconds lease);
  Result<void> extend(const Entry& entry, std::string_view owner, std::chrono::milliseconds lease);
  /// The holder is done: the entry is removed. closed if `owner` does not hold it.
  Result<void> ack(std::string_view id, std::string_view owner);
  Result<void> ack(const Entry& entry, std::string_view owner);
  /// The holder failed: re-queued due at now + backoff(attempts), or failed when `permanent` or
  /// attempts reached max_attempts. closed if `owner` does not hold it.
  Result<void> fail(std::string_view id, std::string_view owner, std::string_view error,
                    bool permanent = false);
  Result<void> fail(const Entry& entry, std::string_view owner, std::string_view error,
                    bool permanent = false);
  /// The holder gives back a claimed entry whose handler never started: queued again, due now,
  /// with the attempt count it had before the claim. closed if `owner` does not hold it.
  Result<void> release(const Entry& entry, std::string_view owner);
  /// failed -> queued, due now, attempts back to 0 (the last error is kept). invalid_argument
  /// when no such entry exists (or the id names entries in several queues); closed when it is
  /// not failed.
  Result<void> retry(std::string_view id);
  Result<void> retry(std::string_view queue, std::string_view id);
  /// Re-queues every lease `owner` holds (in any queue), due now, attempts kept: a known owner
  /// restarted. Returns how many.
  Result<std::uint32_t> release_leases(std::string_view owner);
  /// One pass over the queue's entries due now: each is claimed (in batches), passed to `send`,
  /// and acked when send returns true, failed otherwise (an exception counts as false, its
  /// what() becomes the error). Entries re-queued during the pass are not sent again in it.
  Result<DrainResult> drain(std::string_view queue, std::string_view owner,
                            const std::function<bool(const Entry&)>& send);

  // ---- observe ----

  /// NotifyMode::kernel: the queue's handle (registered on first use; notified with the number
  /// of entries committed). Otherwise, or if the kernel refuses, the invalid Handle.
  Handle handle(std::string_view queue);
  /// JSON naming storage, notification, dispatch, retry policy and delivery (semantic 8).
  std::string semantics() const;
  /// JSON for one queue (or every queue when `queue` is empty): counts by status, the oldest
  /// due time of queued entries, the next time anything becomes due. A snapshot.
  Result<std::string> stats(std::string_view queue) const;
  /// Entries of `queue` (every queue when empty) with `status` (any when nullopt), oldest due
  /// first, at most `limit`. A snapshot.
  Result<std::vector<Entry>> list(std::string_view queue, std::optional<EntryStatus> status,
                                  std::size_t limit = 1000) const;
  /// The earliest time (ms since the epoch) a queued entry becomes due or a lease in `queue`
  /// expires; nullopt when the queue holds neither.
  Result<std::optional<std::int64_t>> next_due_ms(std::string_view queue) const;
  /// SQLite's message for the last failed call on this Outbox (or "" after a success).
  std::string last_error() const;
  const OutboxOptions& options() const noexcept;
  const std::string& path() const noexcept;

  /// Milliseconds since the Unix epoch (system_clock): the clock every due and lease time uses.
  static std::int64_t now_ms() noexcept;

 private:
  struct Impl;
  explicit Outbox(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

/// What a Dispatcher handler decided about one entry.
struct HandlerOutcome {
  enum class Kind : std::uint8_t { done, retry, dead } kind = Kind::done;
  std::string error;
  static HandlerOutcome done() { return {}; }
  static HandlerOutcome retry(std::string error) { return {Kind::retry, std::move(error)}; }
  static HandlerOutcome dead(std::string error) { return {Kind::dead, std::move(error)}; }
};

struct DispatcherOptions {
  std::string queue{};
  /// The lease owner for every claim; empty: "<host>:<pid>:d<n>", unique per Dispatcher.
  std::string owner{};
  std::uint32_t workers = 1;
  std::uint32_t batch = 1;            ///< entries per claim
  std::chrono::milliseconds lease{};  ///< 0: the Outbox's lease
  /// Polling (NotifyMode other than kernel): after an empty claim wait poll_initial, doubling up
  /// to poll_max; back to poll_initial once work is found. With NotifyMode::kernel a worker waits
  /// on the queue's handle, and at most poll_max (rows from other processes are noticed then).
  std::chrono::milliseconds poll_initial{100}, poll_max{5000};
};

/// A snapshot of a Dispatcher's progress (each counter read on its own).
struct DispatcherStats {
  std::uint64_t claimed, acked, retried, dead, released, extended, wakeups, polls, errors;
  std::uint32_t in_flight;
};

/// N workers for one queue: claim -> handler -> ack/fail. Workers are threads (start()) or
/// coroutines on an EventLoop (start(loop)). With NotifyMode::kernel a worker parks on the
/// queue's handle (observe -> claim -> wait, so no enqueue is missed) and wakes at once;
/// otherwise it polls with backoff. While a handler runs, a keeper thread extends its lease every
/// third of the lease. stop(): handlers already running finish and are acked/failed, claimed
/// entries not yet started are released, then the workers end.
///
/// A handler that throws is a retry with the exception's what() as the error. The Outbox must
/// outlive the Dispatcher.
class Dispatcher {
 public:
  using Handler = std::function<HandlerOutcome(const Entry&)>;

  Dispatcher(Outbox& outbox, DispatcherOptions options, Handler handler);
  ~Dispatcher();  ///< stop()
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// Starts `workers` threads. invalid_argument if already started, the queue is empty or
  /// workers is 0.
  Result<void> start();
  /// Spawns `workers` coroutines on `loop` (handlers then run on the loop's thread; claims and
  /// acks are short SQLite calls made there too). The caller runs the loop.
  Result<void> start(EventLoop& loop);
  /// Any thread but a worker's own. Requests the end and waits for it: running handlers finish,
  /// unstarted leases are released. With start(loop), the loop must keep running until stop()
  /// returns (or stop() is called on the loop's thread, which only requests the end).
  void stop();
  /// True once every worker has ended.
  bool stopped() const noexcept;
  DispatcherStats stats() const noexcept;
  /// One JSON object: queue, owner, workers, mode, and the stats.
  std::string describe() const;
  const std::string& owner() const noexcept { return options_.owner; }

 private:
  struct Counters;
  struct InFlight;
  void run_worker(unsigned index);
  Task<void> run_coroutine(unsigned index);
  bool process(std::vector<Entry>& entries, unsigned index);
  void keep_leases();
  std::chrono::milliseconds next_wait(std::chrono::milliseconds& poll_backoff) const;

  Outbox& outbox_;
  DispatcherOptions options_;
  Handler handler_;
  std::chrono::milliseconds lease_{};
  Handle wake_{};                           // the queue's handle (kernel mode) or poll_wake_
  Handle poll_wake_{};                      // on private_kernel_, never notified
  Kernel* kernel_ = nullptr;                // where wake_ lives
  std::unique_ptr<Kernel> private_kernel_;  // polling: waits with a timeout and a stop token
  std::stop_source stop_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<InFlight> in_flight_;
  std::vector<std::thread> threads_;
  std::thread keeper_;
  EventLoop* loop_ = nullptr;
  std::atomic<std::uint32_t> running_{0};
  bool started_ = false;
  std::mutex stop_mutex_;
};

}  // namespace herald
