// A small RAII layer over the SQLite C API for the job store: a connection (opened in WAL mode with
// full fsync on commit), prepared statements with bind / step / column helpers, and a transaction
// guard that rolls back unless committed. Every failure throws Error naming the database file and
// SQLite's message. Not thread-safe by itself: the job store serialises its use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace shardlm::jobs {

class Statement;

class Database {
 public:
  // Opens (creating when missing) the database file; sets WAL journaling, synchronous=FULL,
  // foreign keys and a busy timeout.
  explicit Database(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const char* sql);  // one or more statements without parameters
  Statement prepare(std::string_view sql);
  int64_t changes() const;  // rows changed by the last statement
  const std::string& path() const { return path_; }
  [[noreturn]] void fail_sqlite(const char* what) const;

 private:
  friend class Statement;
  friend class Transaction;
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQL ("?1").
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind_null(int index);
  Statement& bind(int index, const std::optional<std::string>& text);
  // true while a row is available; false when done. Throws on errors (constraint violations too).
  bool step();
  void run();  // step() until done
  void reset();

  int64_t int64(int column) const;
  std::string text(int column) const;
  bool is_null(int column) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back when destroyed before commit().
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool open_ = true;
};

}  // namespace shardlm::jobs
