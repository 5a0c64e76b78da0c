// Runs one assignment (one rank of one attempt of a job) in its own trainer
// process and relays what the trainer reports to the coordinator: events,
// artifacts (rank 0; every rank's trainer log), rank 0's rendezvous address
// (PublishRendezvous), and the outcome, FAILED marked retryable when the
// trainer's error says a peer or the rendezvous failed. Each runner owns one
// thread.
//
// Events, uploads and the outcome go out in order through a ReportSpool: a
// report the coordinator cannot take now (UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED; NOT_FOUND for up to retry_for, while the daemon
// registers a new session) waits there, and the trainer keeps running; the
// runner tries again with a backoff (200 ms doubling to 2 s) until the
// coordinator takes it. Other errors drop that report (logged). Event
// batches carry the spool's batch numbers, so a re-send is applied once.
//
// Folder layout under RunnerOptions::work_dir:
//   job.yaml          the canonical job the coordinator sent
//   resume/<ckpt>     the checkpoint this attempt resumes from, if any
//   run/              the trainer's run folder (see worker/train/trainer.h)
//   spool/            reports not delivered yet (see report_spool.h)
//   trainer.log       the trainer's stderr
#ifndef DFV_WORKER_DAEMON_ASSIGNMENT_RUNNER_H_
#define DFV_WORKER_DAEMON_ASSIGNMENT_RUNNER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dfv.pb.h"
#include "worker/daemon/coordinator_link.h"
#include "worker/daemon/metrics.h"
#include "worker/daemon/report_spool.h"
#include "worker/daemon/subprocess.h"

namespace dfv::daemon {

struct RunnerOptions {
  v1::Assignment assignment;
  // This assignment's own folder; created.
  std::string work_dir;
  // The trainer's command line before the per-assignment flags, e.g.
  // {"/usr/bin/dfv-trainer", "assignment"}. The runner appends --job, --out,
  // --rank, --world-size, a --data-root per data root and, when set,
  // --resume, --rendezvous and --data-plane-address; the rendezvous secret
  // goes in the trainer's environment (protocol::kRendezvousSecretEnv).
  std::vector<std::string> trainer_command;
  // The folders the job's data set must lie under (absolute, resolved); the
  // trainer refuses a job whose data lies elsewhere (PERMISSION_DENIED, not
  // retryable). Empty: no restriction.
  std::vector<std::string> data_roots;
  // This host's data-plane address for the trainer's Gloo and rendezvous;
  // empty: the rendezvous host. The interface it came from, when given, is
  // passed to NCCL as NCCL_SOCKET_IFNAME.
  std::string data_plane_address;
  std::string data_plane_interface;
  // Not owned; must outlive the runner.
  CoordinatorLink* link = nullptr;
  // After a cancel the trainer gets SIGTERM, and SIGKILL after this.
  absl::Duration cancel_grace = absl::Seconds(3);
  // How long to keep retrying PublishRendezvous and FetchCheckpoint while
  // the coordinator is unreachable, and a spooled report it answers
  // NOT_FOUND (an unknown session, until the daemon has registered again).
  absl::Duration retry_for = absl::Seconds(30);
  // The trainer's metrics rows and progress go to the coordinator at most
  // this often, several in one report: each report costs the daemon and the
  // coordinator CPU that the trainer would otherwise have. The first row after
  // a quiet spell goes at once (so a job's first step shows without delay),
  // and any other event (a state, a message, an artifact) goes at once with
  // whatever is held. Zero: every line as it comes.
  absl::Duration rows_every = absl::Milliseconds(250);
  // The most the report spool takes on disk before it drops metrics rows
  // (see report_spool.h).
  int64_t spool_bytes = int64_t{64} << 20;
  // Told about the trainer process and its figures; may be null. Not owned;
  // must outlive the runner.
  TrainerMetrics* metrics = nullptr;
  // The daemon's slot this runner holds (0-based), and the CPUs it pins the
  // trainer to (its share, common/cpu_cores.h CoreShare); empty: not pinned.
  // When pinned the trainer gets --core-share "slot S of N".
  int slot = 0;
  int slots = 1;
  std::vector<int> cpus;
  // A trainer the daemon started ahead (`assignment --prestarted`, pinned
  // like this slot), waiting on its stdin for an assignment: the runner
  // hands it this one (WritePrestartedAssignment) instead of starting a
  // process, which saves the trainer's start-up (LibTorch's loading). Its
  // stderr goes to `prestarted_log`, which becomes trainer.log. Null, or a
  // trainer that has exited: the runner starts one as usual.
  // (Shared only so that these options stay copyable; the runner takes it.)
  std::shared_ptr<Subprocess> prestarted;
  std::string prestarted_log;
};

// The line a prestarted trainer reads on stdin: the flags its assignment
// would have had on the command line after the trainer command, and the
// NAME=VALUE environment entries it would have had on top of the daemon's,
// as {"args":[...],"env":[...]}. ParsePrestartedAssignment (worker/protocol/
// trainer_report.h) reads it.

// Whether a trainer's error line means a failure that is not the job's
// fault, so the coordinator retries the job (CompleteAssignmentRequest
// .retryable): UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED (a peer rank died,
// a collective broke, the rendezvous timed out).
bool IsRetryableTrainerError(const absl::Status& error);

class AssignmentRunner {
 public:
  // Starts the runner's thread. Failures (no data, a crashing trainer) are
  // not errors here: they are reported to the coordinator as the outcome.
  static std::unique_ptr<AssignmentRunner> Start(RunnerOptions options);

  // Abandons the run if it is still going (kills the trainer, reports
  // nothing) and joins the thread.
  ~AssignmentRunner();

  // Stops the trainer (SIGTERM, then SIGKILL after the grace) and reports
  // CANCELLED. Thread-safe, returns at once.
  void Cancel(const std::string& reason);

  // Stops the trainer and reports nothing: the coordinator has already given
  // up on this attempt (the daemon's session expired). Thread-safe.
  void Abandon();

  // True once the outcome was reported (or abandoned) and the trainer reaped.
  bool finished() const { return finished_.load(); }
  // True once the trainer reported that it trains.
  bool started() const { return started_.load(); }

  const AssignmentKey& key() const { return key_; }
  // The daemon's slot this runner holds (RunnerOptions::slot).
  int slot() const { return options_.slot; }

 private:
  explicit AssignmentRunner(RunnerOptions options);
  void Run();
  // Returns the outcome and reason; reports events and artifacts as it goes.
  std::pair<v1::Outcome, std::string> RunTrainer();
  // Gives `spawn`'s assignment to the prestarted trainer, if there is one
  // that still runs; null when the caller must start one.
  std::shared_ptr<Subprocess> HandOver(const SpawnOptions& spawn);
  void HandleLine(const std::string& line, std::vector<v1::JobEvent>* events);
  void FlushEvents(std::vector<v1::JobEvent>* events);
  void Upload(v1::ArtifactKind kind, const std::string& relative_path, int64_t step);
  // Sends spooled reports in order. True when none is left (or the run was
  // abandoned); false when the next one must wait for the coordinator (it is
  // tried again from next_send_ on).
  bool Deliver();
  absl::Status Send(const SpooledReport& report);
  // Whether a report that got `status` waits in the spool to be sent again.
  bool MustWait(const absl::Status& status);
  // Queues a report (sent directly when the spool could not be made).
  void Queue(SpooledReport report);
  bool StopRequested() const;
  template <typename Call>
  absl::Status Retry(const char* what, Call call);

  RunnerOptions options_;
  AssignmentKey key_;
  std::string run_dir_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  std::atomic<bool> abandon_{false};
  std::atomic<bool> started_{false};

  mutable absl::Mutex mu_;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);

  // Owned by the runner's thread.
  std::unique_ptr<ReportSpool> spool_;  // null when it could not be made
  absl::Time next_send_ = absl::InfinitePast();
  absl::Duration backoff_ = absl::Milliseconds(200);
  absl::Time not_found_since_ = absl::InfiniteFuture();  // of the report at the front
  bool waiting_ = false;          // the coordinator has not been taking reports
  bool trainer_started_ = false;  // the metrics were told of a trainer process
  bool saw_finished_ = false;
  absl::Status trainer_error_;
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_ASSIGNMENT_RUNNER_H_
