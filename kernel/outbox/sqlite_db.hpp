#pragma once

// A thin RAII layer over one SQLite connection: prepared statements cached by the connection,
// result codes mapped to herald's Errc, transactions that roll back unless committed.
// Not thread-safe: the Outbox serialises every use on its mutex.

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "herald/error.hpp"

namespace herald::outbox_detail {

/// The Errc for an SQLite result code (primary or extended).
Errc errc_from_sqlite(int rc) noexcept;

class Db;

/// One prepared statement, owned by its Db and reset after every use (Scope).
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const noexcept { return stmt_ != nullptr; }
  int prepare_rc() const noexcept { return prepare_rc_; }

  // Text and blobs are bound without a copy (SQLITE_STATIC): every caller's data outlives the
  // step, and Scope clears the bindings before the data can go away.
  void bind(int i, std::int64_t v) noexcept { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, std::string_view v) noexcept {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind(int i, std::span<const std::byte> v) noexcept {
    // A zero-length blob (never NULL: the column is NOT NULL).
    sqlite3_bind_blob(stmt_, i, v.empty() ? "" : static_cast<const void*>(v.data()),
                      static_cast<int>(v.size()), SQLITE_STATIC);
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() noexcept { return sqlite3_step(stmt_); }
  std::int64_t int64(int col) const noexcept { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const;
  std::vector<std::byte> blob(int col) const;
  bool is_null(int col) const noexcept { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  void reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int prepare_rc_ = SQLITE_OK;
};

/// Resets a statement when the scope ends, whatever happened.
class Scope {
 public:
  explicit Scope(Statement& s) noexcept : s_(s) {}
  ~Scope() { s_.reset(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  Statement* operator->() noexcept { return &s_; }
  Statement& operator*() noexcept { return s_; }

 private:
  Statement& s_;
};

/// One connection. Statements live as long as the connection.
class Db {
 public:
  Db() = default;
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  /// Opens read-write, creating the file (not its directory).
  Result<void> open(const std::string& path);
  sqlite3* raw() const noexcept { return db_; }

  /// Runs SQL that returns no rows (several statements allowed).
  Result<void> exec(std::string_view sql);
  /// The first column of the first row, as an integer (0 when there is no row).
  Result<std::int64_t> query_int(std::string_view sql);
  /// Prepares `sql` once; later calls with the same `slot` return the cached statement.
  Statement* statement(std::size_t slot, std::string_view sql);

  /// Records `rc` (and SQLite's message) as the last error and returns its Errc.
  Errc fail(int rc);
  Errc fail(Errc e, std::string message);
  const std::string& last_error() const noexcept { return last_error_; }
  /// The Errc of the last failure (a statement that would not prepare, ...).
  Errc last_errc() const noexcept { return last_errc_; }
  void clear_error() { last_error_.clear(); }

 private:
  sqlite3* db_ = nullptr;
  std::vector<Statement*> cache_;
  std::string last_error_;
  Errc last_errc_ = Errc::closed;
};

/// BEGIN [IMMEDIATE] ... COMMIT; rolls back in the destructor unless commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Db& db) noexcept : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Result<void> begin_immediate();
  Result<void> commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace herald::outbox_detail
