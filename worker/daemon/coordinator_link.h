// What the worker daemon and its assignment runners need from the
// coordinator, behind a small interface so both are tested without gRPC.
// GrpcCoordinatorLink is the real one over WorkerGateway / Coordinator.
#ifndef DFV_WORKER_DAEMON_COORDINATOR_LINK_H_
#define DFV_WORKER_DAEMON_COORDINATOR_LINK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/assignment_key.h"  // which rank of which attempt a call is about
#include "proto/dfv.grpc.pb.h"

namespace dfv::daemon {

// The link owns the session: RegisterWorker starts one and the link quotes
// its worker id in every later call that names the worker (the daemon never
// handles the id), so after a re-registration the runners' calls carry the
// new id too.
//
// Thread-safe: the daemon's thread and several runners call it at once.
// Errors are the coordinator's status (UNAVAILABLE or DEADLINE_EXCEEDED when
// it cannot be reached).
class CoordinatorLink {
 public:
  virtual ~CoordinatorLink() = default;
  // Registers this worker and starts a new session with the worker id of
  // the response, which the link keeps for every later call.
  virtual absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request) = 0;
  // Renews the session's lease: `request` lists the running assignments;
  // the link sets its worker_id. The response carries assignments to start
  // and cancels. NOT_FOUND when the session has expired (register again).
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) = 0;
  // Forwards events (payload only) as batch number `batch` of this rank (see
  // ReportEventsRequest.batch; 0: not numbered). Sets *cancel when the
  // coordinator says the attempt is over and the rank must stop.
  virtual absl::Status ReportEvents(const AssignmentKey& key, int64_t batch,
                                    const std::vector<v1::JobEvent>& events, bool* cancel) = 0;
  // Uploads the file at `path` as artifact `info` (name, kind, step); the
  // link fills in size and checksum.
  virtual absl::Status UploadArtifact(const AssignmentKey& key, v1::ArtifactInfo info,
                                      const std::string& path) = 0;
  // `retryable`: a FAILED outcome not caused by the job (see the proto).
  virtual absl::Status CompleteAssignment(const AssignmentKey& key, v1::Outcome outcome,
                                          const std::string& reason, bool retryable) = 0;
  // Rank 0 of a multi-rank attempt: the HOST:PORT where the attempt's other
  // ranks meet it (WorkerGateway.PublishRendezvous); the coordinator
  // delivers the other ranks once it has it.
  virtual absl::Status PublishRendezvous(const AssignmentKey& key, const std::string& address) = 0;
  // Downloads checkpoint `name` that attempt `attempt` of `job_id` resumes
  // from (WorkerGateway.FetchCheckpoint; this worker holds a rank of it) to
  // `dest_path` (written atomically, checksum verified: DATA_LOSS when it does
  // not match).
  virtual absl::Status FetchCheckpoint(const std::string& job_id, int32_t attempt, const std::string& name,
                                       const std::string& dest_path) = 0;
};

// The gRPC link. The worker id changes when the daemon registers again.
class GrpcCoordinatorLink : public CoordinatorLink {
 public:
  explicit GrpcCoordinatorLink(std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request) override;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override;
  absl::Status ReportEvents(const AssignmentKey& key, int64_t batch, const std::vector<v1::JobEvent>& events,
                            bool* cancel) override;
  absl::Status UploadArtifact(const AssignmentKey& key, v1::ArtifactInfo info, const std::string& path) override;
  absl::Status CompleteAssignment(const AssignmentKey& key, v1::Outcome outcome,
                                  const std::string& reason, bool retryable) override;
  absl::Status PublishRendezvous(const AssignmentKey& key, const std::string& address) override;
  absl::Status FetchCheckpoint(const std::string& job_id, int32_t attempt, const std::string& name,
                               const std::string& dest_path) override;

 private:
  std::string worker_id() const ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<v1::WorkerGateway::Stub> gateway_;
  mutable absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_COORDINATOR_LINK_H_
