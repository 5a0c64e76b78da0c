// A thin RAII layer over the sqlite3 C API for the job store: one connection,
// prepared statements cached by their SQL text, and errors as absl::Status.
// Internal to the coordinator (server/); JobStore is the public face.
#ifndef DFV_SERVER_SQLITE_H_
#define DFV_SERVER_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv::server::sqlite {

// `what` failed with sqlite result `code`: the most specific absl code
// (BUSY -> UNAVAILABLE, FULL -> RESOURCE_EXHAUSTED, CORRUPT/NOTADB ->
// DATA_LOSS, CONSTRAINT -> ALREADY_EXISTS, others INTERNAL), with sqlite's
// message.
absl::Status ErrorStatus(sqlite3* db, int code, const std::string& what);

class Connection;

// A prepared statement, usually borrowed from a Connection's cache. The scope
// resets the statement and clears its bindings when it ends, so the next
// user starts clean. Not thread-safe (neither is the Connection).
class Statement {
 public:
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Bind by 1-based index. Values are copied (SQLITE_TRANSIENT).
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, const std::string& text);
  Statement& BindBlob(int index, const std::string& bytes);

  // Advances one row: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps until done, for statements without results.
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  friend class Connection;
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool owned) : db_(db), stmt_(stmt), owned_(owned) {}

  sqlite3* db_;
  sqlite3_stmt* stmt_;   // owned by the Connection's cache unless owned_
  bool owned_;
  int bind_error_ = SQLITE_OK;  // first failed bind, reported by Step
};

// One sqlite3 connection. Not thread-safe: the owner serialises use.
class Connection {
 public:
  // Opens (creating when `create`) the database at `path`.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool create);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without results (schema, pragmas, BEGIN).
  absl::Status Exec(const std::string& sql);

  // The cached prepared statement for `sql` (prepared on first use). The
  // returned scope must end before `sql` is prepared again.
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(const std::string& sql);

  // A statement used once (SQL that varies, such as an IN list of varying
  // length); finalized when the returned scope ends.
  absl::StatusOr<std::unique_ptr<Statement>> PrepareOnce(const std::string& sql);

  // A single integer from `sql` (e.g. "PRAGMA user_version").
  absl::StatusOr<int64_t> QueryInt(const std::string& sql);
  // A single text value from `sql` (e.g. "PRAGMA journal_mode=WAL").
  absl::StatusOr<std::string> QueryText(const std::string& sql);

  sqlite3* handle() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace dfv::server::sqlite

#endif  // DFV_SERVER_SQLITE_H_
