// The coordinator's in-memory view of live attempts: which worker runs each
// rank, which ranks started or completed, the multi-rank rendezvous, and
// cancellation. It answers the questions the worker protocol asks about an
// attempt (is this rank live? should this worker run it? why should it
// stop? may it publish this rendezvous? has the rendezvous timed out?) and
// keeps the held assignments of the workers in the WorkerRegistry in line
// with them. It stores nothing and sends nothing: the Coordinator commits
// every change of a job to the JobStore first, then tells the tracker.
//
// An attempt is tracked from Place until End; the Coordinator keeps one per
// SCHEDULED or RUNNING job. Ranks >= 1 of a multi-rank attempt hold their
// slots from placement on but are handed out (TakeDeliverable) only once
// rank 0 has published its rendezvous (SetRendezvous).
//
// Thread-safety: none (thread-compatible). The Coordinator owns the tracker
// and calls it under its mutex, like the WorkerRegistry.
#ifndef DFV_SERVER_ATTEMPT_TRACKER_H_
#define DFV_SERVER_ATTEMPT_TRACKER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/dfv.pb.h"
#include "server/worker_registry.h"

namespace dfv::server {

// The rendezvous backstop: a multi-rank attempt whose ranks have not all
// reported RUNNING within resources.rendezvous_timeout_seconds plus this
// many seconds of placement is ended (the trainers enforce the timeout
// itself; this catches ranks that never start).
inline constexpr int64_t kRendezvousGraceSeconds = 30;

// The random bytes of a multi-rank attempt's rendezvous secret
// (Assignment.rendezvous_secret holds them as twice as many hex characters).
inline constexpr size_t kRendezvousSecretBytes = 16;

// One rank of a live attempt.
struct RankState {
  std::string worker_id;    // the session it was placed on
  std::string worker_name;
  bool started = false;    // reported StateChange{RUNNING}
  bool completed = false;  // CompleteAssignment arrived, or it never ran
  // Placed before a coordinator restart; no session holds it until its
  // worker registers again with it (AttemptTracker::Adopt). worker_id is
  // empty meanwhile.
  bool awaiting = false;
  // The last ReportEvents batch applied for this rank (0: none), which the
  // Coordinator keeps in line with the store.
  int64_t last_batch = 0;
};

struct LiveAttempt {
  int32_t number = 0;
  int64_t placed_ms = 0;     // when it was placed
  int64_t published_ms = 0;  // when rank 0 published its rendezvous
  int64_t rendezvous_timeout_seconds = 60;  // resources.rendezvous_timeout_seconds
  std::vector<RankState> ranks;             // by rank
  // Multi-rank: rank 0's published rendezvous; ranks >= 1 are withheld
  // until it is known.
  std::string rendezvous;
  // Set by BeginCancel: the job is being cancelled, with this reason, and is
  // CANCELLED at the latest at cancel_deadline_ms.
  bool cancelling = false;
  std::string cancel_reason;
  int64_t cancel_deadline_ms = 0;
  // Recovered after a coordinator restart (Recover): when that was, and
  // until when its awaiting ranks may come back (0 once none awaits).
  int64_t recovered_ms = 0;
  int64_t adopt_deadline_ms = 0;
};

class AttemptTracker {
 public:
  // `registry` holds the workers the ranks run on; it must outlive the
  // tracker. The tracker adds, changes and drops held assignments there.
  explicit AttemptTracker(WorkerRegistry* registry);
  AttemptTracker(const AttemptTracker&) = delete;
  AttemptTracker& operator=(const AttemptTracker&) = delete;

  // ---- Attempts

  // Tracks attempt `number` of `job_id` (which has none live) with rank r on
  // workers[r], and gives each worker its held assignment: `base` (spec and
  // resume artifact) with job id, attempt, rank and world size set. In a
  // multi-rank attempt rank 0 gets the rendezvous "HOST:0" (HOST from its
  // worker's address, see HostOf); the others get theirs on publication.
  void Place(const std::string& job_id, int32_t number, int64_t now_ms,
             int64_t rendezvous_timeout_seconds, const std::vector<WorkerRecord*>& workers,
             const dfv::v1::Assignment& base);
  // The live attempt of `job_id`, or nullptr.
  const LiveAttempt* Find(const std::string& job_id) const;
  // The jobs that have a live attempt, in job id order.
  std::vector<std::string> JobIds() const;
  // Stops tracking the job's attempt. Ranks never delivered (ranks >= 1
  // waiting for the rendezvous) never started: their slots are freed at
  // once. Delivered ranks keep theirs until their workers stop reporting
  // them. No-op without a live attempt.
  void End(const std::string& job_id);

  // ---- After a coordinator restart

  // One rank of an attempt as the store knew it.
  struct RecoveredRank {
    std::string worker_name;  // the worker it ran on
    int64_t last_batch = 0;   // the last report batch applied
    bool completed = false;   // it had completed
  };
  // Tracks attempt `number` of `job_id` (which has none live) as the store
  // knew it. Every rank that had not completed awaits its worker
  // (RankState::awaiting) until Adopt, or until `adopt_deadline_ms`, when
  // the caller ends the attempt. `started`: every rank had reported RUNNING
  // (the job was RUNNING). `rendezvous`: the address rank 0 had published
  // ("" if none). The backstop counts from `now_ms`.
  void Recover(const std::string& job_id, int32_t number, int64_t now_ms,
               int64_t rendezvous_timeout_seconds, const std::vector<RecoveredRank>& ranks,
               const std::string& rendezvous, bool started, int64_t adopt_deadline_ms);
  // Adopts `key` for `worker` when it is an awaiting rank of its job's live
  // attempt placed on a worker of worker.name: the rank runs on that session
  // from now on (it holds a slot there, as delivered), and has started when
  // `started` (or already had). Returns whether it was adopted. Once no rank
  // awaits, the attempt's adopt_deadline_ms is cleared.
  bool Adopt(const AssignmentKey& key, WorkerRecord& worker, bool started);
  // The ranks that still await a worker named `name`, in job id order.
  std::vector<AssignmentKey> AwaitingOn(const std::string& name) const;

  // ---- Ranks

  // The state of `key`'s rank when it belongs to its job's live attempt, was
  // placed on `worker_id` and has not completed; nullptr when that rank is
  // over. The caller may set `started` and `completed` through it (until the
  // attempt ends).
  RankState* LiveRank(const AssignmentKey& key, const std::string& worker_id);
  // Whether the worker should be running `key` right now: a live rank whose
  // job is not being cancelled.
  bool Wanted(const AssignmentKey& key, const std::string& worker_id) const;
  // Why `key` should stop, for a CancelAssignment, when its job has no live
  // attempt, another one, or is being cancelled. (Jobs that are final are
  // the caller's to explain.)
  std::string StopReason(const AssignmentKey& key) const;
  // Drops a held assignment from `worker`; when it is a live rank of an
  // attempt being cancelled, that rank counts as completed.
  void Release(WorkerRecord& worker, const AssignmentKey& key);
  // The worker's held assignments to send now, marked delivered: those not
  // yet delivered that are Wanted, except ranks >= 1 whose rendezvous is not
  // yet known.
  std::vector<dfv::v1::Assignment> TakeDeliverable(WorkerRecord& worker);
  // Whether every rank of `key`'s live attempt other than key.rank has
  // started: the attempt runs once key.rank starts. False without that
  // attempt.
  bool AllOtherRanksStarted(const AssignmentKey& key) const;
  // Whether every rank of the job's live attempt has completed. False
  // without a live attempt.
  bool AllRanksCompleted(const std::string& job_id) const;

  // ---- Who may act on a rank
  // PERMISSION_DENIED ("worker W does not run rank R of attempt A of job J")
  // when `key` is a rank of its job's live attempt placed on another worker
  // session than `worker`: no worker acts on another's rank. OK otherwise,
  // including ranks of attempts that are over (their reports only free a
  // slot, which the callers handle).
  absl::Status CheckRankHolder(const AssignmentKey& key, const WorkerRecord& worker) const;
  // PERMISSION_DENIED when attempt `attempt` of the job is live and has no
  // rank placed on `worker` (for calls about a whole attempt: uploads).
  absl::Status CheckAttemptMember(const std::string& job_id, int32_t attempt,
                                  const WorkerRecord& worker) const;

  // ---- Cancelling

  // The job's live attempt is being cancelled for `reason`; it must be
  // ended by `deadline_ms`. Ranks not yet delivered never start: they are
  // released (and count as completed) at once. No-op without a live
  // attempt.
  void BeginCancel(const std::string& job_id, const std::string& reason, int64_t deadline_ms);
  // Whether the job's live attempt is being cancelled.
  bool Cancelling(const std::string& job_id) const;

  // ---- Rendezvous

  enum class Publication {
    kNew,     // store the address, then call SetRendezvous
    kRepeat,  // the attempt has this address already: nothing to do
  };
  // Checks rank `key.rank` on `worker` publishing `address` as the
  // rendezvous of attempt `key.attempt` of a job that is not final.
  // FAILED_PRECONDITION unless that is the live attempt, it has several
  // ranks, key.rank is 0 and live on `worker`, the job is not being
  // cancelled, and no other address was published.
  absl::StatusOr<Publication> CheckPublish(const AssignmentKey& key, const WorkerRecord& worker,
                                           const std::string& address) const;
  // Records rank 0's published address (after CheckPublish said kNew) and
  // copies it into the held assignments of ranks >= 1, so they are handed
  // out from now on.
  void SetRendezvous(const std::string& job_id, const std::string& address, int64_t now_ms);
  // The rendezvous backstop. The trainers time out their own rendezvous,
  // but a rank that never starts reports nothing: rank 0 has
  // rendezvous_timeout_seconds + kRendezvousGraceSeconds from placement to
  // publish, the others, who receive their assignment only then, have it
  // from the publication. Returns why the job's multi-rank attempt has
  // timed out at `now_ms` ("rendezvous: rank 0 did not publish its address
  // within 90 s of placement", "rendezvous: rank(s) 1, 3 did not start
  // within 90 s of rank 0's publication"), or "" when it has not.
  std::string BackstopReason(const std::string& job_id, int64_t now_ms) const;

 private:
  LiveAttempt* FindMutable(const std::string& job_id);
  const RankState* FindLiveRank(const AssignmentKey& key, const std::string& worker_id) const;

  WorkerRegistry* const registry_;
  std::map<std::string, LiveAttempt> attempts_;  // by job id
};

}  // namespace dfv::server

#endif  // DFV_SERVER_ATTEMPT_TRACKER_H_
