// The coordinator's durable state: jobs, attempts, events and the artifact
// index in one SQLite database (<data-dir>/dfv.db, WAL mode).
//
// Writes go through RunInTransaction, so rows that change together (a job's
// state, its new attempt and the event announcing it) commit together or not
// at all. Reads outside a transaction use a second connection and see the
// newest committed state; with WAL they do not wait for a writer's
// transaction.
//
// Thread-safety: every public method is thread-safe. Writers are serialised
// (one write transaction at a time); reads are serialised among themselves.
#ifndef DFV_SERVER_JOB_STORE_H_
#define DFV_SERVER_JOB_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/dfv.pb.h"

namespace dfv::server {

namespace sqlite {
class Connection;
}

// A job row. `job` carries every field of the wire form; the rest is
// coordinator bookkeeping that clients never see.
struct JobRecord {
  dfv::v1::Job job;
  // Submit order (the number in the id); set by InsertJob.
  int64_t submit_order = 0;
  // Restarts used after lost workers (counted against job.max_restarts).
  int32_t restarts = 0;
  // CancelJob arrived while the job was placed; the ranks are being stopped.
  bool cancel_requested = false;
};

// How an attempt ended (the attempts table's outcome column).
enum class AttemptOutcome {
  kRunning,      // not ended yet
  kSucceeded,
  kFailed,
  kCancelled,
  kInterrupted,  // a worker was lost or the coordinator restarted
};
const char* AttemptOutcomeName(AttemptOutcome outcome);

struct AttemptRecord {
  std::string job_id;
  int32_t attempt = 0;
  std::vector<std::string> workers;  // worker names by rank
  int64_t started_ms = 0;
  int64_t ended_ms = 0;              // 0 while running
  AttemptOutcome outcome = AttemptOutcome::kRunning;
  std::string reason;
  // Multi-rank attempts: the HOST:PORT rank 0 published (PublishRendezvous);
  // empty until then and for one-rank attempts.
  std::string rendezvous;
};

// What a restarted coordinator needs of one rank of a live attempt.
struct AttemptRankRecord {
  int32_t rank = 0;
  int64_t last_batch = 0;   // the last ReportEvents batch applied (0: none)
  bool completed = false;   // CompleteAssignment arrived
};

class JobStore {
 public:
  // The current schema version (PRAGMA user_version). A database written by
  // a newer coordinator is refused rather than misread; an older one is
  // upgraded in place (version 2 added attempts.rendezvous, version 3 the
  // jobs' evaluates_* columns).
  static constexpr int kSchemaVersion = 3;

  // Told how long each committed write transaction took, from BEGIN to the
  // end of COMMIT (seconds, a monotonic clock), on the committing thread
  // while the store's write lock is held: it must be quick and must not
  // call the store.
  using CommitObserver = std::function<void(double seconds)>;

  // Opens or creates the database at `path` (its folder must exist).
  // FAILED_PRECONDITION for a database of a newer schema version, DATA_LOSS
  // for a file that is not a database. `on_commit` may be null.
  static absl::StatusOr<std::unique_ptr<JobStore>> Create(const std::string& path,
                                                          CommitObserver on_commit = nullptr);
  ~JobStore();

  // The write side, valid only inside RunInTransaction's body and only on
  // the thread running it.
  class Tx {
   public:
    // Inserts a new job and assigns its id ("j-000001", increasing, never
    // reused) and submit_order into `record`. record->job.last_seq is
    // ignored (a new job has no events). job.evaluates is stored here
    // only; UpdateJob leaves it as it is.
    absl::Status InsertJob(JobRecord* record);
    // NOT_FOUND when there is no such job.
    absl::StatusOr<JobRecord> GetJob(const std::string& job_id);
    // Rewrites every mutable column of the job (not id, created_ms or
    // last_seq, which the event log owns). NOT_FOUND when missing.
    absl::Status UpdateJob(const JobRecord& record);

    absl::Status InsertAttempt(const AttemptRecord& attempt);
    // Records the rendezvous rank 0 published. NOT_FOUND when missing.
    absl::Status SetAttemptRendezvous(const std::string& job_id, int32_t attempt,
                                      const std::string& address);
    // Sets ended_ms, outcome and reason. NOT_FOUND when missing.
    absl::Status EndAttempt(const std::string& job_id, int32_t attempt, int64_t ended_ms,
                            AttemptOutcome outcome, const std::string& reason);

    // Records `batch` as the last ReportEvents batch applied for that rank
    // of that attempt (ReportEventsRequest.batch).
    absl::Status SetLastReportBatch(const std::string& job_id, int32_t attempt, int32_t rank,
                                    int64_t batch);
    // Records that the rank of that attempt completed (while others run).
    absl::Status SetRankCompleted(const std::string& job_id, int32_t attempt, int32_t rank);

    // The job's newest event seq (0 before the first). NOT_FOUND for no job.
    absl::StatusOr<int64_t> LastSeq(const std::string& job_id);
    // Stores a complete event (job_id, seq, time set) and moves the job's
    // last_seq to event.seq. ALREADY_EXISTS when the seq is taken.
    absl::Status InsertEvent(const dfv::v1::JobEvent& event);

    // Inserts or replaces the index row of artifact info.name of the job.
    absl::Status PutArtifact(const std::string& job_id, const dfv::v1::ArtifactInfo& info);
    // NOT_FOUND when the job has no artifact of that name.
    absl::StatusOr<dfv::v1::ArtifactInfo> GetArtifact(const std::string& job_id,
                                                      const std::string& name);
    // The job's artifacts as ListArtifacts orders them, this transaction's
    // changes included.
    absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> ListArtifacts(const std::string& job_id);
    // Removes the index row of the job's artifact `name` (the file is the
    // ArtifactStore's to remove once this commits). NOT_FOUND when missing.
    absl::Status DeleteArtifact(const std::string& job_id, const std::string& name);

   private:
    friend class JobStore;
    explicit Tx(sqlite::Connection* db) : db_(db) {}
    sqlite::Connection* db_;
  };

  // Runs `body` in one write transaction (BEGIN IMMEDIATE): committed when
  // it returns OK, rolled back otherwise (its error is returned). Not
  // reentrant: `body` must not call RunInTransaction.
  absl::Status RunInTransaction(absl::FunctionRef<absl::Status(Tx&)> body)
      ABSL_LOCKS_EXCLUDED(write_mu_);

  // Committed reads.
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) const;
  // Jobs whose state is in `states` (all when empty), newest first; at most
  // `limit` (all when 0).
  absl::StatusOr<std::vector<JobRecord>> ListJobs(const std::vector<dfv::v1::JobState>& states,
                                                  int limit) const;
  // Events with seq > after_seq in seq order, at most `limit` (all when 0).
  absl::StatusOr<std::vector<dfv::v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                            int64_t after_seq, int limit) const;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& job_id) const;
  // What was recorded of the ranks of that attempt (SetLastReportBatch,
  // SetRankCompleted), by rank; ranks with nothing recorded are absent.
  absl::StatusOr<std::vector<AttemptRankRecord>> ListAttemptRanks(const std::string& job_id,
                                                                  int32_t attempt) const;
  // Artifacts of the job by creation time, then name.
  absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> ListArtifacts(const std::string& job_id) const;
  // NOT_FOUND when the job has no artifact of that name.
  absl::StatusOr<dfv::v1::ArtifactInfo> GetArtifact(const std::string& job_id,
                                                    const std::string& name) const;

  // Aggregates (one scan each; the coordinator reads them once at start and
  // keeps them current itself). Jobs by state, indexed by dfv::v1::JobState.
  absl::StatusOr<std::array<int64_t, dfv::v1::JobState_ARRAYSIZE>> CountJobsByState() const;
  // The bytes of every indexed artifact.
  absl::StatusOr<int64_t> ArtifactBytes() const;

 private:
  JobStore(std::unique_ptr<sqlite::Connection> writer, std::unique_ptr<sqlite::Connection> reader,
           CommitObserver on_commit);

  const CommitObserver on_commit_;
  mutable absl::Mutex write_mu_;
  std::unique_ptr<sqlite::Connection> writer_ ABSL_GUARDED_BY(write_mu_);
  mutable absl::Mutex read_mu_;
  std::unique_ptr<sqlite::Connection> reader_ ABSL_GUARDED_BY(read_mu_);
};

}  // namespace dfv::server

#endif  // DFV_SERVER_JOB_STORE_H_
