// A CoordinatorLink that records what the daemon and its runners send and
// answers from a script, in place of the coordinator. Shared by the runner
// and daemon tests.
#ifndef DFV_TESTS_DAEMON_FAKE_LINK_H_
#define DFV_TESTS_DAEMON_FAKE_LINK_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "worker/daemon/coordinator_link.h"

namespace dfv::daemon {

// Thread-safe like the real link. Tests read and script the fields under mu_.
class RecordingLink : public CoordinatorLink {
 public:
  // Like the real link, a successful registration starts a session ("w-1",
  // "w-2", ...) whose id the link quotes in later calls; failures are taken
  // from register_failures_ first.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request) override {
    absl::MutexLock lock(&mu_);
    register_requests_.push_back(request);
    if (!register_failures_.empty()) {
      absl::Status failure = register_failures_.front();
      register_failures_.pop_front();
      return failure;
    }
    worker_id_ = absl::StrCat("w-", ++sessions_);
    v1::RegisterWorkerResponse response;
    response.set_worker_id(worker_id_);
    response.set_lease_ttl_ms(10 * heartbeat_interval_ms_);
    response.set_heartbeat_interval_ms(heartbeat_interval_ms_);
    return response;
  }
  // Records the request with the session's worker id set, and answers the
  // next scripted answer (an empty response once there is none).
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override {
    absl::MutexLock lock(&mu_);
    heartbeat_requests_.push_back(request);
    heartbeat_requests_.back().set_worker_id(worker_id_);
    if (heartbeat_answers_.empty()) return v1::HeartbeatResponse();
    absl::StatusOr<v1::HeartbeatResponse> answer = std::move(heartbeat_answers_.front());
    heartbeat_answers_.pop_front();
    return answer;
  }
  // While `down_` is set, the runners' reports (events, uploads, outcome)
  // fail with it, as calls to an unreachable coordinator do. Batches are
  // kept in batches_ and applied once, like the coordinator does.
  absl::Status ReportEvents(const AssignmentKey& key, int64_t batch, const std::vector<v1::JobEvent>& events,
                            bool* cancel) override {
    absl::MutexLock lock(&mu_);
    if (!down_.ok()) return down_;
    ++calls_;
    batches_.push_back(batch);
    if (batch > 0 && batch <= last_batch_[key]) return LoseAnswer();
    if (batch > 0) last_batch_[key] = batch;
    for (const auto& e : events) {
      events_.push_back(e);
      order_.push_back(e.has_metrics() ? absl::StrCat("metrics ", e.metrics().step())
                                       : e.has_message() ? "message" : e.has_state() ? "state" : "progress");
    }
    *cancel = answer_cancel_;
    return LoseAnswer();
  }
  absl::Status UploadArtifact(const AssignmentKey& key, v1::ArtifactInfo info, const std::string& path) override {
    auto contents = ReadFileToString(path);
    if (!contents.ok()) return contents.status();
    absl::MutexLock lock(&mu_);
    if (!down_.ok()) return down_;
    ++calls_;
    uploads_[info.name()] = {info, *contents};
    order_.push_back("upload " + info.name());
    return absl::OkStatus();
  }
  absl::Status CompleteAssignment(const AssignmentKey& key, v1::Outcome outcome, const std::string& reason,
                                  bool retryable) override {
    absl::MutexLock lock(&mu_);
    if (!down_.ok()) return down_;
    ++calls_;
    order_.push_back("outcome");
    outcome_ = outcome;
    reason_ = reason;
    retryable_ = retryable;
    completions_++;
    completed_keys_.push_back(key);
    return absl::OkStatus();
  }
  absl::Status PublishRendezvous(const AssignmentKey& key, const std::string& address) override {
    absl::MutexLock lock(&mu_);
    rendezvous_.push_back(address);
    return absl::OkStatus();
  }
  absl::Status FetchCheckpoint(const std::string& job_id, int32_t attempt, const std::string& name,
                               const std::string& dest_path) override {
    absl::MutexLock lock(&mu_);
    auto it = downloadable_.find(name);
    if (it == downloadable_.end()) return absl::NotFoundError(absl::StrCat("no artifact ", name));
    return WriteFileAtomically(dest_path, it->second);
  }

  absl::Status LoseAnswer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (lose_answers_ == 0) return absl::OkStatus();
    --lose_answers_;
    return absl::DeadlineExceededError("the answer was lost");
  }

  // Polls `done` (which may lock mu_) until it holds or `timeout` passes.
  bool WaitFor(std::function<bool()> done, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return done();
  }
  bool SawState(v1::JobState state) {
    absl::MutexLock lock(&mu_);
    for (const auto& e : events_) {
      if (e.has_state() && e.state().state() == state) return true;
    }
    return false;
  }

  absl::Mutex mu_;

  // The session (WorkerDaemon's calls).
  std::vector<v1::RegisterWorkerRequest> register_requests_;
  std::deque<absl::Status> register_failures_;
  int64_t heartbeat_interval_ms_ = 20;
  int sessions_ = 0;
  std::string worker_id_;
  std::vector<v1::HeartbeatRequest> heartbeat_requests_;
  std::deque<absl::StatusOr<v1::HeartbeatResponse>> heartbeat_answers_;

  // The assignments (AssignmentRunner's calls).
  absl::Status down_;  // OK: reports are taken
  int calls_ = 0;      // reports taken
  std::vector<int64_t> batches_;  // the batch number of every ReportEvents taken
  std::map<AssignmentKey, int64_t> last_batch_;
  // This many ReportEvents answers are lost after the batch was applied
  // (DEADLINE_EXCEEDED), as when the coordinator dies right after its commit.
  int lose_answers_ = 0;
  std::vector<v1::JobEvent> events_;
  std::map<std::string, std::pair<v1::ArtifactInfo, std::string>> uploads_;
  // What was applied, in order: "metrics STEP", "state", "message",
  // "progress", "upload NAME", "outcome".
  std::vector<std::string> order_;
  std::map<std::string, std::string> downloadable_;
  bool answer_cancel_ = false;
  v1::Outcome outcome_ = v1::OUTCOME_UNSPECIFIED;
  std::string reason_;
  bool retryable_ = false;
  std::vector<std::string> rendezvous_;
  int completions_ = 0;
  std::vector<AssignmentKey> completed_keys_;
};

}  // namespace dfv::daemon

#endif  // DFV_TESTS_DAEMON_FAKE_LINK_H_
