#include "coordinator/jobs/sqlite_db.h"

#include <sqlite3.h>

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace shardlm::jobs {

Database::Database(const std::string& path) : path_(path) {
  const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    fail("cannot open the job database {}: {}", path, message);
  }
  sqlite3_busy_timeout(db_, 5000);
  sqlite3_extended_result_codes(db_, 1);
  // WAL: readers do not block the writer; synchronous=FULL: a commit is on disk when it returns, so an
  // accepted job or a committed line survives a crash of the process and of the machine.
  Statement mode = prepare("PRAGMA journal_mode=WAL");
  if (!mode.step() || mode.text(0) != "wal") fail("the job database {}: cannot switch to WAL journaling", path);
  exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
}

Database::~Database() {
  if (db_ && sqlite3_close(db_) != SQLITE_OK) spdlog::warn("closing the job database {}: {}", path_, sqlite3_errmsg(db_));
}

void Database::fail_sqlite(const char* what) const { fail("job database {}: {}: {}", path_, what, sqlite3_errmsg(db_)); }

void Database::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    fail("job database {}: {}: {}", path_, sql, text);
  }
}

Statement Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) != SQLITE_OK) {
    fail("job database {}: cannot prepare '{}': {}", path_, sql, sqlite3_errmsg(db_));
  }
  return Statement(*this, stmt);
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_->fail_sqlite("bind");
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK) {
    db_->fail_sqlite("bind");
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) db_->fail_sqlite("bind");
  return *this;
}

Statement& Statement::bind(int index, const std::optional<std::string>& text) {
  return text ? bind(index, std::string_view(*text)) : bind_null(index);
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string message = sqlite3_errmsg(db_->db_);
  sqlite3_reset(stmt_);
  fail("job database {}: {}: {}", db_->path_, sqlite3_sql(stmt_), message);
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::text(int column) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  // A COMMIT that failed (e.g. SQLITE_FULL) may have rolled the transaction back already.
  if (!open_ || sqlite3_get_autocommit(db_.db_) != 0) return;
  char* message = nullptr;
  if (sqlite3_exec(db_.db_, "ROLLBACK", nullptr, nullptr, &message) != SQLITE_OK) {
    spdlog::error("job database {}: rollback failed: {}", db_.path(), message ? message : "unknown error");
  }
  sqlite3_free(message);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace shardlm::jobs
