// The worker daemon: registers with the coordinator, renews its lease with
// heartbeats, starts an AssignmentRunner (one trainer process) per
// assignment it is given, cancels the ones it is told to, and serves gRPC
// health checking on its own address.
#ifndef DFV_WORKER_DAEMON_DAEMON_H_
#define DFV_WORKER_DAEMON_DAEMON_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/daemon/assignment_runner.h"
#include "worker/daemon/coordinator_link.h"

namespace dfv::daemon {

struct WorkerDaemonOptions {
  // The coordinator's HOST:PORT.
  std::string coordinator;
  // Where this daemon's health service listens; port 0 picks a free port.
  std::string listen = "127.0.0.1:0";
  // Unique among live workers; default "<hostname>-<pid>".
  std::string name;
  // Assignments run at once.
  int slots = 1;
  // "cpu" or "cuda".
  std::string device = "cpu";
  // Assignment folders go under here; default "dfv-work/<name>".
  std::string work_dir;
  // The trainer command (see RunnerOptions::trainer_command).
  std::vector<std::string> trainer_command;
  // Written with the bound address once serving and registered.
  std::string ready_file;
  // Trainer SIGTERM -> SIGKILL grace on cancel.
  absl::Duration cancel_grace = absl::Seconds(3);
};

class WorkerDaemon {
 public:
  // Validates the options and starts the health server. INVALID_ARGUMENT
  // names a bad option; UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerDaemon>> Create(WorkerDaemonOptions options);

  ~WorkerDaemon();

  // Registers (retrying while the coordinator is unreachable), writes the
  // ready file, then heartbeats and runs assignments until Stop(). On stop,
  // running trainers are killed; the coordinator reschedules their jobs when
  // this worker's lease expires.
  absl::Status Run();

  // Makes Run() return soon. Thread-safe.
  void Stop();

  // The bound HOST:PORT of the health service.
  const std::string& address() const { return address_; }

 private:
  explicit WorkerDaemon(WorkerDaemonOptions options);
  absl::Status Register();
  // One heartbeat round; NOT_FOUND when the session has expired.
  absl::Status Heartbeat();
  void StartAssignment(const v1::Assignment& assignment);
  std::string AssignmentDir(const v1::Assignment& assignment) const;
  bool WaitForStop(absl::Duration timeout);

  WorkerDaemonOptions options_;
  std::string address_;
  grpc::CallbackGenericService unimplemented_;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<GrpcCoordinatorLink> link_;
  absl::Duration heartbeat_interval_ = absl::Milliseconds(500);

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the Run() thread.
  std::vector<std::unique_ptr<AssignmentRunner>> runners_;
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_DAEMON_H_
