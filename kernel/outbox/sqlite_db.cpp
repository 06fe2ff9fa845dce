#include "outbox/sqlite_db.hpp"

#include <cstring>

namespace herald::outbox_detail {

Errc errc_from_sqlite(int rc) noexcept {
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Errc{};
    case SQLITE_FULL:
      return Errc::full;
    case SQLITE_NOMEM:
      return Errc::out_of_memory;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Errc::timed_out;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
    case SQLITE_FORMAT:
    case SQLITE_SCHEMA:
    case SQLITE_ERROR:
      return Errc::invalid_argument;
    default:  // SQLITE_IOERR, SQLITE_PROTOCOL, ...: the store cannot be used now
      return Errc::closed;
  }
}

Statement::Statement(sqlite3* db, std::string_view sql) {
  prepare_rc_ = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                   SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (prepare_rc_ != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
}

std::vector<std::byte> Statement::blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  std::vector<std::byte> out(static_cast<std::size_t>(n));
  if (n > 0 && p != nullptr) std::memcpy(out.data(), p, out.size());
  return out;
}

Db::~Db() {
  for (Statement* s : cache_) delete s;
  cache_.clear();
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Result<void> Db::open(const std::string& path) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const Errc e = fail(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    return e;
  }
  sqlite3_extended_result_codes(db_, 1);
  return {};
}

Result<void> Db::exec(std::string_view sql) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(rc);
  return {};
}

Result<std::int64_t> Db::query_int(std::string_view sql) {
  Statement s(db_, sql);
  if (!s.ok()) return fail(s.prepare_rc());
  const int rc = s.step();
  if (rc == SQLITE_ROW) return s.int64(0);
  if (rc == SQLITE_DONE) return std::int64_t{0};
  return fail(rc);
}

Statement* Db::statement(std::size_t slot, std::string_view sql) {
  if (slot >= cache_.size()) cache_.resize(slot + 1, nullptr);
  if (cache_[slot] == nullptr) {
    auto* s = new Statement(db_, sql);
    if (!s->ok()) {
      fail(s->prepare_rc());
      delete s;
      return nullptr;
    }
    cache_[slot] = s;
  }
  return cache_[slot];
}

Errc Db::fail(int rc) {
  const char* msg = db_ != nullptr ? sqlite3_errmsg(db_) : nullptr;
  const char* what = sqlite3_errstr(rc);
  last_error_ = std::string(what != nullptr ? what : "sqlite error");
  if (msg != nullptr && std::strcmp(msg, what != nullptr ? what : "") != 0) {
    last_error_ += ": ";
    last_error_ += msg;
  }
  const Errc e = errc_from_sqlite(rc);
  last_errc_ = e == Errc{} ? Errc::closed : e;
  return last_errc_;
}

Errc Db::fail(Errc e, std::string message) {
  last_error_ = std::move(message);
  last_errc_ = e;
  return e;
}

Transaction::~Transaction() {
  if (open_) sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
}

Result<void> Transaction::begin_immediate() {
  auto* s = db_.statement(0, "BEGIN IMMEDIATE");
  if (s == nullptr) return db_.last_errc();
  const int rc = s->step();
  s->reset();
  if (rc != SQLITE_DONE) return db_.fail(rc);
  open_ = true;
  return {};
}

Result<void> Transaction::commit() {
  auto* s = db_.statement(1, "COMMIT");
  if (s == nullptr) return db_.last_errc();
  const int rc = s->step();
  s->reset();
  if (rc != SQLITE_DONE) return db_.fail(rc);  // the destructor rolls back
  open_ = false;
  return {};
}

}  // namespace herald::outbox_detail
