// Outbox: storage (SQLite, one connection guarded by a mutex), then notification (after the
// commit, outside the lock), and the claim/ack/fail state machine of OUTBOX.md.
//
// One table, herald_outbox, with one row per entry. due_at_ms means: queued, when it may be
// claimed; leased, when its lease expires; failed, when it failed. So one index
// (queue, status, due_at_ms) serves claims, lease expiry and next_due_ms alike.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <unordered_set>

#include "herald/outbox.hpp"
#include "outbox/json.hpp"
#include "outbox/sqlite_db.hpp"

namespace herald {

using outbox_detail::append_json_string;
using outbox_detail::Db;
using outbox_detail::json_string;
using outbox_detail::Scope;
using outbox_detail::Statement;
using outbox_detail::Transaction;

namespace {

/// PRAGMA application_id of a herald outbox file: "HRLD".
constexpr std::int64_t kApplicationId = 0x48524c44;
/// PRAGMA user_version this release writes and reads. A later release migrates from it.
constexpr std::int64_t kSchemaVersion = 1;
constexpr std::size_t kMaxNameBytes = 1024;

constexpr const char* kSchema = R"sql(
CREATE TABLE herald_outbox(
  queue TEXT NOT NULL,
  id TEXT NOT NULL,
  payload BLOB NOT NULL,
  status INTEGER NOT NULL,           -- 0 queued, 1 leased, 2 failed
  attempts INTEGER NOT NULL,
  enqueued_at_ms INTEGER NOT NULL,
  due_at_ms INTEGER NOT NULL,        -- queued: claimable from; leased: lease expiry
  lease_owner TEXT NOT NULL,
  last_error TEXT NOT NULL);
CREATE UNIQUE INDEX herald_outbox_id ON herald_outbox(id, queue);
CREATE INDEX herald_outbox_due ON herald_outbox(queue, status, due_at_ms);
CREATE INDEX herald_outbox_owner ON herald_outbox(lease_owner) WHERE status = 1;
PRAGMA application_id = 1213353028;
PRAGMA user_version = 1;
)sql";
static_assert(kApplicationId == 1213353028);

// Cached statement slots (0 and 1 are BEGIN IMMEDIATE and COMMIT, see Transaction).
enum Slot : std::size_t {
  kInsert = 2,
  kReap,
  kSelectDue,
  kLease,
  kDelete,
  kFail,
  kExtend,
  kRelease,
  kRetry,
  kReleaseOwner,
  kQueuesOfId,
  kExists,
  kList,
  kStats,
  kNextDue,
};

constexpr const char* kInsertSql =
    "INSERT INTO herald_outbox(queue, id, payload, status, attempts, enqueued_at_ms, due_at_ms, "
    "lease_owner, last_error) VALUES(?1, ?2, ?3, 0, 0, ?4, ?5, '', '') ON CONFLICT DO NOTHING";
// Expired leases count as failures: due again after the backoff, or failed at max_attempts.
constexpr const char* kReapSql =
    "UPDATE herald_outbox SET "
    "status = CASE WHEN attempts >= ?3 THEN 2 ELSE 0 END, "
    "due_at_ms = CASE WHEN attempts >= ?3 THEN due_at_ms "
    "ELSE due_at_ms + herald_backoff(attempts) END, "
    "last_error = 'lease of ' || lease_owner || ' expired', lease_owner = '' "
    "WHERE queue = ?1 AND status = 1 AND due_at_ms <= ?2";
constexpr const char* kSelectDueSql =
    "SELECT rowid, id, payload, attempts, enqueued_at_ms, last_error FROM herald_outbox "
    "WHERE queue = ?1 AND status = 0 AND due_at_ms <= ?2 ORDER BY due_at_ms, rowid LIMIT ?3";
constexpr const char* kLeaseSql =
    "UPDATE herald_outbox SET status = 1, lease_owner = ?2, due_at_ms = ?3, "
    "attempts = attempts + 1 WHERE rowid = ?1 AND status = 0";
// ?4 < 0: any attempt (the id-only forms); otherwise the claim's attempt number fences the call.
constexpr const char* kDeleteSql =
    "DELETE FROM herald_outbox WHERE id = ?1 AND queue = ?2 AND status = 1 AND lease_owner = ?3 "
    "AND (?4 < 0 OR attempts = ?4)";
constexpr const char* kFailSql =
    "UPDATE herald_outbox SET "
    "status = CASE WHEN ?5 OR attempts >= ?6 THEN 2 ELSE 0 END, "
    "due_at_ms = CASE WHEN ?5 OR attempts >= ?6 THEN ?7 ELSE ?7 + herald_backoff(attempts) END, "
    "lease_owner = '', last_error = ?8 "
    "WHERE id = ?1 AND queue = ?2 AND status = 1 AND lease_owner = ?3 "
    "AND (?4 < 0 OR attempts = ?4) RETURNING status";
constexpr const char* kExtendSql =
    "UPDATE herald_outbox SET due_at_ms = ?5 WHERE id = ?1 AND queue = ?2 AND status = 1 "
    "AND lease_owner = ?3 AND (?4 < 0 OR attempts = ?4)";
constexpr const char* kReleaseSql =
    "UPDATE herald_outbox SET status = 0, due_at_ms = ?5, lease_owner = '', "
    "attempts = max(attempts - 1, 0) WHERE id = ?1 AND queue = ?2 AND status = 1 "
    "AND lease_owner = ?3 AND attempts = ?4";
constexpr const char* kRetrySql =
    "UPDATE herald_outbox SET status = 0, due_at_ms = ?3, attempts = 0 "
    "WHERE id = ?1 AND queue = ?2 AND status = 2";
constexpr const char* kReleaseOwnerSql =
    "UPDATE herald_outbox SET status = 0, due_at_ms = ?2, lease_owner = '' "
    "WHERE status = 1 AND lease_owner = ?1 RETURNING queue";
constexpr const char* kQueuesOfIdSql = "SELECT queue FROM herald_outbox WHERE id = ?1 LIMIT 2";
constexpr const char* kExistsSql =
    "SELECT count(*) FROM herald_outbox WHERE id = ?1 AND queue = ?2";
constexpr const char* kListSql =
    "SELECT queue, id, payload, status, attempts, enqueued_at_ms, due_at_ms, lease_owner, "
    "last_error FROM herald_outbox WHERE (?1 = '' OR queue = ?1) AND (?2 < 0 OR status = ?2) "
    "ORDER BY due_at_ms, rowid LIMIT ?3";
constexpr const char* kStatsSql =
    "SELECT queue, status, count(*), min(due_at_ms), "
    "sum(CASE WHEN status = 1 AND due_at_ms <= ?2 THEN 1 ELSE 0 END) "
    "FROM herald_outbox WHERE (?1 = '' OR queue = ?1) GROUP BY queue, status ORDER BY queue";
constexpr const char* kNextDueSql =
    "SELECT min(due_at_ms) FROM herald_outbox WHERE queue = ?1 AND status IN (0, 1)";

bool valid_name(std::string_view s) noexcept {
  return !s.empty() && s.size() <= kMaxNameBytes && s.find('\0') == std::string_view::npos;
}

/// A jittered backoff in ms: base x (1 + u), u uniform in [-jitter, +jitter] from a CSPRNG.
std::int64_t jittered_backoff(const RetryPolicy& policy, std::uint32_t attempts) {
  const auto base = static_cast<double>(backoff_base(policy, attempts).count());
  if (policy.jitter <= 0 || base <= 0) return static_cast<std::int64_t>(base);
  std::random_device rd;  // the kernel's CSPRNG (getrandom) on Linux
  const double unit = static_cast<double>(rd()) / static_cast<double>(std::random_device::max());
  const double factor = 1.0 + policy.jitter * (2.0 * unit - 1.0);
  return static_cast<std::int64_t>(std::llround(base * factor));
}

/// herald_backoff(attempts): the SQL face of jittered_backoff, for fail and lease expiry.
void sql_backoff(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* policy = static_cast<const RetryPolicy*>(sqlite3_user_data(ctx));
  const std::int64_t attempts = std::max<std::int64_t>(0, sqlite3_value_int64(argv[0]));
  sqlite3_result_int64(
      ctx, jittered_backoff(*policy, static_cast<std::uint32_t>(std::min<std::int64_t>(
                                         attempts, std::numeric_limits<std::uint32_t>::max()))));
}

const char* mode_name(NotifyMode m) {
  switch (m) {
    case NotifyMode::none:
      return "none";
    case NotifyMode::kernel:
      return "kernel";
    case NotifyMode::callback:
      return "callback";
  }
  return "unknown";
}

}  // namespace

struct Outbox::Impl {
  std::string path;
  OutboxOptions options;
  mutable std::mutex mutex;  // guards db (one SQLite connection, never used concurrently)
  mutable Db db;
  std::mutex handles_mutex;  // guards handles
  std::map<std::string, Handle, std::less<>> handles;

  Result<void> open_db(std::string* why);
  Result<void> check_schema();

  /// Notifies the queue's handle (kernel mode) with `count`; true if accepted.
  bool notify_kernel(std::string_view queue, std::int64_t count);
  /// Resolves an id-only call: the one queue holding `id`. Under the mutex.
  Result<std::string> queue_of(std::string_view id);
  /// Claims up to max entries due at or before `cutoff`. Under the mutex.
  Result<std::vector<Entry>> claim_locked(std::string_view queue, std::string_view owner,
                                          std::uint32_t max, std::chrono::milliseconds lease,
                                          std::int64_t cutoff);
  Result<void> by_holder(Slot slot, const char* sql, std::string_view queue, std::string_view id,
                         std::string_view owner, std::int64_t attempts, std::int64_t time);
  /// fail(): the resulting status (queued or failed). Under the mutex.
  Result<EntryStatus> fail_locked(std::string_view queue, std::string_view id,
                                  std::string_view owner, std::int64_t attempts,
                                  std::string_view error, bool permanent);
  Result<void> retry_locked(std::string_view queue, std::string_view id);
};

Outbox::Outbox(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}

Outbox::~Outbox() {
  if (impl_ && impl_->options.kernel != nullptr) {
    for (auto& [queue, h] : impl_->handles) (void)impl_->options.kernel->unregister_handle(h);
  }
}

std::int64_t Outbox::now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<Outbox>> Outbox::open(std::string path, OutboxOptions options) {
  return open(std::move(path), std::move(options), nullptr);
}

Result<std::unique_ptr<Outbox>> Outbox::open(std::string path, OutboxOptions options,
                                             std::string* why) {
  auto refuse = [&](const char* reason) -> Result<std::unique_ptr<Outbox>> {
    if (why != nullptr) *why = reason;
    return Errc::invalid_argument;
  };
  if (path.empty()) return refuse("the path is empty");
  if (path.find('\0') != std::string::npos) return refuse("the path contains a NUL byte");
  if (options.notify == NotifyMode::kernel && options.kernel == nullptr)
    return refuse("NotifyMode::kernel needs OutboxOptions::kernel");
  if (options.notify == NotifyMode::callback && !options.on_enqueue)
    return refuse("NotifyMode::callback needs OutboxOptions::on_enqueue");
  if (options.lease.count() <= 0) return refuse("the lease must be positive");
  if (options.retry.max_attempts == 0) return refuse("max_attempts must be at least 1");
  if (!(options.retry.jitter >= 0 && options.retry.jitter < 1))
    return refuse("jitter must be in [0, 1)");
  if (!(options.retry.multiplier >= 1)) return refuse("the multiplier must be at least 1");
  if (options.retry.initial.count() < 0 || options.retry.max < options.retry.initial)
    return refuse("the backoff must satisfy 0 <= initial <= max");
  if (options.busy_timeout.count() < 0) return refuse("busy_timeout must not be negative");

  auto impl = std::make_unique<Impl>();
  impl->path = std::move(path);
  impl->options = std::move(options);
  if (auto r = impl->open_db(why); !r) return r.error();
  return std::unique_ptr<Outbox>(new Outbox(std::move(impl)));
}

Result<void> Outbox::Impl::open_db(std::string* why) {
  auto fail_with = [&](Errc e, const std::string& what) -> Result<void> {
    if (why != nullptr) *why = what + " (" + path + ")";
    return e;
  };
  if (auto r = db.open(path); !r) {
    return fail_with(r.error(), "cannot open the outbox file: " + db.last_error());
  }
  sqlite3_busy_timeout(
      db.raw(), static_cast<int>(std::min<std::int64_t>(options.busy_timeout.count(), 1 << 30)));
  // Reading the header is where a file that is not a database shows itself (SQLITE_NOTADB).
  auto app = db.query_int("PRAGMA application_id");
  if (!app) {
    return fail_with(app.error(),
                     "not a herald outbox (not an SQLite database?): " + db.last_error());
  }
  if (sqlite3_db_readonly(db.raw(), "main") == 1) {
    return fail_with(Errc::invalid_argument, "the outbox file is read-only");
  }
  if (auto r = check_schema(); !r) return fail_with(r.error(), db.last_error());
  // WAL: readers never block the writer; one writer at a time across processes.
  auto mode = db.statement(100, "PRAGMA journal_mode = WAL");
  if (mode == nullptr) return fail_with(Errc::invalid_argument, db.last_error());
  {
    Scope s(*mode);
    const int rc = s->step();
    if (rc != SQLITE_ROW) return fail_with(db.fail(rc), "cannot use WAL: " + db.last_error());
    if (s->text(0) != "wal")
      return fail_with(Errc::invalid_argument, "cannot use WAL (journal_mode " + s->text(0) + ")");
  }
  const bool full = options.durability == Durability::power_loss;
  if (auto r = db.exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL"); !r)
    return fail_with(r.error(), db.last_error());
  if (options.max_pages != 0) {
    if (auto r = db.exec("PRAGMA max_page_count = " + std::to_string(options.max_pages)); !r)
      return fail_with(r.error(), db.last_error());
  }
  const int rc = sqlite3_create_function_v2(db.raw(), "herald_backoff", 1, SQLITE_UTF8,
                                            &options.retry, sql_backoff, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail_with(db.fail(rc), db.last_error());
  db.clear_error();
  return {};
}

Result<void> Outbox::Impl::check_schema() {
  // Decide inside a write transaction, so two processes creating one file agree.
  Transaction tx(db);
  if (auto r = tx.begin_immediate(); !r) return r;
  auto app = db.query_int("PRAGMA application_id");
  if (!app) return app.error();
  auto version = db.query_int("PRAGMA user_version");
  if (!version) return version.error();
  if (*app == 0 && *version == 0) {
    auto objects = db.query_int("SELECT count(*) FROM sqlite_master");
    if (!objects) return objects.error();
    if (*objects != 0) {
      return db.fail(Errc::invalid_argument,
                     "not a herald outbox: an SQLite database with other tables");
    }
    if (auto r = db.exec(kSchema); !r) return r;
    return tx.commit();
  }
  if (*app != kApplicationId) {
    return db.fail(Errc::invalid_argument,
                   "not a herald outbox: application_id " + std::to_string(*app));
  }
  if (*version > kSchemaVersion) {
    return db.fail(Errc::invalid_argument, "outbox schema version " + std::to_string(*version) +
                                               " is newer than this release reads (" +
                                               std::to_string(kSchemaVersion) + ")");
  }
  if (*version != kSchemaVersion) {
    return db.fail(Errc::invalid_argument,
                   "unknown outbox schema version " + std::to_string(*version));
  }
  auto table = db.query_int(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'herald_outbox'");
  if (!table) return table.error();
  if (*table != 1) return db.fail(Errc::invalid_argument, "the herald_outbox table is missing");
  return tx.commit();
}

bool Outbox::Impl::notify_kernel(std::string_view queue, std::int64_t count) {
  if (options.notify != NotifyMode::kernel) return false;
  Handle h;
  {
    std::lock_guard lock(handles_mutex);
    auto it = handles.find(queue);
    if (it == handles.end()) {
      std::string hint = "outbox:" + std::string(queue);
      auto r = options.kernel->register_handle({.debug_hint = hint});
      if (!r) return false;
      it = handles.emplace(std::string(queue), *r).first;
    }
    h = it->second;
  }
  return options.kernel->notify(h, count).has_value();
}

Handle Outbox::handle(std::string_view queue) {
  if (impl_->options.notify != NotifyMode::kernel || !valid_name(queue)) return {};
  std::lock_guard lock(impl_->handles_mutex);
  auto it = impl_->handles.find(queue);
  if (it != impl_->handles.end()) return it->second;
  std::string hint = "outbox:" + std::string(queue);
  auto r = impl_->options.kernel->register_handle({.debug_hint = hint});
  if (!r) return {};
  impl_->handles.emplace(std::string(queue), *r);
  return *r;
}

// ---- persist, then notify ----

Result<Enqueued> Outbox::enqueue(std::string_view queue, std::string_view id,
                                 std::span<const std::byte> payload,
                                 std::chrono::milliseconds delay) {
  const OutboxItem item{id, payload};
  auto r = enqueue_batch(queue, std::span(&item, 1), delay);
  if (!r) return r.error();
  return (*r)[0];
}

Result<std::vector<Enqueued>> Outbox::enqueue_batch(std::string_view queue,
                                                    std::span<const OutboxItem> items,
                                                    std::chrono::milliseconds delay) {
  if (!valid_name(queue) || delay.count() < 0) return Errc::invalid_argument;
  for (const OutboxItem& item : items) {
    if (!valid_name(item.id)) return Errc::invalid_argument;
  }
  std::vector<Enqueued> out(items.size(), Enqueued{false, false});
  std::int64_t inserted = 0;
  {
    std::lock_guard lock(impl_->mutex);
    Db& db = impl_->db;
    Statement* insert = db.statement(kInsert, kInsertSql);
    if (insert == nullptr) return db.last_errc();
    const std::int64_t now = now_ms();
    Transaction tx(db);
    if (items.size() > 1) {
      if (auto r = tx.begin_immediate(); !r) return r.error();
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      Scope s(*insert);
      s->bind(1, queue);
      s->bind(2, items[i].id);
      s->bind(3, items[i].payload);
      s->bind(4, now);
      s->bind(5, now + delay.count());
      const int rc = s->step();
      if (rc != SQLITE_DONE) return db.fail(rc);  // the batch rolls back as a whole
      out[i].inserted = sqlite3_changes(db.raw()) == 1;
      inserted += out[i].inserted ? 1 : 0;
    }
    if (items.size() > 1) {
      if (auto r = tx.commit(); !r) return r.error();
    }
    db.clear_error();
  }
  // Committed: now, and only now, tell someone (semantic 1). Outside the lock.
  if (inserted == 0) return out;
  switch (impl_->options.notify) {
    case NotifyMode::none:
      break;
    case NotifyMode::kernel: {
      const bool ok = impl_->notify_kernel(queue, inserted);
      for (Enqueued& e : out) e.notified = e.inserted && ok;
      break;
    }
    case NotifyMode::callback:
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!out[i].inserted) continue;
        try {
          impl_->options.on_enqueue(queue, items[i].id);
          out[i].notified = true;
        } catch (...) {
          out[i].notified = false;  // the entry stays committed: no rollback
        }
      }
      break;
  }
  return out;
}

// ---- dispatch ----

Result<std::vector<Entry>> Outbox::Impl::claim_locked(std::string_view queue,
                                                      std::string_view owner, std::uint32_t max,
                                                      std::chrono::milliseconds lease,
                                                      std::int64_t cutoff) {
  Statement* reap = db.statement(kReap, kReapSql);
  Statement* select = db.statement(kSelectDue, kSelectDueSql);
  Statement* take = db.statement(kLease, kLeaseSql);
  if (reap == nullptr || select == nullptr || take == nullptr) return db.last_errc();
  const std::int64_t now = Outbox::now_ms();
  const std::int64_t until = now + (lease.count() > 0 ? lease : options.lease).count();
  Transaction tx(db);
  if (auto r = tx.begin_immediate(); !r) return r.error();
  {
    Scope s(*reap);
    s->bind(1, queue);
    s->bind(2, now);
    s->bind(3, static_cast<std::int64_t>(options.retry.max_attempts));
    if (const int rc = s->step(); rc != SQLITE_DONE) return db.fail(rc);
  }
  std::vector<Entry> out;
  std::vector<std::int64_t> rowids;
  {
    Scope s(*select);
    s->bind(1, queue);
    s->bind(2, std::min(now, cutoff));
    s->bind(3, static_cast<std::int64_t>(max));
    int rc;
    while ((rc = s->step()) == SQLITE_ROW) {
      rowids.push_back(s->int64(0));
      Entry e{std::string(queue),
              s->text(1),
              s->blob(2),
              EntryStatus::leased,
              static_cast<std::uint32_t>(s->int64(3) + 1),
              s->int64(4),
              until,
              std::string(owner),
              s->text(5)};
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return db.fail(rc);
  }
  for (const std::int64_t rowid : rowids) {
    Scope s(*take);
    s->bind(1, rowid);
    s->bind(2, owner);
    s->bind(3, until);
    if (const int rc = s->step(); rc != SQLITE_DONE) return db.fail(rc);
  }
  if (auto r = tx.commit(); !r) return r.error();
  db.clear_error();
  return out;
}

Result<std::vector<Entry>> Outbox::claim(std::string_view queue, std::string_view owner,
                                         std::uint32_t max, std::chrono::milliseconds lease) {
  if (!valid_name(queue) || !valid_name(owner) || lease.count() < 0) return Errc::invalid_argument;
  if (max == 0) return std::vector<Entry>{};
  std::lock_guard lock(impl_->mutex);
  return impl_->claim_locked(queue, owner, max, lease, std::numeric_limits<std::int64_t>::max());
}

Result<std::string> Outbox::Impl::queue_of(std::string_view id) {
  Statement* s = db.statement(kQueuesOfId, kQueuesOfIdSql);
  if (s == nullptr) return db.last_errc();
  Scope scope(*s);
  s->bind(1, id);
  std::vector<std::string> queues;
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) queues.push_back(s->text(0));
  if (rc != SQLITE_DONE) return db.fail(rc);
  if (queues.empty()) return db.fail(Errc::closed, "no entry with this id");
  if (queues.size() > 1)
    return db.fail(Errc::invalid_argument, "the id names entries in more than one queue");
  return std::move(queues[0]);
}

Result<void> Outbox::Impl::by_holder(Slot slot, const char* sql, std::string_view queue,
                                     std::string_view id, std::string_view owner,
                                     std::int64_t attempts, std::int64_t time) {
  Statement* s = db.statement(slot, sql);
  if (s == nullptr) return db.last_errc();
  Scope scope(*s);
  s->bind(1, id);
  s->bind(2, queue);
  s->bind(3, owner);
  s->bind(4, attempts);
  if (time >= 0) s->bind(5, time);
  if (const int rc = s->step(); rc != SQLITE_DONE) return db.fail(rc);
  if (sqlite3_changes(db.raw()) != 1)
    return db.fail(Errc::closed, "the caller does not hold this entry's lease");
  db.clear_error();
  return {};
}

namespace {
bool valid_holder_call(std::string_view queue, std::string_view id, std::string_view owner) {
  return valid_name(queue) && valid_name(id) && valid_name(owner);
}
}  // namespace

Result<void> Outbox::ack(const Entry& entry, std::string_view owner) {
  if (!valid_holder_call(entry.queue, entry.id, owner)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  return impl_->by_holder(kDelete, kDeleteSql, entry.queue, entry.id, owner, entry.attempts, -1);
}

Result<void> Outbox::ack(std::string_view id, std::string_view owner) {
  if (!valid_name(id) || !valid_name(owner)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  auto queue = impl_->queue_of(id);
  if (!queue) return queue.error();
  return impl_->by_holder(kDelete, kDeleteSql, *queue, id, owner, -1, -1);
}

Result<void> Outbox::extend(const Entry& entry, std::string_view owner,
                            std::chrono::milliseconds lease) {
  if (!valid_holder_call(entry.queue, entry.id, owner) || lease.count() < 0)
    return Errc::invalid_argument;
  const auto ms = (lease.count() > 0 ? lease : impl_->options.lease).count();
  std::lock_guard lock(impl_->mutex);
  return impl_->by_holder(kExtend, kExtendSql, entry.queue, entry.id, owner, entry.attempts,
                          now_ms() + ms);
}

Result<void> Outbox::extend(std::string_view id, std::string_view owner,
                            std::chrono::milliseconds lease) {
  if (!valid_name(id) || !valid_name(owner) || lease.count() < 0) return Errc::invalid_argument;
  const auto ms = (lease.count() > 0 ? lease : impl_->options.lease).count();
  std::lock_guard lock(impl_->mutex);
  auto queue = impl_->queue_of(id);
  if (!queue) return queue.error();
  return impl_->by_holder(kExtend, kExtendSql, *queue, id, owner, -1, now_ms() + ms);
}

Result<EntryStatus> Outbox::Impl::fail_locked(std::string_view queue, std::string_view id,
                                              std::string_view owner, std::int64_t attempts,
                                              std::string_view error, bool permanent) {
  Statement* s = db.statement(kFail, kFailSql);
  if (s == nullptr) return db.last_errc();
  Scope scope(*s);
  s->bind(1, id);
  s->bind(2, queue);
  s->bind(3, owner);
  s->bind(4, attempts);
  s->bind(5, std::int64_t{permanent ? 1 : 0});
  s->bind(6, static_cast<std::int64_t>(options.retry.max_attempts));
  s->bind(7, Outbox::now_ms());
  s->bind(8, error);
  int rc = s->step();
  if (rc == SQLITE_DONE)
    return db.fail(Errc::closed, "the caller does not hold this entry's lease");
  if (rc != SQLITE_ROW) return db.fail(rc);
  const auto status = static_cast<EntryStatus>(s->int64(0));
  rc = s->step();  // runs the statement to its end (the autocommit)
  if (rc != SQLITE_DONE) return db.fail(rc);
  db.clear_error();
  return status;
}

Result<void> Outbox::fail(const Entry& entry, std::string_view owner, std::string_view error,
                          bool permanent) {
  if (!valid_holder_call(entry.queue, entry.id, owner)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  auto r = impl_->fail_locked(entry.queue, entry.id, owner, entry.attempts, error, permanent);
  if (!r) return r.error();
  return {};
}

Result<void> Outbox::fail(std::string_view id, std::string_view owner, std::string_view error,
                          bool permanent) {
  if (!valid_name(id) || !valid_name(owner)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  auto queue = impl_->queue_of(id);
  if (!queue) return queue.error();
  auto r = impl_->fail_locked(*queue, id, owner, -1, error, permanent);
  if (!r) return r.error();
  return {};
}

Result<void> Outbox::release(const Entry& entry, std::string_view owner) {
  if (!valid_holder_call(entry.queue, entry.id, owner)) return Errc::invalid_argument;
  {
    std::lock_guard lock(impl_->mutex);
    if (auto r = impl_->by_holder(kRelease, kReleaseSql, entry.queue, entry.id, owner,
                                  entry.attempts, now_ms());
        !r)
      return r;
  }
  (void)impl_->notify_kernel(entry.queue, 1);
  return {};
}

Result<void> Outbox::Impl::retry_locked(std::string_view queue, std::string_view id) {
  Statement* s = db.statement(kRetry, kRetrySql);
  if (s == nullptr) return db.last_errc();
  {
    Scope scope(*s);
    s->bind(1, id);
    s->bind(2, queue);
    s->bind(3, Outbox::now_ms());
    if (const int rc = s->step(); rc != SQLITE_DONE) return db.fail(rc);
  }
  if (sqlite3_changes(db.raw()) == 1) {
    db.clear_error();
    return {};
  }
  Statement* exists = db.statement(kExists, kExistsSql);
  if (exists == nullptr) return db.last_errc();
  Scope scope(*exists);
  exists->bind(1, id);
  exists->bind(2, queue);
  if (const int rc = exists->step(); rc != SQLITE_ROW) return db.fail(rc);
  if (exists->int64(0) == 0) return db.fail(Errc::invalid_argument, "no entry with this id");
  return db.fail(Errc::closed, "the entry is not failed");
}

Result<void> Outbox::retry(std::string_view queue, std::string_view id) {
  if (!valid_name(queue) || !valid_name(id)) return Errc::invalid_argument;
  {
    std::lock_guard lock(impl_->mutex);
    if (auto r = impl_->retry_locked(queue, id); !r) return r;
  }
  (void)impl_->notify_kernel(queue, 1);
  return {};
}

Result<void> Outbox::retry(std::string_view id) {
  if (!valid_name(id)) return Errc::invalid_argument;
  std::string queue;
  {
    std::lock_guard lock(impl_->mutex);
    auto q = impl_->queue_of(id);
    if (!q) return q.error() == Errc::closed ? Errc::invalid_argument : q.error();
    queue = std::move(*q);
    if (auto r = impl_->retry_locked(queue, id); !r) return r;
  }
  (void)impl_->notify_kernel(queue, 1);
  return {};
}

Result<std::uint32_t> Outbox::release_leases(std::string_view owner) {
  if (!valid_name(owner)) return Errc::invalid_argument;
  std::map<std::string, std::int64_t, std::less<>> queues;
  std::uint32_t n = 0;
  {
    std::lock_guard lock(impl_->mutex);
    Db& db = impl_->db;
    Statement* s = db.statement(kReleaseOwner, kReleaseOwnerSql);
    if (s == nullptr) return db.last_errc();
    Scope scope(*s);
    s->bind(1, owner);
    s->bind(2, now_ms());
    int rc;
    while ((rc = s->step()) == SQLITE_ROW) {
      ++queues[s->text(0)];
      ++n;
    }
    if (rc != SQLITE_DONE) return db.fail(rc);
    db.clear_error();
  }
  for (const auto& [queue, count] : queues) (void)impl_->notify_kernel(queue, count);
  return n;
}

Result<DrainResult> Outbox::drain(std::string_view queue, std::string_view owner,
                                  const std::function<bool(const Entry&)>& send) {
  if (!valid_name(queue) || !valid_name(owner) || !send) return Errc::invalid_argument;
  // Batches start at one entry and double (up to 64) while a batch takes under a quarter of the
  // lease, so slow senders do not hold many unstarted leases.
  constexpr std::uint32_t kMaxBatch = 64;
  std::uint32_t batch_size = 1;
  const std::int64_t lease_ms = impl_->options.lease.count();
  DrainResult result{0, 0, 0};
  const std::int64_t cutoff = now_ms();
  std::unordered_set<std::string> seen;  // ids handled in this pass: never twice in one pass
  for (;;) {
    Result<std::vector<Entry>> batch = Errc::closed;
    {
      std::lock_guard lock(impl_->mutex);
      batch = impl_->claim_locked(queue, owner, batch_size, {}, cutoff);
    }
    if (!batch) return batch.error();
    if (batch->empty()) return result;
    const std::int64_t batch_started = now_ms();
    bool repeated = false;
    for (Entry& e : *batch) {
      if (seen.count(e.id) != 0) {  // re-queued earlier in this pass and due again: next pass
        repeated = true;
        if (auto r = release(e, owner); !r && r.error() != Errc::closed) return r.error();
        continue;
      }
      seen.insert(e.id);
      if (e.due_at_ms - now_ms() < lease_ms / 2) {  // waited long in its batch: renew the lease
        if (auto r = extend(e, owner, {}); !r) {
          if (r.error() != Errc::closed) return r.error();
          continue;  // lost meanwhile: its new holder sends it
        }
      }
      bool ok = false;
      std::string error = "send returned false";
      try {
        ok = send(e);
      } catch (const std::exception& ex) {
        error = ex.what();
      } catch (...) {
        error = "send threw";
      }
      if (ok) {
        auto r = ack(e, owner);
        if (r) {
          ++result.sent;
        } else if (r.error() != Errc::closed) {
          return r.error();
        }
        continue;
      }
      Result<EntryStatus> status = Errc::closed;
      {
        std::lock_guard lock(impl_->mutex);
        status = impl_->fail_locked(e.queue, e.id, owner, e.attempts, error, false);
      }
      if (!status) {
        if (status.error() != Errc::closed) return status.error();
        continue;  // the lease was lost meanwhile: its new holder decides
      }
      ++(*status == EntryStatus::failed ? result.failed : result.retried);
    }
    if (repeated) return result;
    const std::int64_t took = now_ms() - batch_started;
    batch_size = took < lease_ms / 4 ? std::min(batch_size * 2, kMaxBatch) : 1;
  }
}

// ---- observe ----

std::string Outbox::semantics() const {
  const OutboxOptions& o = impl_->options;
  const bool full = o.durability == Durability::power_loss;
  std::string j = "{\"storage\":{\"engine\":\"sqlite\",\"sqlite_version\":";
  append_json_string(j, sqlite3_libversion());
  j += ",\"path\":";
  append_json_string(j, impl_->path);
  j += ",\"journal\":\"wal\",\"synchronous\":";
  j += full ? "\"full\"" : "\"normal\"";
  j += ",\"survives\":";
  j += full ? "[\"process-crash\",\"power-loss\"]" : "[\"process-crash\"]";
  j += ",\"schema_version\":" + std::to_string(kSchemaVersion);
  j += ",\"busy_timeout_ms\":" + std::to_string(o.busy_timeout.count());
  j += ",\"max_pages\":" + std::to_string(o.max_pages);
  j += ",\"transaction_per_state_change\":true},";
  j += "\"notification\":{\"mode\":\"";
  j += mode_name(o.notify);
  j += "\",\"scope\":\"in-process\",\"notifies_on_enqueue\":";
  j += o.notify == NotifyMode::none ? "false" : "true";
  j += ",\"after_commit\":true,\"is_delivery\":false,\"target\":";
  j += o.notify == NotifyMode::kernel     ? "\"kernel handle per queue\""
       : o.notify == NotifyMode::callback ? "\"on_enqueue callback\""
                                          : "null";
  j += "},\"dispatch\":{\"claim\":\"lease\",\"lease_ms\":" + std::to_string(o.lease.count());
  j += ",\"order\":\"oldest-due-first\",\"exclusive\":\"begin-immediate\"";
  j += ",\"dispatcher_wakes_on\":";
  j += o.notify == NotifyMode::kernel ? "\"kernel handle, else polling up to 5000 ms\""
                                      : "\"polling 100 ms -> 5000 ms (x2)\"";
  j += ",\"lease_expiry\":\"counts as a failure\"},";
  j += "\"retry\":{\"initial_ms\":" + std::to_string(o.retry.initial.count());
  j += ",\"max_ms\":" + std::to_string(o.retry.max.count());
  char buf[64];
  std::snprintf(buf, sizeof buf, ",\"multiplier\":%g,\"jitter\":%g", o.retry.multiplier,
                o.retry.jitter);
  j += buf;
  j += ",\"jitter_source\":\"std::random_device\"";
  j += ",\"max_attempts\":" + std::to_string(o.retry.max_attempts);
  j += ",\"dead_letter\":\"failed\"},";
  j += "\"dedup\":\"by (queue, id) while the entry exists\",";
  j += "\"delivery\":\"at-least-once\"}";
  return j;
}

Result<std::string> Outbox::stats(std::string_view queue) const {
  if (!queue.empty() && !valid_name(queue)) return Errc::invalid_argument;
  struct Counts {
    std::int64_t queued = 0, leased = 0, failed = 0, expired = 0;
    std::optional<std::int64_t> oldest_due, next_lease_expiry;
  };
  std::map<std::string, Counts> per_queue;
  const std::int64_t now = now_ms();
  {
    std::lock_guard lock(impl_->mutex);
    Db& db = impl_->db;
    Statement* s = db.statement(kStats, kStatsSql);
    if (s == nullptr) return db.last_errc();
    Scope scope(*s);
    s->bind(1, queue);
    s->bind(2, now);
    int rc;
    while ((rc = s->step()) == SQLITE_ROW) {
      Counts& c = per_queue[s->text(0)];
      const auto n = s->int64(2);
      switch (s->int64(1)) {
        case 0:
          c.queued = n;
          c.oldest_due = s->int64(3);
          break;
        case 1:
          c.leased = n;
          c.expired = s->int64(4);
          c.next_lease_expiry = s->int64(3);
          break;
        default:
          c.failed = n;
      }
    }
    if (rc != SQLITE_DONE) return db.fail(rc);
  }
  auto one = [&](const std::string& name, const Counts& c) {
    std::string j = "{\"queue\":" + json_string(name);
    j += ",\"queued\":" + std::to_string(c.queued) + ",\"leased\":" + std::to_string(c.leased);
    j += ",\"failed\":" + std::to_string(c.failed) +
         ",\"expired_leases\":" + std::to_string(c.expired);
    j += ",\"due_now\":";
    j += c.oldest_due && *c.oldest_due <= now ? "true" : "false";
    j += ",\"oldest_due_ms\":" + (c.oldest_due ? std::to_string(*c.oldest_due) : "null");
    j += ",\"next_lease_expiry_ms\":" +
         (c.next_lease_expiry ? std::to_string(*c.next_lease_expiry) : "null");
    j += "}";
    return j;
  };
  if (!queue.empty()) {
    const std::string name(queue);
    auto it = per_queue.find(name);
    std::string j = one(name, it == per_queue.end() ? Counts{} : it->second);
    j.insert(j.size() - 1, ",\"now_ms\":" + std::to_string(now));
    return j;
  }
  std::string j = "{\"now_ms\":" + std::to_string(now) + ",\"queues\":[";
  Counts total;
  bool first = true;
  for (const auto& [name, c] : per_queue) {
    if (!first) j += ",";
    first = false;
    j += one(name, c);
    total.queued += c.queued;
    total.leased += c.leased;
    total.failed += c.failed;
    total.expired += c.expired;
  }
  j += "],\"total\":{\"queued\":" + std::to_string(total.queued) +
       ",\"leased\":" + std::to_string(total.leased) +
       ",\"failed\":" + std::to_string(total.failed) +
       ",\"expired_leases\":" + std::to_string(total.expired) + "}}";
  return j;
}

Result<std::vector<Entry>> Outbox::list(std::string_view queue, std::optional<EntryStatus> status,
                                        std::size_t limit) const {
  if (!queue.empty() && !valid_name(queue)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  Db& db = impl_->db;
  Statement* s = db.statement(kList, kListSql);
  if (s == nullptr) return db.last_errc();
  Scope scope(*s);
  s->bind(1, queue);
  s->bind(2, status ? static_cast<std::int64_t>(*status) : std::int64_t{-1});
  s->bind(3, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
  std::vector<Entry> out;
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) {
    out.push_back(Entry{s->text(0), s->text(1), s->blob(2), static_cast<EntryStatus>(s->int64(3)),
                        static_cast<std::uint32_t>(s->int64(4)), s->int64(5), s->int64(6),
                        s->text(7), s->text(8)});
  }
  if (rc != SQLITE_DONE) return db.fail(rc);
  return out;
}

Result<std::optional<std::int64_t>> Outbox::next_due_ms(std::string_view queue) const {
  if (!valid_name(queue)) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  Db& db = impl_->db;
  Statement* s = db.statement(kNextDue, kNextDueSql);
  if (s == nullptr) return db.last_errc();
  Scope scope(*s);
  s->bind(1, queue);
  const int rc = s->step();
  if (rc != SQLITE_ROW) return db.fail(rc);
  if (s->is_null(0)) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{s->int64(0)};
}

std::string Outbox::last_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->db.last_error();
}

const OutboxOptions& Outbox::options() const noexcept { return impl_->options; }
const std::string& Outbox::path() const noexcept { return impl_->path; }

}  // namespace herald
