#pragma once

// What the outbox suites share: a temporary directory, raw SQLite access for the checks a test
// makes behind the Outbox's back, and child processes (this binary run in a child mode).

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <herald/outbox.hpp>

#include "child_process.hpp"

namespace herald::test {

/// A fresh directory under the system's temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "herald-outbox-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(std::string_view name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Runs SQL on its own connection (not the Outbox's): returns the first column of each row.
inline std::vector<std::string> raw_sql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::vector<std::string> rows;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    rows.push_back("<cannot open>");
    return rows;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  const char* tail = sql.c_str();
  while (tail != nullptr && *tail != '\0') {
    if (sqlite3_prepare_v2(db, tail, -1, &s, &tail) != SQLITE_OK) {
      rows.push_back(std::string("<error: ") + sqlite3_errmsg(db) + ">");
      break;
    }
    if (s == nullptr) break;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      rows.emplace_back(t != nullptr ? t : "NULL");
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return rows;
}

inline std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s)); }
inline std::string text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Writes a whole line to stdout with one write(2): the parent sees it only if it was written.
inline void report_line(const std::string& line) {
  const std::string l = line + "\n";
  (void)!::write(STDOUT_FILENO, l.data(), l.size());
}

/// The child modes of this binary (tests/outbox/main.cpp dispatches to them).
int crash_child(int argc, char** argv);
int claim_child(int argc, char** argv);

}  // namespace herald::test
