#include "server/attempt_tracker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dfv::server {
namespace {

// Calls visit(worker, key, held) for each rank >= first_rank of `attempt`
// whose worker is alive and still holds that rank's assignment.
template <typename Visit>
void ForEachHeld(WorkerRegistry& registry, const std::string& job_id, const LiveAttempt& attempt, int first_rank,
                 Visit visit) {
  for (int rank = first_rank; rank < static_cast<int>(attempt.ranks.size()); ++rank) {
    WorkerRecord* worker = registry.FindAlive(attempt.ranks[rank].worker_id);
    if (worker == nullptr) continue;  // lost: reconciling ends the attempt
    const AssignmentKey key{job_id, attempt.number, rank};
    auto held = worker->assignments.find(key);
    if (held != worker->assignments.end()) visit(*worker, key, held->second);
  }
}

}  // namespace

AttemptTracker::AttemptTracker(WorkerRegistry* registry) : registry_(registry) {}

// ---------------------------------------------------------------------------
// Attempts

void AttemptTracker::Place(const std::string& job_id, int32_t number, int64_t now_ms,
                           int64_t rendezvous_timeout_seconds,
                           const std::vector<WorkerRecord*>& workers,
                           const dfv::v1::Assignment& base) {
  const int world_size = static_cast<int>(workers.size());
  // Rank 0 binds a free port on its host and publishes it (PublishRendezvous);
  // the other ranks get the address then.
  const std::string rendezvous = world_size > 1 ? absl::StrCat(HostOf(*workers[0]), ":0") : "";
  LiveAttempt live;
  live.number = number;
  live.placed_ms = now_ms;
  live.rendezvous_timeout_seconds = rendezvous_timeout_seconds;
  for (int rank = 0; rank < world_size; ++rank) {
    WorkerRecord& worker = *workers[rank];
    live.ranks.push_back(RankState{worker.id, worker.name});
    HeldAssignment held;
    dfv::v1::Assignment& assignment = held.assignment;
    assignment = base;
    assignment.set_job_id(job_id);
    assignment.set_attempt(number);
    assignment.set_rank(rank);
    assignment.set_world_size(world_size);
    assignment.set_rendezvous(rank == 0 ? rendezvous : "");
    worker.assignments[AssignmentKey{job_id, number, rank}] = std::move(held);
  }
  attempts_[job_id] = std::move(live);
}

const LiveAttempt* AttemptTracker::Find(const std::string& job_id) const {
  auto it = attempts_.find(job_id);
  return it == attempts_.end() ? nullptr : &it->second;
}

LiveAttempt* AttemptTracker::FindMutable(const std::string& job_id) {
  auto it = attempts_.find(job_id);
  return it == attempts_.end() ? nullptr : &it->second;
}

std::vector<std::string> AttemptTracker::JobIds() const {
  std::vector<std::string> ids;
  ids.reserve(attempts_.size());
  for (const auto& [id, attempt] : attempts_) ids.push_back(id);
  return ids;
}

void AttemptTracker::End(const std::string& job_id) {
  auto it = attempts_.find(job_id);
  if (it == attempts_.end()) return;
  ForEachHeld(*registry_, job_id, it->second, 0,
              [](WorkerRecord& worker, const AssignmentKey& key, const HeldAssignment& held) {
                if (!held.delivered) worker.assignments.erase(key);
              });
  attempts_.erase(it);
}

// ---------------------------------------------------------------------------
// After a coordinator restart

void AttemptTracker::Recover(const std::string& job_id, int32_t number, int64_t now_ms,
                             int64_t rendezvous_timeout_seconds,
                             const std::vector<RecoveredRank>& ranks,
                             const std::string& rendezvous, bool started,
                             int64_t adopt_deadline_ms) {
  LiveAttempt live;
  live.number = number;
  live.placed_ms = now_ms;
  live.rendezvous_timeout_seconds = rendezvous_timeout_seconds;
  live.rendezvous = rendezvous;
  if (!rendezvous.empty()) live.published_ms = now_ms;
  live.recovered_ms = now_ms;
  live.adopt_deadline_ms = adopt_deadline_ms;
  for (const RecoveredRank& recovered : ranks) {
    RankState rank;
    rank.worker_name = recovered.worker_name;
    rank.started = started || recovered.completed;
    rank.completed = recovered.completed;
    rank.awaiting = !recovered.completed;
    rank.last_batch = recovered.last_batch;
    live.ranks.push_back(std::move(rank));
  }
  attempts_[job_id] = std::move(live);
}

bool AttemptTracker::Adopt(const AssignmentKey& key, WorkerRecord& worker, bool started) {
  LiveAttempt* attempt = FindMutable(key.job_id);
  if (attempt == nullptr || attempt->number != key.attempt || key.rank < 0 ||
      key.rank >= static_cast<int32_t>(attempt->ranks.size())) {
    return false;
  }
  RankState& rank = attempt->ranks[key.rank];
  if (!rank.awaiting || rank.worker_name != worker.name) return false;
  rank.awaiting = false;
  rank.worker_id = worker.id;
  rank.started = rank.started || started;
  HeldAssignment held;
  held.assignment.set_job_id(key.job_id);
  held.assignment.set_attempt(key.attempt);
  held.assignment.set_rank(key.rank);
  held.assignment.set_world_size(static_cast<int32_t>(attempt->ranks.size()));
  held.delivered = true;
  held.adopted = true;
  worker.assignments[key] = std::move(held);
  if (std::none_of(attempt->ranks.begin(), attempt->ranks.end(),
                   [](const RankState& r) { return r.awaiting; })) {
    attempt->adopt_deadline_ms = 0;
  }
  return true;
}

std::vector<AssignmentKey> AttemptTracker::AwaitingOn(const std::string& name) const {
  std::vector<AssignmentKey> keys;
  for (const auto& [job_id, attempt] : attempts_) {
    for (int r = 0; r < static_cast<int>(attempt.ranks.size()); ++r) {
      const RankState& rank = attempt.ranks[r];
      if (rank.awaiting && rank.worker_name == name) {
        keys.push_back(AssignmentKey{job_id, attempt.number, r});
      }
    }
  }
  return keys;
}

// ---------------------------------------------------------------------------
// Ranks

const RankState* AttemptTracker::FindLiveRank(const AssignmentKey& key,
                                              const std::string& worker_id) const {
  const LiveAttempt* attempt = Find(key.job_id);
  if (attempt == nullptr || attempt->number != key.attempt || key.rank < 0 ||
      key.rank >= static_cast<int32_t>(attempt->ranks.size())) {
    return nullptr;
  }
  const RankState& rank = attempt->ranks[key.rank];
  if (rank.worker_id != worker_id || rank.completed) return nullptr;
  return &rank;
}

RankState* AttemptTracker::LiveRank(const AssignmentKey& key, const std::string& worker_id) {
  // The rank lives in attempts_, which this non-const call may change.
  return const_cast<RankState*>(FindLiveRank(key, worker_id));
}

bool AttemptTracker::Wanted(const AssignmentKey& key, const std::string& worker_id) const {
  return FindLiveRank(key, worker_id) != nullptr && !Cancelling(key.job_id);
}

std::string AttemptTracker::StopReason(const AssignmentKey& key) const {
  const LiveAttempt* attempt = Find(key.job_id);
  if (attempt != nullptr && attempt->cancelling) {
    return absl::StrCat("job ", key.job_id, " is being cancelled: ", attempt->cancel_reason);
  }
  if (attempt == nullptr || attempt->number != key.attempt) {
    return absl::StrCat("attempt ", key.attempt, " of job ", key.job_id, " is over");
  }
  return absl::StrCat("rank ", key.rank, " of job ", key.job_id, " attempt ", key.attempt,
                      " does not run on this worker");
}

void AttemptTracker::Release(WorkerRecord& worker, const AssignmentKey& key) {
  worker.assignments.erase(key);
  if (!Cancelling(key.job_id)) return;
  if (RankState* rank = LiveRank(key, worker.id)) rank->completed = true;
}

std::vector<dfv::v1::Assignment> AttemptTracker::TakeDeliverable(WorkerRecord& worker) {
  std::vector<dfv::v1::Assignment> out;
  for (auto& [key, held] : worker.assignments) {
    if (held.delivered || !Wanted(key, worker.id)) continue;
    // Ranks >= 1 wait for rank 0's rendezvous address (SetRendezvous copies
    // it into their held assignments).
    if (key.rank > 0 && held.assignment.rendezvous().empty()) continue;
    out.push_back(held.assignment);
    held.delivered = true;
  }
  return out;
}

bool AttemptTracker::AllOtherRanksStarted(const AssignmentKey& key) const {
  const LiveAttempt* attempt = Find(key.job_id);
  if (attempt == nullptr || attempt->number != key.attempt) return false;
  for (int r = 0; r < static_cast<int>(attempt->ranks.size()); ++r) {
    if (r != key.rank && !attempt->ranks[r].started) return false;
  }
  return true;
}

bool AttemptTracker::AllRanksCompleted(const std::string& job_id) const {
  const LiveAttempt* attempt = Find(job_id);
  if (attempt == nullptr) return false;
  return std::all_of(attempt->ranks.begin(), attempt->ranks.end(),
                     [](const RankState& rank) { return rank.completed; });
}

absl::Status AttemptTracker::CheckRankHolder(const AssignmentKey& key,
                                             const WorkerRecord& worker) const {
  const LiveAttempt* attempt = Find(key.job_id);
  if (attempt == nullptr || attempt->number != key.attempt || key.rank < 0 ||
      key.rank >= static_cast<int32_t>(attempt->ranks.size())) {
    return absl::OkStatus();
  }
  if (attempt->ranks[key.rank].worker_id == worker.id) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("worker ", worker.name, " does not run rank ",
                                                  key.rank, " of attempt ", key.attempt,
                                                  " of job ", key.job_id));
}

absl::Status AttemptTracker::CheckAttemptMember(const std::string& job_id, int32_t attempt,
                                                const WorkerRecord& worker) const {
  const LiveAttempt* live = Find(job_id);
  if (live == nullptr || live->number != attempt) return absl::OkStatus();
  for (const RankState& rank : live->ranks) {
    if (rank.worker_id == worker.id) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("worker ", worker.name, " runs no rank of attempt ",
                                                  attempt, " of job ", job_id));
}

// ---------------------------------------------------------------------------
// Cancelling

void AttemptTracker::BeginCancel(const std::string& job_id, const std::string& reason,
                                 int64_t deadline_ms) {
  LiveAttempt* attempt = FindMutable(job_id);
  if (attempt == nullptr) return;
  attempt->cancelling = true;
  attempt->cancel_reason = reason;
  attempt->cancel_deadline_ms = deadline_ms;
  ForEachHeld(*registry_, job_id, *attempt, 0,
              [this](WorkerRecord& worker, const AssignmentKey& key, const HeldAssignment& held) {
                if (!held.delivered) Release(worker, key);
              });
}

bool AttemptTracker::Cancelling(const std::string& job_id) const {
  const LiveAttempt* attempt = Find(job_id);
  return attempt != nullptr && attempt->cancelling;
}

// ---------------------------------------------------------------------------
// Rendezvous

absl::StatusOr<AttemptTracker::Publication> AttemptTracker::CheckPublish(
    const AssignmentKey& key, const WorkerRecord& worker, const std::string& address) const {
  const LiveAttempt* attempt = Find(key.job_id);
  if (attempt == nullptr || attempt->number != key.attempt) {
    return absl::FailedPreconditionError(absl::StrCat(
        "attempt ", key.attempt, " is not the current attempt of job ", key.job_id,
        "; its rendezvous is not needed"));
  }
  if (attempt->ranks.size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", key.job_id, " runs on one rank; it has no rendezvous"));
  }
  if (key.rank != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("rank: only rank 0 publishes the rendezvous, got rank ", key.rank));
  }
  if (attempt->ranks[0].worker_id != worker.id || attempt->ranks[0].completed) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", worker.name,
                                                      " does not run rank 0 of attempt ",
                                                      key.attempt, " of job ", key.job_id));
  }
  if (attempt->cancelling) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", key.job_id, " is being cancelled; its rendezvous is not needed"));
  }
  if (attempt->rendezvous.empty()) return Publication::kNew;
  if (attempt->rendezvous == address) return Publication::kRepeat;
  return absl::FailedPreconditionError(absl::StrCat(
      "address: attempt ", key.attempt, " of job ", key.job_id, " already has its rendezvous at ",
      attempt->rendezvous, "; got ", address));
}

void AttemptTracker::SetRendezvous(const std::string& job_id, const std::string& address,
                                   int64_t now_ms) {
  LiveAttempt* attempt = FindMutable(job_id);
  if (attempt == nullptr) return;
  attempt->rendezvous = address;
  attempt->published_ms = now_ms;
  // The other ranks go out in their workers' next heartbeat responses.
  ForEachHeld(*registry_, job_id, *attempt, 1,
              [&address](WorkerRecord&, const AssignmentKey&, HeldAssignment& held) {
                held.assignment.set_rendezvous(address);
              });
}

std::string AttemptTracker::BackstopReason(const std::string& job_id, int64_t now_ms) const {
  const LiveAttempt* attempt = Find(job_id);
  if (attempt == nullptr || attempt->ranks.size() < 2) return "";
  const int64_t limit_s = attempt->rendezvous_timeout_seconds + kRendezvousGraceSeconds;
  const bool published = !attempt->rendezvous.empty();
  const int64_t since_ms = published ? attempt->published_ms : attempt->placed_ms;
  if (now_ms < since_ms + limit_s * 1000) return "";
  if (!published && attempt->ranks[0].started) {
    return absl::StrCat("rendezvous: rank 0 did not publish its address within ", limit_s,
                        " s of placement");
  }
  std::vector<int> missing;
  for (int r = 0; r < static_cast<int>(attempt->ranks.size()); ++r) {
    const RankState& rank = attempt->ranks[r];
    if (!rank.started && !rank.completed) missing.push_back(r);
  }
  if (missing.empty()) return "";
  return absl::StrCat("rendezvous: rank(s) ", absl::StrJoin(missing, ", "),
                      " did not start within ", limit_s, " s of ",
                      published ? "rank 0's publication" : "placement");
}

}  // namespace dfv::server
