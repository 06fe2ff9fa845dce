// outbox/<family>/<impl>: the durable outbox against raw SQLite doing the same statements on the
// same kind of file (WAL, synchronous=NORMAL, the outbox's schema), in the same run. Files live
// in a fresh directory under the system's temp dir (the machine's own disk).
//   outbox/enqueue_claim_ack/{herald,raw_sqlite}: one enqueue, one claim, one ack per item, each
//       its own transaction (the claim: BEGIN IMMEDIATE, lease expiry, select, lease, COMMIT).
//   outbox/enqueue_batch100/{herald,raw_sqlite}: 100 inserts per transaction; items/s.
//   outbox/wake_latency/{kernel,polling}: enqueue -> the Dispatcher's handler starting, with the
//       worker idle before each enqueue; manual time = the latency, p50/p99 as counters.
//       kernel: NotifyMode::kernel (the worker parks on the queue's handle); polling:
//       NotifyMode::none (the worker polls 100 ms -> 5 s, x2).
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <herald/outbox.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
const std::string kPayload(64, 'p');
constexpr std::int64_t kRowsBeforeReset = 5000;  // both impls empty their table this often

/// A fresh directory for one benchmark's file, removed afterwards.
class BenchDir {
 public:
  BenchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "herald-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file() const { return (path_ / "outbox.db").string(); }

 private:
  std::filesystem::path path_;
};

/// Empties the table on a connection of its own (outside the timed region).
void delete_all(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "DELETE FROM herald_outbox", nullptr, nullptr, nullptr);
  sqlite3_close_v2(db);
}

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s)); }

/// Raw SQLite with the outbox's settings, schema and statements, minus everything herald adds
/// around them (validation, the mutex, Result, building Entry values, notification).
class RawOutbox {
 public:
  explicit RawOutbox(const std::string& path) {
    sqlite3_open_v2(path.c_str(), &db_,
                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec(
        "CREATE TABLE herald_outbox(queue TEXT NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,"
        " status INTEGER NOT NULL, attempts INTEGER NOT NULL, enqueued_at_ms INTEGER NOT NULL,"
        " due_at_ms INTEGER NOT NULL, lease_owner TEXT NOT NULL, last_error TEXT NOT NULL);"
        "CREATE UNIQUE INDEX herald_outbox_id ON herald_outbox(id, queue);"
        "CREATE INDEX herald_outbox_due ON herald_outbox(queue, status, due_at_ms);"
        "CREATE INDEX herald_outbox_owner ON herald_outbox(lease_owner) WHERE status = 1;");
    insert_ = prepare(
        "INSERT INTO herald_outbox(queue, id, payload, status, attempts, enqueued_at_ms, "
        "due_at_ms, lease_owner, last_error) VALUES(?1, ?2, ?3, 0, 0, ?4, ?4, '', '') "
        "ON CONFLICT DO NOTHING");
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    reap_ = prepare(
        "UPDATE herald_outbox SET status = CASE WHEN attempts >= 5 THEN 2 ELSE 0 END, "
        "due_at_ms = due_at_ms + 1000, lease_owner = '' "
        "WHERE queue = ?1 AND status = 1 AND due_at_ms <= ?2");
    select_ = prepare(
        "SELECT rowid, id, payload, attempts, enqueued_at_ms, last_error FROM herald_outbox "
        "WHERE queue = ?1 AND status = 0 AND due_at_ms <= ?2 ORDER BY due_at_ms, rowid LIMIT ?3");
    lease_ = prepare(
        "UPDATE herald_outbox SET status = 1, lease_owner = ?2, due_at_ms = ?3, "
        "attempts = attempts + 1 WHERE rowid = ?1 AND status = 0");
    delete_ = prepare(
        "DELETE FROM herald_outbox WHERE id = ?1 AND queue = ?2 AND status = 1 AND "
        "lease_owner = ?3 AND (?4 < 0 OR attempts = ?4)");
  }
  ~RawOutbox() {
    for (sqlite3_stmt* s : {insert_, begin_, commit_, reap_, select_, lease_, delete_})
      sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }

  void insert(const std::string& id, std::int64_t now) {
    sqlite3_bind_text(insert_, 1, "q", 1, SQLITE_STATIC);
    sqlite3_bind_text(insert_, 2, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(insert_, 3, kPayload.data(), static_cast<int>(kPayload.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert_, 4, now);
    run(insert_);
  }
  /// One claim transaction; returns the claimed id and attempts (empty id when none).
  std::pair<std::string, std::int64_t> claim_one(std::int64_t now) {
    run(begin_);
    sqlite3_bind_text(reap_, 1, "q", 1, SQLITE_STATIC);
    sqlite3_bind_int64(reap_, 2, now);
    run(reap_);
    sqlite3_bind_text(select_, 1, "q", 1, SQLITE_STATIC);
    sqlite3_bind_int64(select_, 2, now);
    sqlite3_bind_int64(select_, 3, 1);
    std::int64_t rowid = -1, attempts = 0;
    std::string id;
    if (sqlite3_step(select_) == SQLITE_ROW) {
      rowid = sqlite3_column_int64(select_, 0);
      id.assign(reinterpret_cast<const char*>(sqlite3_column_text(select_, 1)),
                static_cast<std::size_t>(sqlite3_column_bytes(select_, 1)));
      // The payload is copied out, as a handler would get it.
      std::vector<std::byte> payload(static_cast<std::size_t>(sqlite3_column_bytes(select_, 2)));
      if (!payload.empty())
        std::memcpy(payload.data(), sqlite3_column_blob(select_, 2), payload.size());
      benchmark::DoNotOptimize(payload.data());
      attempts = sqlite3_column_int64(select_, 3) + 1;
    }
    sqlite3_reset(select_);
    if (rowid >= 0) {
      sqlite3_bind_int64(lease_, 1, rowid);
      sqlite3_bind_text(lease_, 2, "worker", 6, SQLITE_STATIC);
      sqlite3_bind_int64(lease_, 3, now + 30000);
      run(lease_);
    }
    run(commit_);
    return {id, attempts};
  }
  void ack(const std::string& id, std::int64_t attempts) {
    sqlite3_bind_text(delete_, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(delete_, 2, "q", 1, SQLITE_STATIC);
    sqlite3_bind_text(delete_, 3, "worker", 6, SQLITE_STATIC);
    sqlite3_bind_int64(delete_, 4, attempts);
    run(delete_);
  }
  void begin() { run(begin_); }
  void commit() { run(commit_); }
  void exec(const char* sql) { sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

 private:
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    return s;
  }
  static void run(sqlite3_stmt* s) {
    while (sqlite3_step(s) == SQLITE_ROW) {
    }
    sqlite3_reset(s);
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt *insert_ = nullptr, *begin_ = nullptr, *commit_ = nullptr, *reap_ = nullptr,
               *select_ = nullptr, *lease_ = nullptr, *delete_ = nullptr;
};

void enqueue_claim_ack_herald(benchmark::State& state) {
  BenchDir dir;
  auto box = herald::Outbox::open(dir.file()).value();
  std::uint64_t n = 0;
  for (auto _ : state) {
    const std::string id = "e" + std::to_string(n++);
    if (!box->enqueue("q", id, bytes(kPayload))) state.SkipWithError("enqueue failed");
    auto claimed = box->claim("q", "worker", 1);
    if (!claimed || claimed->size() != 1) {
      state.SkipWithError("claim failed");
      break;
    }
    if (!box->ack(claimed->front(), "worker")) state.SkipWithError("ack failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void enqueue_claim_ack_raw(benchmark::State& state) {
  BenchDir dir;
  RawOutbox raw(dir.file());
  std::uint64_t n = 0;
  for (auto _ : state) {
    const std::string id = "e" + std::to_string(n++);
    raw.insert(id, herald::Outbox::now_ms());
    auto [claimed, attempts] = raw.claim_one(herald::Outbox::now_ms());
    if (claimed.empty()) {
      state.SkipWithError("claim failed");
      break;
    }
    raw.ack(claimed, attempts);
  }
  state.SetItemsProcessed(state.iterations());
}

void enqueue_batch_herald(benchmark::State& state) {
  BenchDir dir;
  auto box = herald::Outbox::open(dir.file()).value();
  std::vector<std::string> ids(100);
  std::vector<herald::OutboxItem> items(100);
  std::int64_t n = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ids[i] = "e" + std::to_string(n++);
      items[i] = {ids[i], bytes(kPayload)};
    }
    if (!box->enqueue_batch("q", items)) state.SkipWithError("enqueue_batch failed");
    if (n % kRowsBeforeReset == 0) {
      state.PauseTiming();
      delete_all(dir.file());
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

void enqueue_batch_raw(benchmark::State& state) {
  BenchDir dir;
  RawOutbox raw(dir.file());
  std::vector<std::string> ids(100);
  std::int64_t n = 0;
  for (auto _ : state) {
    for (auto& id : ids) id = "e" + std::to_string(n++);
    const std::int64_t now = herald::Outbox::now_ms();
    raw.begin();
    for (const auto& id : ids) raw.insert(id, now);
    raw.commit();
    if (n % kRowsBeforeReset == 0) {
      state.PauseTiming();
      raw.exec("DELETE FROM herald_outbox");
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

/// Enqueue -> handler start with an idle worker. The payload carries the enqueue's timestamp.
void wake_latency(benchmark::State& state, bool kernel_mode, std::chrono::microseconds idle) {
  BenchDir dir;
  herald::Kernel kernel;
  herald::OutboxOptions options;
  if (kernel_mode) {
    options.notify = herald::NotifyMode::kernel;
    options.kernel = &kernel;
  }
  auto box = herald::Outbox::open(dir.file(), options).value();
  std::atomic<std::int64_t> latency_ns{-1};
  std::atomic<std::uint32_t> handled{0};  // the futex word: bumped after every latency_ns store
  herald::Dispatcher dispatcher(*box, {.queue = "q"}, [&](const herald::Entry& e) {
    const std::int64_t now = Clock::now().time_since_epoch().count();
    const std::string stamp(reinterpret_cast<const char*>(e.payload.data()), e.payload.size());
    latency_ns.store(now - std::stoll(stamp), std::memory_order_release);
    handled.fetch_add(1, std::memory_order_release);
    herald_bench::futex_wake(handled);
    return herald::HandlerOutcome::done();
  });
  if (!dispatcher.start()) {
    state.SkipWithError("dispatcher did not start");
    return;
  }
  std::vector<double> samples_us;
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(idle);  // the worker goes idle (parks, or sleeps in its poll)
    latency_ns.store(-1, std::memory_order_relaxed);
    const std::string stamp = std::to_string(Clock::now().time_since_epoch().count());
    if (!box->enqueue("q", "e" + std::to_string(n++), bytes(stamp))) {
      state.SkipWithError("enqueue failed");
      break;
    }
    for (;;) {
      const std::uint32_t gen = handled.load(std::memory_order_acquire);
      if (latency_ns.load(std::memory_order_acquire) != -1) break;
      herald_bench::futex_wait(handled, gen);
    }
    const double us = static_cast<double>(latency_ns.load(std::memory_order_acquire)) / 1000.0;
    samples_us.push_back(us);
    state.SetIterationTime(us / 1e6);
  }
  dispatcher.stop();
  if (samples_us.empty()) return;
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = samples_us[samples_us.size() / 2];
  state.counters["p99_us"] = samples_us[samples_us.size() * 99 / 100];
}

void wake_latency_kernel(benchmark::State& state) {
  wake_latency(state, true, std::chrono::microseconds(2000));
}
void wake_latency_polling(benchmark::State& state) {
  wake_latency(state, false, std::chrono::microseconds(2000));
}

}  // namespace

BENCHMARK(enqueue_claim_ack_herald)->Name("outbox/enqueue_claim_ack/herald")->UseRealTime();
BENCHMARK(enqueue_claim_ack_raw)->Name("outbox/enqueue_claim_ack/raw_sqlite")->UseRealTime();
BENCHMARK(enqueue_batch_herald)->Name("outbox/enqueue_batch100/herald")->UseRealTime();
BENCHMARK(enqueue_batch_raw)->Name("outbox/enqueue_batch100/raw_sqlite")->UseRealTime();
BENCHMARK(wake_latency_kernel)
    ->Name("outbox/wake_latency/kernel")
    ->UseManualTime()
    ->Iterations(400)
    ->Unit(benchmark::kMicrosecond);
// Each sample waits out part of a poll interval (the worker's first poll after work is 100 ms).
BENCHMARK(wake_latency_polling)
    ->Name("outbox/wake_latency/polling")
    ->UseManualTime()
    ->Iterations(20)
    ->Unit(benchmark::kMicrosecond);
