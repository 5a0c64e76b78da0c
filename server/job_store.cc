#include "server/job_store.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "server/sqlite.h"

namespace dfv::server {
namespace {

using sqlite::Connection;
using sqlite::Statement;

// Version 1 of the schema. Enums are stored by name so the database reads
// well in the sqlite3 shell and survives renumbering.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  num INTEGER NOT NULL UNIQUE,            -- submit order; the id's number
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  spec_yaml TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_restarts INTEGER NOT NULL,
  restarts INTEGER NOT NULL DEFAULT 0,
  world_size INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  progress_step INTEGER NOT NULL DEFAULT 0,
  progress_total_steps INTEGER NOT NULL DEFAULT 0,
  progress_epoch INTEGER NOT NULL DEFAULT 0,
  progress_samples_per_second REAL NOT NULL DEFAULT 0,
  progress_eta_seconds REAL NOT NULL DEFAULT 0,
  workers TEXT NOT NULL DEFAULT '',       -- worker names by rank, comma-separated
  last_seq INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_state ON jobs(state, num);
CREATE TABLE attempts (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  attempt INTEGER NOT NULL,
  workers TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL DEFAULT 'RUNNING',
  reason TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  seq INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  payload BLOB NOT NULL,                  -- a serialized dfv.v1.JobEvent
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE artifacts (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  step INTEGER NOT NULL,
  size INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

// Version 2: the rendezvous address rank 0 of a multi-rank attempt published
// ('' until then, and for one-rank attempts).
constexpr char kMigrateV1ToV2[] = R"sql(
ALTER TABLE attempts ADD COLUMN rendezvous TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 2;
)sql";

// Version 3: what an evaluation job evaluates (dfv.v1.Evaluates; '' and 0
// for every other job). Written once, when the job is inserted.
constexpr char kMigrateV2ToV3[] = R"sql(
ALTER TABLE jobs ADD COLUMN evaluates_job TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN evaluates_checkpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN evaluates_step INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 3;
)sql";

// Per rank of an attempt, what a restarted coordinator needs to adopt it:
// the last ReportEvents batch applied (see ReportEventsRequest.batch) and
// whether the rank completed. Added without a schema version bump: created
// when missing, and a coordinator that predates it never reads it.
constexpr char kAttemptRanksTable[] = R"sql(
CREATE TABLE IF NOT EXISTS attempt_ranks (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  attempt INTEGER NOT NULL,
  rank INTEGER NOT NULL,
  last_batch INTEGER NOT NULL DEFAULT 0,
  completed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, attempt, rank)
) WITHOUT ROWID;
)sql";

constexpr char kJobColumns[] =
    "id, num, name, model, state, priority, spec_yaml, created_ms, updated_ms, attempt, "
    "max_restarts, restarts, world_size, reason, progress_step, progress_total_steps, "
    "progress_epoch, progress_samples_per_second, progress_eta_seconds, workers, last_seq, "
    "cancel_requested, evaluates_job, evaluates_checkpoint, evaluates_step";

std::string JoinNames(const google::protobuf::RepeatedPtrField<std::string>& names) {
  return absl::StrJoin(names, ",");
}

std::vector<std::string> SplitNames(const std::string& text) {
  if (text.empty()) return {};
  return absl::StrSplit(text, ',');
}

absl::StatusOr<JobRecord> ReadJobRow(const Statement& row) {
  JobRecord record;
  dfv::v1::Job& job = record.job;
  job.set_id(row.ColumnText(0));
  record.submit_order = row.ColumnInt(1);
  job.set_name(row.ColumnText(2));
  job.set_model(row.ColumnText(3));
  dfv::v1::JobState state;
  std::string state_name = row.ColumnText(4);
  if (!dfv::v1::JobState_Parse(state_name, &state)) {
    return absl::DataLossError(
        absl::StrCat("job ", job.id(), " has an unknown state '", state_name, "' in the database"));
  }
  job.set_state(state);
  job.set_priority(static_cast<int32_t>(row.ColumnInt(5)));
  job.set_spec_yaml(row.ColumnText(6));
  job.set_created_ms(row.ColumnInt(7));
  job.set_updated_ms(row.ColumnInt(8));
  job.set_attempt(static_cast<int32_t>(row.ColumnInt(9)));
  job.set_max_restarts(static_cast<int32_t>(row.ColumnInt(10)));
  record.restarts = static_cast<int32_t>(row.ColumnInt(11));
  job.set_world_size(static_cast<int32_t>(row.ColumnInt(12)));
  job.set_reason(row.ColumnText(13));
  dfv::v1::Progress* progress = job.mutable_progress();
  progress->set_step(row.ColumnInt(14));
  progress->set_total_steps(row.ColumnInt(15));
  progress->set_epoch(row.ColumnInt(16));
  progress->set_samples_per_second(row.ColumnDouble(17));
  progress->set_eta_seconds(row.ColumnDouble(18));
  for (std::string& name : SplitNames(row.ColumnText(19))) job.add_workers(std::move(name));
  job.set_last_seq(row.ColumnInt(20));
  record.cancel_requested = row.ColumnInt(21) != 0;
  if (std::string evaluated = row.ColumnText(22); !evaluated.empty()) {
    dfv::v1::Evaluates* evaluates = job.mutable_evaluates();
    evaluates->set_job_id(std::move(evaluated));
    evaluates->set_checkpoint(row.ColumnText(23));
    evaluates->set_step(row.ColumnInt(24));
  }
  return record;
}

absl::StatusOr<JobRecord> GetJobOn(Connection& db, const std::string& job_id) {
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?")));
  stmt->Bind(1, job_id);
  DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return ReadJobRow(*stmt);
}

absl::StatusOr<AttemptOutcome> ParseOutcome(const std::string& name) {
  for (AttemptOutcome outcome :
       {AttemptOutcome::kRunning, AttemptOutcome::kSucceeded, AttemptOutcome::kFailed,
        AttemptOutcome::kCancelled, AttemptOutcome::kInterrupted}) {
    if (name == AttemptOutcomeName(outcome)) return outcome;
  }
  return absl::DataLossError(absl::StrCat("unknown attempt outcome '", name, "' in the database"));
}

absl::StatusOr<dfv::v1::ArtifactInfo> ReadArtifactRow(const Statement& row) {
  dfv::v1::ArtifactInfo info;
  info.set_name(row.ColumnText(0));
  dfv::v1::ArtifactKind kind;
  std::string kind_name = row.ColumnText(1);
  if (!dfv::v1::ArtifactKind_Parse(kind_name, &kind)) {
    return absl::DataLossError(absl::StrCat("artifact ", info.name(), " has an unknown kind '",
                                            kind_name, "' in the database"));
  }
  info.set_kind(kind);
  info.set_step(row.ColumnInt(2));
  info.set_size(row.ColumnInt(3));
  info.set_checksum(row.ColumnText(4));
  info.set_attempt(static_cast<int32_t>(row.ColumnInt(5)));
  info.set_created_ms(row.ColumnInt(6));
  return info;
}

constexpr char kArtifactColumns[] = "name, kind, step, size, checksum, attempt, created_ms";

absl::StatusOr<dfv::v1::ArtifactInfo> GetArtifactOn(Connection& db, const std::string& job_id,
                                                    const std::string& name) {
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       db.Prepare(absl::StrCat("SELECT ", kArtifactColumns,
                                               " FROM artifacts WHERE job_id = ? AND name = ?")));
  stmt->Bind(1, job_id).Bind(2, name);
  DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no artifact '", name, "'"));
  }
  return ReadArtifactRow(*stmt);
}

absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> ListArtifactsOn(Connection& db,
                                                                   const std::string& job_id) {
  DFV_ASSIGN_OR_RETURN(auto stmt, db.Prepare(absl::StrCat(
                                      "SELECT ", kArtifactColumns,
                                      " FROM artifacts WHERE job_id = ? ORDER BY created_ms, name")));
  stmt->Bind(1, job_id);
  std::vector<dfv::v1::ArtifactInfo> artifacts;
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    DFV_ASSIGN_OR_RETURN(dfv::v1::ArtifactInfo info, ReadArtifactRow(*stmt));
    artifacts.push_back(std::move(info));
  }
  return artifacts;
}

absl::Status CreateOrCheckSchema(Connection& db, const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot switch to WAL journaling (got '", mode, "')"));
  }
  DFV_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  DFV_ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  if (version == JobStore::kSchemaVersion) return absl::OkStatus();
  if (version > JobStore::kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": database schema version ", version, " is newer than this coordinator's (",
        JobStore::kSchemaVersion, "); use a newer dfv-coordinator"));
  }
  // Version 0 is a new database: every step runs. Each step and its version
  // bump commit together, so a crash never leaves half a schema behind.
  struct Step {
    int64_t to_version;
    const char* sql;
  };
  for (const Step& step : {Step{1, kSchemaV1}, Step{2, kMigrateV1ToV2}, Step{3, kMigrateV2ToV3}}) {
    if (version >= step.to_version) continue;
    DFV_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status status = db.Exec(step.sql);
    if (status.ok()) status = db.Exec("COMMIT");
    if (!status.ok()) {
      db.Exec("ROLLBACK").IgnoreError();  // the error above is the one to report
      return absl::Status(status.code(), absl::StrCat(path, ": upgrading the schema to version ",
                                                      step.to_version, ": ", status.message()));
    }
    version = step.to_version;
  }
  return absl::OkStatus();
}

}  // namespace

const char* AttemptOutcomeName(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::kRunning: return "RUNNING";
    case AttemptOutcome::kSucceeded: return "SUCCEEDED";
    case AttemptOutcome::kFailed: return "FAILED";
    case AttemptOutcome::kCancelled: return "CANCELLED";
    case AttemptOutcome::kInterrupted: return "INTERRUPTED";
  }
  return "RUNNING";
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Create(const std::string& path,
                                                           CommitObserver on_commit) {
  DFV_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, Connection::Open(path, /*create=*/true));
  // Waiting a little for a lock beats failing: a second process (the sqlite3
  // shell, a backup) may briefly hold one.
  DFV_RETURN_IF_ERROR(writer->Exec("PRAGMA busy_timeout=5000"));
  DFV_RETURN_IF_ERROR(CreateOrCheckSchema(*writer, path));
  DFV_RETURN_IF_ERROR(writer->Exec(kAttemptRanksTable));
  DFV_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader, Connection::Open(path, /*create=*/false));
  DFV_RETURN_IF_ERROR(reader->Exec("PRAGMA busy_timeout=5000; PRAGMA query_only=1;"));
  return std::unique_ptr<JobStore>(
      new JobStore(std::move(writer), std::move(reader), std::move(on_commit)));
}

JobStore::JobStore(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader,
                   CommitObserver on_commit)
    : on_commit_(std::move(on_commit)), writer_(std::move(writer)), reader_(std::move(reader)) {}

JobStore::~JobStore() = default;

absl::Status JobStore::RunInTransaction(absl::FunctionRef<absl::Status(Tx&)> body) {
  absl::MutexLock lock(&write_mu_);
  // Timed here, where every write transaction runs, rather than around the
  // callers' commits: the figure is the transaction alone (not the caller's
  // work before it or waiting for this lock) and no writer is missed.
  const auto begin = std::chrono::steady_clock::now();
  DFV_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  Tx tx(writer_.get());
  absl::Status status = body(tx);
  if (status.ok()) status = writer_->Exec("COMMIT");
  if (!status.ok()) {
    // After a failed COMMIT sqlite may already have rolled back; a second
    // error here adds nothing to the first.
    writer_->Exec("ROLLBACK").IgnoreError();
  } else if (on_commit_) {
    on_commit_(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  }
  return status;
}

// ---------------------------------------------------------------------------
// Tx

absl::Status JobStore::Tx::InsertJob(JobRecord* record) {
  DFV_ASSIGN_OR_RETURN(int64_t num, db_->QueryInt("SELECT COALESCE(MAX(num), 0) + 1 FROM jobs"));
  std::string id = absl::StrFormat("j-%06d", num);
  const dfv::v1::Job& job = record->job;
  DFV_ASSIGN_OR_RETURN(
      auto stmt,
      db_->Prepare("INSERT INTO jobs (id, num, name, model, state, priority, spec_yaml, created_ms, "
                   "updated_ms, attempt, max_restarts, restarts, world_size, reason, workers, "
                   "cancel_requested, evaluates_job, evaluates_checkpoint, evaluates_step) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  stmt->Bind(1, id)
      .Bind(2, num)
      .Bind(3, job.name())
      .Bind(4, job.model())
      .Bind(5, dfv::v1::JobState_Name(job.state()))
      .Bind(6, job.priority())
      .Bind(7, job.spec_yaml())
      .Bind(8, job.created_ms())
      .Bind(9, job.updated_ms())
      .Bind(10, job.attempt())
      .Bind(11, job.max_restarts())
      .Bind(12, record->restarts)
      .Bind(13, job.world_size())
      .Bind(14, job.reason())
      .Bind(15, JoinNames(job.workers()))
      .Bind(16, record->cancel_requested ? 1 : 0)
      .Bind(17, job.evaluates().job_id())
      .Bind(18, job.evaluates().checkpoint())
      .Bind(19, job.evaluates().step());
  DFV_RETURN_IF_ERROR(stmt->Run());
  record->job.set_id(id);
  record->job.set_last_seq(0);
  record->submit_order = num;
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> JobStore::Tx::GetJob(const std::string& job_id) {
  return GetJobOn(*db_, job_id);
}

absl::Status JobStore::Tx::UpdateJob(const JobRecord& record) {
  const dfv::v1::Job& job = record.job;
  DFV_ASSIGN_OR_RETURN(
      auto stmt,
      db_->Prepare("UPDATE jobs SET name = ?, model = ?, state = ?, priority = ?, spec_yaml = ?, "
                   "updated_ms = ?, attempt = ?, max_restarts = ?, restarts = ?, world_size = ?, "
                   "reason = ?, progress_step = ?, progress_total_steps = ?, progress_epoch = ?, "
                   "progress_samples_per_second = ?, progress_eta_seconds = ?, workers = ?, "
                   "cancel_requested = ? WHERE id = ?"));
  stmt->Bind(1, job.name())
      .Bind(2, job.model())
      .Bind(3, dfv::v1::JobState_Name(job.state()))
      .Bind(4, job.priority())
      .Bind(5, job.spec_yaml())
      .Bind(6, job.updated_ms())
      .Bind(7, job.attempt())
      .Bind(8, job.max_restarts())
      .Bind(9, record.restarts)
      .Bind(10, job.world_size())
      .Bind(11, job.reason())
      .Bind(12, job.progress().step())
      .Bind(13, job.progress().total_steps())
      .Bind(14, job.progress().epoch())
      .Bind(15, job.progress().samples_per_second())
      .Bind(16, job.progress().eta_seconds())
      .Bind(17, JoinNames(job.workers()))
      .Bind(18, record.cancel_requested ? 1 : 0)
      .Bind(19, job.id());
  DFV_RETURN_IF_ERROR(stmt->Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("job ", job.id(), " not found"));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Tx::InsertAttempt(const AttemptRecord& attempt) {
  DFV_ASSIGN_OR_RETURN(
      auto stmt,
      db_->Prepare("INSERT INTO attempts (job_id, attempt, workers, started_ms, ended_ms, outcome, "
                   "reason, rendezvous) VALUES (?,?,?,?,?,?,?,?)"));
  stmt->Bind(1, attempt.job_id)
      .Bind(2, attempt.attempt)
      .Bind(3, absl::StrJoin(attempt.workers, ","))
      .Bind(4, attempt.started_ms)
      .Bind(5, attempt.ended_ms)
      .Bind(6, std::string(AttemptOutcomeName(attempt.outcome)))
      .Bind(7, attempt.reason)
      .Bind(8, attempt.rendezvous);
  return stmt->Run();
}

absl::Status JobStore::Tx::SetAttemptRendezvous(const std::string& job_id, int32_t attempt,
                                                const std::string& address) {
  DFV_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("UPDATE attempts SET rendezvous = ? "
                                               "WHERE job_id = ? AND attempt = ?"));
  stmt->Bind(1, address).Bind(2, job_id).Bind(3, attempt);
  DFV_RETURN_IF_ERROR(stmt->Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("attempt ", attempt, " of job ", job_id, " not found"));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Tx::SetLastReportBatch(const std::string& job_id, int32_t attempt,
                                              int32_t rank, int64_t batch) {
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       db_->Prepare("INSERT INTO attempt_ranks (job_id, attempt, rank, last_batch) "
                                    "VALUES (?, ?, ?, ?) ON CONFLICT (job_id, attempt, rank) "
                                    "DO UPDATE SET last_batch = excluded.last_batch"));
  stmt->Bind(1, job_id).Bind(2, attempt).Bind(3, rank).Bind(4, batch);
  return stmt->Run();
}

absl::Status JobStore::Tx::SetRankCompleted(const std::string& job_id, int32_t attempt,
                                            int32_t rank) {
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       db_->Prepare("INSERT INTO attempt_ranks (job_id, attempt, rank, completed) "
                                    "VALUES (?, ?, ?, 1) ON CONFLICT (job_id, attempt, rank) "
                                    "DO UPDATE SET completed = 1"));
  stmt->Bind(1, job_id).Bind(2, attempt).Bind(3, rank);
  return stmt->Run();
}

absl::Status JobStore::Tx::EndAttempt(const std::string& job_id, int32_t attempt, int64_t ended_ms,
                                      AttemptOutcome outcome, const std::string& reason) {
  DFV_ASSIGN_OR_RETURN(
      auto stmt, db_->Prepare("UPDATE attempts SET ended_ms = ?, outcome = ?, reason = ? "
                              "WHERE job_id = ? AND attempt = ?"));
  stmt->Bind(1, ended_ms)
      .Bind(2, std::string(AttemptOutcomeName(outcome)))
      .Bind(3, reason)
      .Bind(4, job_id)
      .Bind(5, attempt);
  DFV_RETURN_IF_ERROR(stmt->Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("attempt ", attempt, " of job ", job_id, " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> JobStore::Tx::LastSeq(const std::string& job_id) {
  DFV_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("SELECT last_seq FROM jobs WHERE id = ?"));
  stmt->Bind(1, job_id);
  DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return stmt->ColumnInt(0);
}

absl::Status JobStore::Tx::InsertEvent(const dfv::v1::JobEvent& event) {
  std::string payload;
  if (!event.SerializeToString(&payload)) {
    return absl::InternalError(absl::StrCat("cannot serialize event ", event.seq(), " of job ",
                                            event.job_id()));
  }
  {
    DFV_ASSIGN_OR_RETURN(
        auto stmt,
        db_->Prepare("INSERT INTO events (job_id, seq, time_ms, payload) VALUES (?,?,?,?)"));
    stmt->Bind(1, event.job_id()).Bind(2, event.seq()).Bind(3, event.time_ms()).BindBlob(4, payload);
    DFV_RETURN_IF_ERROR(stmt->Run());
  }
  DFV_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("UPDATE jobs SET last_seq = ? WHERE id = ?"));
  stmt->Bind(1, event.seq()).Bind(2, event.job_id());
  DFV_RETURN_IF_ERROR(stmt->Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("job ", event.job_id(), " not found"));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Tx::PutArtifact(const std::string& job_id,
                                       const dfv::v1::ArtifactInfo& info) {
  DFV_ASSIGN_OR_RETURN(
      auto stmt,
      db_->Prepare("INSERT OR REPLACE INTO artifacts (job_id, name, kind, step, size, checksum, "
                   "attempt, created_ms) VALUES (?,?,?,?,?,?,?,?)"));
  stmt->Bind(1, job_id)
      .Bind(2, info.name())
      .Bind(3, dfv::v1::ArtifactKind_Name(info.kind()))
      .Bind(4, info.step())
      .Bind(5, info.size())
      .Bind(6, info.checksum())
      .Bind(7, info.attempt())
      .Bind(8, info.created_ms());
  return stmt->Run();
}

absl::StatusOr<dfv::v1::ArtifactInfo> JobStore::Tx::GetArtifact(const std::string& job_id,
                                                                const std::string& name) {
  return GetArtifactOn(*db_, job_id, name);
}

absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> JobStore::Tx::ListArtifacts(
    const std::string& job_id) {
  return ListArtifactsOn(*db_, job_id);
}

absl::Status JobStore::Tx::DeleteArtifact(const std::string& job_id, const std::string& name) {
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       db_->Prepare("DELETE FROM artifacts WHERE job_id = ? AND name = ?"));
  stmt->Bind(1, job_id).Bind(2, name);
  DFV_RETURN_IF_ERROR(stmt->Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no artifact '", name, "'"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Reads

absl::StatusOr<JobRecord> JobStore::GetJob(const std::string& job_id) const {
  absl::MutexLock lock(&read_mu_);
  return GetJobOn(*reader_, job_id);
}

absl::StatusOr<std::vector<JobRecord>> JobStore::ListJobs(
    const std::vector<dfv::v1::JobState>& states, int limit) const {
  // The state filter varies in length, so this statement is not cached.
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs");
  if (!states.empty()) {
    std::vector<std::string> marks(states.size(), "?");
    absl::StrAppend(&sql, " WHERE state IN (", absl::StrJoin(marks, ","), ")");
  }
  absl::StrAppend(&sql, " ORDER BY num DESC");
  if (limit > 0) absl::StrAppend(&sql, " LIMIT ", limit);

  absl::MutexLock lock(&read_mu_);
  DFV_ASSIGN_OR_RETURN(auto stmt, reader_->PrepareOnce(sql));
  for (size_t i = 0; i < states.size(); ++i) {
    stmt->Bind(static_cast<int>(i + 1), dfv::v1::JobState_Name(states[i]));
  }
  std::vector<JobRecord> jobs;
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    DFV_ASSIGN_OR_RETURN(JobRecord record, ReadJobRow(*stmt));
    jobs.push_back(std::move(record));
  }
  return jobs;
}

absl::StatusOr<std::vector<dfv::v1::JobEvent>> JobStore::ReadEvents(const std::string& job_id,
                                                                    int64_t after_seq,
                                                                    int limit) const {
  absl::MutexLock lock(&read_mu_);
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       reader_->Prepare("SELECT seq, payload FROM events WHERE job_id = ? AND "
                                        "seq > ? ORDER BY seq LIMIT ?"));
  stmt->Bind(1, job_id).Bind(2, after_seq).Bind(3, limit > 0 ? int64_t{limit} : int64_t{-1});
  std::vector<dfv::v1::JobEvent> events;
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    dfv::v1::JobEvent event;
    if (!event.ParseFromString(stmt->ColumnBlob(1))) {
      return absl::DataLossError(absl::StrCat("event ", stmt->ColumnInt(0), " of job ", job_id,
                                              " is corrupt in the database"));
    }
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<std::vector<AttemptRecord>> JobStore::ListAttempts(const std::string& job_id) const {
  absl::MutexLock lock(&read_mu_);
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       reader_->Prepare("SELECT attempt, workers, started_ms, ended_ms, outcome, "
                                        "reason, rendezvous FROM attempts WHERE job_id = ? "
                                        "ORDER BY attempt"));
  stmt->Bind(1, job_id);
  std::vector<AttemptRecord> attempts;
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    AttemptRecord attempt;
    attempt.job_id = job_id;
    attempt.attempt = static_cast<int32_t>(stmt->ColumnInt(0));
    attempt.workers = SplitNames(stmt->ColumnText(1));
    attempt.started_ms = stmt->ColumnInt(2);
    attempt.ended_ms = stmt->ColumnInt(3);
    DFV_ASSIGN_OR_RETURN(attempt.outcome, ParseOutcome(stmt->ColumnText(4)));
    attempt.reason = stmt->ColumnText(5);
    attempt.rendezvous = stmt->ColumnText(6);
    attempts.push_back(std::move(attempt));
  }
  return attempts;
}

absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> JobStore::ListArtifacts(
    const std::string& job_id) const {
  absl::MutexLock lock(&read_mu_);
  return ListArtifactsOn(*reader_, job_id);
}

absl::StatusOr<dfv::v1::ArtifactInfo> JobStore::GetArtifact(const std::string& job_id,
                                                            const std::string& name) const {
  absl::MutexLock lock(&read_mu_);
  return GetArtifactOn(*reader_, job_id, name);
}

absl::StatusOr<std::vector<AttemptRankRecord>> JobStore::ListAttemptRanks(
    const std::string& job_id, int32_t attempt) const {
  absl::MutexLock lock(&read_mu_);
  DFV_ASSIGN_OR_RETURN(auto stmt, reader_->Prepare("SELECT rank, last_batch, completed FROM "
                                                   "attempt_ranks WHERE job_id = ? AND attempt = ? "
                                                   "ORDER BY rank"));
  stmt->Bind(1, job_id).Bind(2, attempt);
  std::vector<AttemptRankRecord> ranks;
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    AttemptRankRecord rank;
    rank.rank = static_cast<int32_t>(stmt->ColumnInt(0));
    rank.last_batch = stmt->ColumnInt(1);
    rank.completed = stmt->ColumnInt(2) != 0;
    ranks.push_back(rank);
  }
  return ranks;
}

absl::StatusOr<std::array<int64_t, dfv::v1::JobState_ARRAYSIZE>> JobStore::CountJobsByState()
    const {
  absl::MutexLock lock(&read_mu_);
  DFV_ASSIGN_OR_RETURN(auto stmt,
                       reader_->Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  std::array<int64_t, dfv::v1::JobState_ARRAYSIZE> counts{};
  while (true) {
    DFV_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    dfv::v1::JobState state;
    const std::string name = stmt->ColumnText(0);
    if (!dfv::v1::JobState_Parse(name, &state)) {
      return absl::DataLossError(
          absl::StrCat("a job has an unknown state '", name, "' in the database"));
    }
    counts[state] = stmt->ColumnInt(1);
  }
  return counts;
}

absl::StatusOr<int64_t> JobStore::ArtifactBytes() const {
  absl::MutexLock lock(&read_mu_);
  return reader_->QueryInt("SELECT COALESCE(SUM(size), 0) FROM artifacts");
}

}  // namespace dfv::server
