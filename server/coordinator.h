// The coordinator's service logic, independent of gRPC: jobs from submission
// to a final state, worker sessions, scheduling, lost-worker recovery,
// artifacts and event logs. The gRPC services (service.h) only validate and
// translate; every decision is made here, so tests drive a Coordinator with
// a FakeClock and play the worker's side of the protocol directly.
//
// Job lifecycle: QUEUED -> SCHEDULED -> RUNNING -> SUCCEEDED | FAILED |
// CANCELLED. A job's final StateChange is always its last event.
//
// Submitting: a job whose resources.workers exceeds the slots of the live
// workers of its resources.device is refused (FAILED_PRECONDITION naming
// resources.workers and listing those workers) unless wait_for_workers is
// set; then it is queued and waits for workers to join.
//
// Placement: all ranks of an attempt at once (scheduler.h). When the gang
// spans hosts, rank 0 runs on a worker whose address is not a loopback one.
// An attempt resumes from the job's newest checkpoint that verifies: a job
// with checkpoints waits in the queue until Tick (off the mutex) has read
// them back newest first (size and CRC-32), and the job's events name any
// that did not verify.
//
// Evaluation jobs (EvaluateCheckpoint): a new job whose spec is another
// job's, ending at the step of one of its checkpoints, which becomes the new
// job's own artifact (a hard link, so retention or deletion of the source's
// artifacts leaves it) and the checkpoint its first attempt resumes from.
// Job.evaluates names the source; otherwise it is a job like any other.
//
// Space (see retention.h): checkpoint.keep_last applied when a checkpoint
// is stored, artifact quotas, a free-space floor, DeleteJobArtifacts and
// CollectGarbage.
//
// Worker protocol (what a worker daemon must do):
// - RegisterWorker, then Heartbeat every heartbeat_interval_ms, listing
//   every assignment it is running until that assignment's
//   CompleteAssignment call has returned. One heartbeat at a time.
//   NOT_FOUND from Heartbeat (lease expired, coordinator restarted): register
//   again, listing the assignments still running (RegisterWorkerRequest
//   .running); the answer lists those adopted (see "Coordinator restart"),
//   and running assignments the coordinator no longer wants are cancelled in
//   the new session's first heartbeat response. While the coordinator is
//   unreachable, or the session unknown, trainers keep running and their
//   reports wait in order (the daemon's spool).
// - Coordinator restart: an attempt the previous coordinator left SCHEDULED
//   or RUNNING keeps its number and awaits its workers for adopt_grace_ms.
//   A worker that registers with a running assignment whose job, attempt,
//   rank and worker name agree with the stored attempt is adopted: the rank
//   holds its slot in the new session and its reports are accepted as
//   before. Once every rank is back the attempt simply goes on (a Message
//   event says it was adopted). An assignment the records do not agree with
//   gets a cancel. A recovered attempt ends like one that lost a worker
//   (requeued from its checkpoint while restarts remain, its adopted ranks
//   cancelled) when a rank is not back by the end of the grace period, or
//   when its worker registers again without it. A cancel pending before the
//   restart makes the job CANCELLED at once; its workers get cancels.
// - Exactly once: a worker re-sends a call whose answer it did not get.
//   ReportEvents batches carry a number (ReportEventsRequest.batch); one at
//   or below the last applied number of that rank (stored with the events)
//   is not applied again. An upload of an artifact already stored for the
//   same attempt with the same size and checksum is answered with the stored
//   one and announces nothing new. Completing a rank twice is idempotent.
// - Start each Assignment it receives; stop each CancelAssignment (cancels
//   repeat while the worker still reports the assignment, so they are
//   idempotent). An assignment delivered but missing from the next
//   heartbeat is delivered again.
// - Multi-rank attempts (world_size > 1): rank 0 is delivered at once with
//   rendezvous "HOST:0" (HOST from its worker's address). Its trainer binds a
//   free port there and reports it (proto/trainer.proto TrainerRendezvous);
//   the worker sends PublishRendezvous (accepted only from rank 0 of the
//   current attempt; the address is stored with the attempt row). Ranks >= 1
//   hold their slots from placement on but are delivered only after that,
//   with `rendezvous` set to the published address. If not every rank has
//   reported RUNNING within resources.rendezvous_timeout_seconds + 30 s of
//   placement, the attempt ends ("rendezvous: rank(s) 1, 3 did not start
//   within 90 s"), every rank is cancelled and the job is requeued or fails
//   as when a worker is lost.
// - ReportEvents per rank: a StateChange{state: RUNNING} payload once the
//   rank trains (the job becomes RUNNING once every rank reported it);
//   Metrics, Progress and Message payloads. cancel=true in the answer means
//   the attempt is over: stop.
// - A worker acts only on its own ranks: ReportEvents, UploadArtifact,
//   PublishRendezvous and CompleteAssignment about a rank (or, for uploads,
//   an attempt) of a live attempt that was placed on another worker session
//   are PERMISSION_DENIED, and change nothing.
// - Rank 0 uploads artifacts (UploadArtifact) before its CompleteAssignment;
//   a rank r >= 1 may upload only its log, trainer-rank<r>.log.
// - CompleteAssignment with SUCCEEDED, FAILED or CANCELLED. FAILED fails the
//   job, no restart (a trainer error would repeat), unless retryable is set
//   (the trainer failed with UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED: a
//   peer rank died, a collective broke, the rendezvous timed out). A
//   retryable FAILED, and a rank CANCELLED without a cancel request (e.g. the
//   worker is shutting down), end the attempt like a lost worker.
// - Lost worker (lease expired) and the cases above: the attempt ends once,
//   whichever comes first (a later report about that attempt only frees its
//   slot); the other ranks are cancelled; the job is requeued to resume from
//   its newest checkpoint while restarts < max_restarts (each requeue counts
//   one), else FAILED with the reason and "; no restarts left".
//
// Thread-safety: every public method is thread-safe (one annotated mutex).
// Event subscribers are called after the lock is released.
#ifndef DFV_SERVER_COORDINATOR_H_
#define DFV_SERVER_COORDINATOR_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/jobspec/job_spec.h"
#include "proto/dfv.pb.h"
#include "server/artifact_store.h"
#include "server/attempt_tracker.h"
#include "server/clock.h"
#include "server/event_log.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/retention.h"
#include "server/worker_registry.h"

namespace dfv::server {

struct CoordinatorOptions {
  // Where the database (dfv.db) and artifacts (artifacts/) live. Required;
  // created when missing. One coordinator per folder (a lock file enforces it).
  std::string data_dir;
  // Time source; null means the wall clock. Must outlive the Coordinator.
  const Clock* clock = nullptr;
  // Worker leases and heartbeat cadence (see WorkerRegistryOptions).
  int64_t lease_ttl_ms = 5000;
  int64_t heartbeat_interval_ms = 500;
  // How long a cancelled job waits for its workers to confirm before it is
  // CANCELLED anyway.
  int64_t cancel_grace_ms = 10000;
  // How long a lost worker stays listed.
  int64_t lost_worker_retention_ms = 10 * 60 * 1000;
  // Space. Submissions and uploads are refused (RESOURCE_EXHAUSTED, naming
  // the free space) while less than this would stay free on the data
  // folder's file system after them, so SQLite and the artifacts never meet
  // a full disk mid-write; service resumes by itself once space is freed.
  // 0 turns the check off (a full disk then fails the write itself, with
  // RESOURCE_EXHAUSTED, and nothing of it is kept).
  int64_t min_free_bytes = int64_t{64} << 20;
  // Artifact quotas, 0 for none: the bytes the artifacts of one job, and of
  // all jobs together, may take. An upload that would go past one is refused
  // (RESOURCE_EXHAUSTED) and the job's events say so; checkpoints that
  // checkpoint.keep_last removes once the upload commits are not counted.
  int64_t job_artifact_quota_bytes = 0;
  int64_t artifact_quota_bytes = 0;
  // After a restart, how long an attempt the previous coordinator left
  // SCHEDULED or RUNNING waits for its workers to register again with its
  // ranks (well above the workers' register retry, 1 s). 0: no waiting;
  // such jobs are requeued at once ("coordinator restarted").
  int64_t adopt_grace_ms = 30000;
  // Where to count what happens (see server/metrics.h); null: no metrics.
  // Must outlive the Coordinator, which is its state source while it lives.
  CoordinatorMetrics* metrics = nullptr;
  // Called with the ids of workers that were just given assignments to
  // deliver (a placement, ranks released by a published rendezvous), after
  // the change is committed and outside the coordinator's lock, on the
  // thread that made it; long-polled heartbeats (heartbeat_parking.h) are
  // answered at once through it. Must not call back into the Coordinator
  // synchronously. Empty: nobody is told.
  std::function<void(const std::vector<std::string>&)> on_deliverable;
};

class Coordinator {
 public:
  // Opens the data folder and recovers: jobs a previous coordinator left
  // SCHEDULED or RUNNING keep their attempt, which awaits its workers for
  // adopt_grace_ms (see "Coordinator restart" above); with adopt_grace_ms 0
  // they go back to QUEUED as a new attempt at once (reason "coordinator
  // restarted"). Jobs with a pending cancel become CANCELLED.
  // INVALID_ARGUMENT for bad options, FAILED_PRECONDITION when another
  // coordinator holds the folder.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(const CoordinatorOptions& options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;


  // ---- Clients

  // Parses and validates the job file (with `overrides` applied), stores its
  // canonical form and queues it. INVALID_ARGUMENT naming each bad field and
  // line; FAILED_PRECONDITION ("resources.workers: 3 ranks need 3 cpu worker
  // slots, the cluster has 2 (w1: 1, w2: 1); ...") when the live workers of
  // the job's device have fewer slots in all than it has ranks, unless
  // `wait_for_workers`. Nothing is stored on an error.
  absl::StatusOr<dfv::v1::Job> SubmitJob(const std::string& spec_yaml,
                                         const std::string& source_name,
                                         const std::vector<std::string>& overrides,
                                         bool wait_for_workers = false) ABSL_LOCKS_EXCLUDED(mu_);
  // What EvaluateCheckpoint evaluates and how.
  struct EvaluationRequest {
    std::string job_id;                  // the job whose checkpoint it is
    std::string checkpoint;              // artifact or file name; "": newest that verifies
    std::vector<std::string> overrides;  // "key.path=value"
    bool wait_for_workers = false;       // as SubmitJob's
  };
  // Queues a new job that evaluates a stored checkpoint (see
  // dfv.v1.EvaluateCheckpointRequest for the spec it gets and every
  // refusal). The checkpoint is read back (size and CRC-32) on the caller's
  // thread without the mutex; then, under it, the new job, its index row of
  // the checkpoint (ArtifactStore::Share, a hard link) and its first events
  // commit in one transaction, and its first attempt resumes from that
  // checkpoint without being read again. Nothing is stored on an error.
  absl::StatusOr<dfv::v1::Job> EvaluateCheckpoint(const EvaluationRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND for an unknown job.
  absl::StatusOr<dfv::v1::Job> GetJob(const std::string& job_id) const;
  // Newest first; all states when `states` is empty; all jobs when limit 0.
  absl::StatusOr<std::vector<dfv::v1::Job>> ListJobs(const std::vector<dfv::v1::JobState>& states,
                                                     int limit) const;
  // QUEUED: CANCELLED at once. SCHEDULED/RUNNING: the ranks are told to stop
  // and the job becomes CANCELLED when all confirmed or after
  // cancel_grace_ms. FAILED_PRECONDITION for a job already final.
  absl::StatusOr<dfv::v1::Job> CancelJob(const std::string& job_id, const std::string& reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<dfv::v1::WorkerInfo> ListWorkers() const ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND for an unknown job.
  absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> ListArtifacts(const std::string& job_id) const;
  // NOT_FOUND for an unknown job or artifact.
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(const std::string& job_id,
                                                               const std::string& name) const;
  // Removes every artifact of a final job (index rows, then files); the job
  // and its events stay. NOT_FOUND for an unknown job, FAILED_PRECONDITION
  // for one that is not final.
  absl::StatusOr<FreedSpace> DeleteJobArtifacts(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // What CollectGarbage did and what the store holds after it.
  struct GarbageReport {
    FreedSpace this_pass;
    FreedSpace since_start;  // by this process, this pass included
    int64_t stored_bytes = 0;
    int64_t available_bytes = 0;  // on the data folder's file system
  };
  // Applies retention to every job again (checkpoint.keep_last, never the
  // checkpoint a resume needs) and removes orphan files (see retention.h).
  // The folder is scanned without the mutex; each removal is re-checked and
  // done under it.
  absl::StatusOr<GarbageReport> CollectGarbage() ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Watching a job: read the log, then follow. A follower subscribes
  // first, then reads, so no event falls between the two.

  // Events with seq > after_seq, at most `limit` (all when 0).
  absl::StatusOr<std::vector<dfv::v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                            int64_t after_seq, int limit) const;
  // See EventLog::Subscribe. The handle must not outlive the Coordinator.
  std::unique_ptr<EventLog::Subscription> SubscribeEvents(const std::string& job_id,
                                                          EventLog::Callback callback);

  // ---- Workers (the requests' shape already checked: ids, sizes, counts,
  // attempt >= 1)

  absl::StatusOr<dfv::v1::RegisterWorkerResponse> RegisterWorker(
      const dfv::v1::RegisterWorkerRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // For a worker identified by its certificate: OK when `worker_id` is a
  // live session of the worker named `name`. NOT_FOUND for an unknown or
  // expired session (register again); PERMISSION_DENIED when the session is
  // another worker's. (A session's name never changes, so the answer holds
  // for the call that follows.)
  absl::Status CheckSessionOwner(const std::string& worker_id, const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // OK when session `worker_id` holds a rank of live attempt `attempt` of
  // the job (it may read the checkpoint that attempt resumes from); NOT_FOUND
  // for an unknown session or job, FAILED_PRECONDITION for a job that is
  // over, PERMISSION_DENIED for an attempt with no rank on that session.
  absl::Status CheckCheckpointReader(const std::string& worker_id, const std::string& job_id, int32_t attempt)
      ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND for an unknown or expired session.
  absl::StatusOr<dfv::v1::HeartbeatResponse> Heartbeat(const dfv::v1::HeartbeatRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Returns `cancel`: true when the attempt is over (not an error).
  // INVALID_ARGUMENT, whatever the session, for an event a worker may not
  // report ("events[2].state.state: a worker may only report RUNNING, got
  // FAILED"; artifact events; events without a payload). NOT_FOUND for an
  // unknown session or job.
  absl::StatusOr<bool> ReportEvents(const dfv::v1::ReportEventsRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts an upload by rank 0's worker (or, for its own
  // trainer-rank<r>.log, rank r's). FAILED_PRECONDITION when the job is final
  // or the session does not hold such a rank of that attempt.
  absl::StatusOr<std::unique_ptr<ArtifactUpload>> BeginUpload(
      const dfv::v1::UploadArtifactRequest::Header& header) ABSL_LOCKS_EXCLUDED(mu_);
  // Seals the upload (DATA_LOSS on a size or checksum mismatch, nothing
  // kept), then stores and indexes it and appends its ArtifactInfo event.
  absl::StatusOr<dfv::v1::ArtifactInfo> FinishUpload(const std::string& worker_id,
                                                     std::unique_ptr<ArtifactUpload> upload)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Rank 0 of a multi-rank attempt reports where its rendezvous listens; it
  // is stored with the attempt and the attempt's other ranks are delivered
  // from then on, with that address. The same address again is OK (a
  // retry). NOT_FOUND for an unknown session or job; FAILED_PRECONDITION
  // unless the worker runs rank 0 (request.rank 0) of the job's current,
  // multi-rank attempt that is not being cancelled and has no other address.
  absl::Status PublishRendezvous(const dfv::v1::PublishRendezvousRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Idempotent: completing a rank of an attempt that is over only frees its
  // slot. INVALID_ARGUMENT ("outcome: ...") for an outcome other than
  // SUCCEEDED, FAILED or CANCELLED, whatever the session; NOT_FOUND for an
  // unknown session. A retryable FAILED (a peer rank
  // or the rendezvous failed) requeues the job like a lost worker.
  absl::Status CompleteAssignment(const dfv::v1::CompleteAssignmentRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Expires leases, ends attempts that lost a worker or whose ranks did not
  // all start in time (the rendezvous backstop), finishes cancels whose
  // grace period ran out, and places queued jobs. The server calls it every
  // ~200 ms; tests call it after moving a FakeClock.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Observing

  // The state the metrics' gauges show, in one consistent snapshot: taken
  // under the mutex from memory (final-state counts and stored bytes are
  // read from the store once at start and kept current), no I/O.
  CoordinatorState MetricsState() const ABSL_LOCKS_EXCLUDED(mu_);
  // The live workers' metrics endpoints (Prometheus service discovery).
  std::vector<MetricsTarget> MetricsTargets() const ABSL_LOCKS_EXCLUDED(mu_);

  const CoordinatorOptions& options() const { return options_; }
  // The underlying store, for inspection (tests, tools).
  JobStore* job_store() const { return store_.get(); }

 private:
  // A job that is not final. While it is SCHEDULED or RUNNING, tracker_
  // has its live attempt.
  struct ActiveJob {
    JobRecord record;                  // as last committed
    std::string device;                // resources.device
    int64_t rendezvous_timeout_seconds = 60;  // resources.rendezvous_timeout_seconds
    int64_t queued_ms = 0;  // when it last became QUEUED
    // Not RUNNING yet since its submission (as far as this process knows:
    // false for jobs placed before a coordinator restart).
    bool first_running_pending = false;
    int64_t keep_last = 3;  // checkpoint.keep_last
    // The checkpoint the job's next attempt (while QUEUED) or its live
    // attempt resumes from; "" for none. For a placement it counts only
    // while resume_checked_after == record.job.attempt(): it was chosen after
    // that attempt ended, as the newest checkpoint that verifies.
    std::string resume;
    int32_t resume_checked_after = -1;
    // A placement waits for Tick to verify the job's checkpoints.
    bool resume_check_pending = false;
  };
  // The checkpoints of one queued job, verified by Tick without the mutex.
  struct ResumeCheck {
    std::string job_id;
    int32_t after_attempt = 0;
    std::vector<dfv::v1::ArtifactInfo> candidates;  // newest first
    std::string chosen;                             // "" when none verified
    std::vector<std::string> damaged;               // "NAME: why", in order
  };
  using Outbox = std::vector<dfv::v1::JobEvent>;

  // An flock on <data_dir>/LOCK, held for the Coordinator's lifetime.
  class DirLock {
   public:
    explicit DirLock(int fd) : fd_(fd) {}
    ~DirLock();
    DirLock(const DirLock&) = delete;
    DirLock& operator=(const DirLock&) = delete;

   private:
    int fd_;
  };

  Coordinator(CoordinatorOptions options, const Clock* clock, std::unique_ptr<DirLock> lock,
              std::unique_ptr<JobStore> store, std::unique_ptr<EventLog> events,
              std::unique_ptr<ArtifactStore> artifacts);

  // What the coordinator keeps of a job's spec while the job is active.
  static void AdoptSpec(const jobspec::JobSpec& spec, ActiveJob& job);

  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecoverLocked(Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps a placed job's attempt live, awaiting its workers for
  // adopt_grace_ms, and says so in its events (`next`: its record to store).
  absl::Status AwaitWorkersLocked(ActiveJob& job, JobRecord next, Outbox* outbox)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A registering worker's running assignments: adopts those the records
  // agree with (listed in `response`), and ends the recovered attempts that
  // awaited a rank from it that it did not bring back.
  void AdoptRunningLocked(const dfv::v1::RegisterWorkerRequest& request, WorkerRecord& worker,
                          dfv::v1::RegisterWorkerResponse* response, Outbox* outbox)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A new QUEUED job's row for `spec`, created now. RESOURCE_EXHAUSTED (see
  // CheckFreeSpace) when storing it would leave too little free space.
  absl::StatusOr<JobRecord> NewJobRecord(const jobspec::JobSpec& spec) const;
  // What a new job's transaction adds after its row and QUEUED event: rows
  // of its own, and the payloads of the events that follow.
  using NewJobExtras =
      absl::FunctionRef<absl::StatusOr<std::vector<dfv::v1::JobEvent>>(JobStore::Tx&, const std::string& job_id)>;
  // Stores `record` (its spec `spec`) as a new QUEUED job with its QUEUED
  // event and what `extras` adds, in one transaction (nothing is stored
  // when any of it fails); then makes it active and schedules. `resume`:
  // the checkpoint its first attempt resumes from, known to verify; "" to
  // look at its checkpoints as for any queued job. Returns the job as
  // stored.
  absl::StatusOr<dfv::v1::Job> InsertJobLocked(JobRecord record, const jobspec::JobSpec& spec,
                                               const std::string& resume, Outbox* outbox,
                                               NewJobExtras extras) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // FAILED_PRECONDITION when the live workers of the job's device have fewer
  // slots in all than it has ranks.
  absl::Status CheckCapacityLocked(const jobspec::JobSpec& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Writes job.record with `new_record`'s contents plus `payloads` as events,
  // and `extra` rows, in one transaction; on success adopts the new record
  // (with its last_seq), queues the events in `outbox` and accounts for a
  // change of state (NoteStateChangeLocked). Every change of an existing
  // job's state goes through here.
  absl::Status CommitJobLocked(ActiveJob& job, JobRecord new_record,
                               const std::vector<dfv::v1::JobEvent>& payloads, Outbox* outbox,
                               absl::FunctionRef<absl::Status(JobStore::Tx&)> extra)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitJobLocked(ActiveJob& job, JobRecord new_record,
                               const std::vector<dfv::v1::JobEvent>& payloads, Outbox* outbox)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Ends the job's live attempt: the attempt row gets `outcome`, the job goes
  // to `next_state` with `reason`. Ranks still held on workers drain (they
  // get cancels). A final job leaves active_ (`job` dangles then).
  absl::Status EndAttemptLocked(ActiveJob& job, AttemptOutcome outcome,
                                dfv::v1::JobState next_state, std::string reason,
                                bool count_restart, Outbox* outbox)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The figures a change of the job's state from `before` moves: its queue
  // time, the first RUNNING, the final-state counts.
  void NoteStateChangeLocked(ActiveJob& job, dfv::v1::JobState before)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker failure: QUEUED while restarts remain (counted under `why`),
  // FAILED otherwise.
  absl::Status RequeueOrFailLocked(ActiveJob& job, const std::string& reason, RestartReason why,
                                   Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PlaceLocked(ActiveJob& job, const std::vector<std::string>& worker_ids,
                           Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Brings live attempts in line with the registry and the clock (lost
  // workers, finished cancels), then places what fits.
  void ReconcileLocked(Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked(Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Why `key` should stop, for a CancelAssignment: the stored state of a
  // final job, else the tracker's answer.
  std::string StopReasonLocked(const AssignmentKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FAILED_PRECONDITION unless the job is not final, no later attempt took
  // over, and `worker_id` holds rank 0 of the attempt, or rank r >= 1 and
  // `info` is its trainer-rank<r>.log.
  absl::Status CheckUploaderLocked(const std::string& worker_id, const std::string& job_id,
                                   int32_t attempt, const dfv::v1::ArtifactInfo& info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND for unknown jobs; FAILED_PRECONDITION naming the state of
  // final ones.
  absl::Status InactiveJobStatus(const std::string& job_id) const;

  // RESOURCE_EXHAUSTED when writing `bytes` more (for `what`, "this job
  // file") would leave less than min_free_bytes free on the data folder's
  // file system. Takes no lock.
  absl::Status CheckFreeSpace(int64_t bytes, const std::string& what) const;
  // RESOURCE_EXHAUSTED when storing `declared` for the job would pass a
  // quota (the job's message event is queued in `outbox`).
  absl::Status CheckQuotasLocked(ActiveJob& job, const dfv::v1::ArtifactInfo& declared,
                                 Outbox* outbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The checkpoints of the job no removal may touch: the one its live or
  // next attempt resumes from.
  std::set<std::string> ProtectedCheckpointsLocked(const std::string& job_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After index rows of the job's artifacts were deleted and committed:
  // removes their files, keeps the stored bytes current and counts them.
  void ArtifactsRemovedLocked(const std::string& job_id,
                              const std::vector<dfv::v1::ArtifactInfo>& removed, DeleteReason reason,
                              FreedSpace* freed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // keep_last over one job's index (gc); returns what it removed.
  absl::Status PruneJobLocked(const std::string& job_id, int64_t keep_last, FreedSpace* freed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Whether the queued job's resume checkpoint is chosen for its next
  // attempt; a first look reads the index once (no checkpoint: chosen at
  // once, "") and marks a job with checkpoints for a resume check.
  bool ResumeChosenLocked(ActiveJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resume checks: the queued jobs whose placement waits for one
  // (candidates read from the index), each run without the mutex
  // (RunResumeCheck reads every candidate until one verifies), then applied:
  // the job's resume is set and damaged checkpoints named in its events.
  // CheckResumes runs every pending check and schedules what became ready
  // (from Tick, and once after Recover).
  void CheckResumes() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ResumeCheck> PendingResumeChecksLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunResumeCheck(ResumeCheck& check) const ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyResumeCheckLocked(const ResumeCheck& check, Outbox* outbox)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Delivers committed events to their watchers (every appended event
  // passes here once, so this is where they are counted).
  void Publish(const Outbox& outbox) ABSL_LOCKS_EXCLUDED(mu_);
  // Hands the workers in deliverable_to_ to options_.on_deliverable.
  void NotifyDeliverable() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status PublishRendezvousLocked(const dfv::v1::PublishRendezvousRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Declared first so that the folder lock is released last.
  const std::unique_ptr<DirLock> lock_;
  const CoordinatorOptions options_;
  const Clock* const clock_;
  const std::unique_ptr<JobStore> store_;
  const std::unique_ptr<EventLog> events_;
  const std::unique_ptr<ArtifactStore> artifacts_;
  CoordinatorMetrics* const metrics_;  // may be null

  mutable absl::Mutex mu_;
  WorkerRegistry registry_ ABSL_GUARDED_BY(mu_);
  AttemptTracker tracker_ ABSL_GUARDED_BY(mu_);  // changes registry_'s held assignments
  // Workers given something to deliver since the last NotifyDeliverable.
  std::vector<std::string> deliverable_to_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ActiveJob> active_ ABSL_GUARDED_BY(mu_);  // by job id
  // Jobs in final states (by dfv::v1::JobState) and the bytes of all
  // artifacts: counted in the store at start, then kept current.
  std::array<int64_t, dfv::v1::JobState_ARRAYSIZE> final_jobs_ ABSL_GUARDED_BY(mu_){};
  int64_t artifact_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // What retention and deletions removed since this process started.
  FreedSpace freed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dfv::server

#endif  // DFV_SERVER_COORDINATOR_H_
