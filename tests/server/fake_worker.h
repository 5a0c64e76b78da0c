// A worker daemon's side of the protocol, played directly against a
// Coordinator (no gRPC), and the events workers report; shared by the
// coordinator's logic tests.
#ifndef DFV_TESTS_SERVER_FAKE_WORKER_H_
#define DFV_TESTS_SERVER_FAKE_WORKER_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "server/clock.h"
#include "server/coordinator.h"

namespace dfv::server::testing {

using dfv::v1::JobEvent;

inline JobEvent Running() {
  JobEvent event;
  event.mutable_state()->set_state(dfv::v1::RUNNING);
  return event;
}

inline JobEvent Progress(int64_t step, int64_t total) {
  JobEvent event;
  event.mutable_progress()->set_step(step);
  event.mutable_progress()->set_total_steps(total);
  return event;
}

inline JobEvent Metrics(int64_t step, double loss) {
  JobEvent event;
  event.mutable_metrics()->set_step(step);
  dfv::v1::MetricValue* value = event.mutable_metrics()->add_values();
  value->set_name("loss");
  value->set_value(loss);
  return event;
}

inline JobEvent Message(const std::string& text) {
  JobEvent event;
  event.mutable_message()->set_text(text);
  return event;
}

// Plays a worker daemon's side of the protocol.
class FakeWorker {
 public:
  FakeWorker(Coordinator* coordinator, std::string name, int slots = 1, std::string device = "cpu")
      : coordinator_(coordinator), name_(std::move(name)), slots_(slots), device_(std::move(device)) {}

  // Like the daemon, lists what it still runs (as started ranks); the
  // answer's adopted ones are kept in adopted().
  void Register() {
    dfv::v1::RegisterWorkerRequest request;
    request.set_name(name_);
    request.set_slots(slots_);
    request.set_device(device_);
    request.set_address(address_.empty() ? absl::StrCat("127.0.0.1:", 9000 + name_.size()) : address_);
    request.set_metrics_address(metrics_address_);
    for (const dfv::v1::Assignment& a : running_) {
      dfv::v1::RunningAssignment* r = request.add_running();
      r->set_job_id(a.job_id());
      r->set_attempt(a.attempt());
      r->set_rank(a.rank());
      r->set_started(true);
    }
    auto response = coordinator_->RegisterWorker(request);
    ASSERT_TRUE(response.ok()) << response.status();
    id_ = response->worker_id();
    adopted_.assign(response->adopted().begin(), response->adopted().end());
  }

  // One heartbeat listing what runs; new assignments start running.
  absl::StatusOr<dfv::v1::HeartbeatResponse> Beat() {
    dfv::v1::HeartbeatRequest request;
    request.set_worker_id(id_);
    for (const dfv::v1::Assignment& a : running_) {
      dfv::v1::RunningAssignment* r = request.add_running();
      r->set_job_id(a.job_id());
      r->set_attempt(a.attempt());
      r->set_rank(a.rank());
    }
    auto response = coordinator_->Heartbeat(request);
    if (response.ok()) {
      for (const dfv::v1::Assignment& a : response->assignments()) running_.push_back(a);
    }
    return response;
  }

  // `batch`: ReportEventsRequest.batch (0: not numbered).
  absl::StatusOr<bool> Report(const dfv::v1::Assignment& a, std::vector<JobEvent> events,
                              int64_t batch = 0) {
    dfv::v1::ReportEventsRequest request;
    request.set_batch(batch);
    request.set_worker_id(id_);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    for (JobEvent& e : events) *request.add_events() = std::move(e);
    return coordinator_->ReportEvents(request);
  }

  absl::Status Complete(const dfv::v1::Assignment& a, dfv::v1::Outcome outcome,
                        const std::string& reason = "", bool retryable = false) {
    dfv::v1::CompleteAssignmentRequest request;
    request.set_retryable(retryable);
    request.set_worker_id(id_);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    request.set_outcome(outcome);
    request.set_reason(reason);
    absl::Status status = coordinator_->CompleteAssignment(request);
    // The trainer is gone whatever the answer.
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](const dfv::v1::Assignment& r) {
                                    return r.job_id() == a.job_id() && r.attempt() == a.attempt() &&
                                           r.rank() == a.rank();
                                  }),
                   running_.end());
    return status;
  }

  // Rank 0's trainer published where its rendezvous listens.
  absl::Status Publish(const dfv::v1::Assignment& a, const std::string& address) {
    dfv::v1::PublishRendezvousRequest request;
    request.set_worker_id(id_);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    request.set_address(address);
    return coordinator_->PublishRendezvous(request);
  }

  absl::StatusOr<dfv::v1::ArtifactInfo> Upload(const dfv::v1::Assignment& a, const std::string& name,
                                              dfv::v1::ArtifactKind kind, int64_t step,
                                              const std::string& data) {
    dfv::v1::UploadArtifactRequest::Header header;
    header.set_worker_id(id_);
    header.set_job_id(a.job_id());
    header.set_attempt(a.attempt());
    header.mutable_info()->set_name(name);
    header.mutable_info()->set_kind(kind);
    header.mutable_info()->set_step(step);
    header.mutable_info()->set_size(static_cast<int64_t>(data.size()));
    header.mutable_info()->set_checksum(Crc32Hex(Crc32(data)));
    auto upload = coordinator_->BeginUpload(header);
    if (!upload.ok()) return upload.status();
    absl::Status appended = (*upload)->Append(data);
    if (!appended.ok()) return appended;
    return coordinator_->FinishUpload(id_, std::move(*upload));
  }

  const std::string& id() const { return id_; }
  void set_id(const std::string& id) { id_ = id; }
  // The address it registers with (default 127.0.0.1:<port>).
  void set_address(const std::string& address) { address_ = address; }
  // The /metrics address it registers with (default none).
  void set_metrics_address(const std::string& address) { metrics_address_ = address; }
  std::vector<dfv::v1::Assignment>& running() { return running_; }
  // What the last Register's answer adopted.
  const std::vector<dfv::v1::RunningAssignment>& adopted() const { return adopted_; }
  // A restarted coordinator (on the same data folder) to talk to.
  void set_coordinator(Coordinator* coordinator) { coordinator_ = coordinator; }

 private:
  Coordinator* coordinator_;
  std::string name_;
  int slots_;
  std::string device_;
  std::string address_;
  std::string metrics_address_;
  std::string id_;
  std::vector<dfv::v1::Assignment> running_;
  std::vector<dfv::v1::RunningAssignment> adopted_;
};

// Advances `clock` past the lease TTL while `alive` keep heartbeating, then
// lets `coordinator` expire the others' leases.
inline void LoseWorkers(FakeClock& clock, Coordinator& coordinator, const std::vector<FakeWorker*>& alive = {}) {
  for (int i = 0; i < 6; ++i) {
    clock.AdvanceMs(1000);
    for (FakeWorker* worker : alive) ASSERT_TRUE(worker->Beat().ok());
  }
  coordinator.Tick();
}

}  // namespace dfv::server::testing

#endif  // DFV_TESTS_SERVER_FAKE_WORKER_H_
