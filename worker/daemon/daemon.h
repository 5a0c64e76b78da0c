// The worker daemon: registers with the coordinator, renews its lease with
// heartbeats, starts an AssignmentRunner (one trainer process) per
// assignment it is given, cancels the ones it is told to, serves gRPC
// health checking on its own address and Prometheus metrics on another
// (worker/daemon/metrics.h; GPU ones too on a cuda worker). Every call to the
// coordinator goes through a CoordinatorLink, so tests drive the daemon with
// a fake one.
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
#include "common/metrics/metrics_server.h"
#include "common/rpc/tls.h"
#include "worker/daemon/coordinator_link.h"
#include "worker/daemon/gpu_metrics.h"
#include "worker/daemon/metrics.h"

namespace dfv::daemon {

struct WorkerDaemonOptions {
  // The coordinator's HOST:PORT. Create(options) connects to it; with an
  // injected link it only names the coordinator in log lines.
  std::string coordinator;
  // Where this daemon's health service listens; port 0 picks a free port.
  // Without TLS a loopback address unless `insecure`.
  std::string listen = "127.0.0.1:0";
  // This worker's client certificate and key and the cluster CA: all three
  // or none (plaintext). With them the channel to the coordinator is mutual
  // TLS (the certificate's CN is the worker's identity there) and the health
  // service serves TLS with the same certificate. Re-read every
  // tls.refresh_interval.
  rpc::TlsFiles tls;
  // Allow a non-loopback listen (and metrics) address without TLS, with a
  // warning (--insecure).
  bool insecure = false;
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
  // The folders jobs may read their data sets from (common/data_roots.h):
  // Debian's data set packages' folder and `data` under the daemon's current
  // folder (where dataset.path "data/mnist" lies). Relative ones are made
  // absolute by Create; a job whose data lies elsewhere fails, not retried.
  std::vector<std::string> data_roots = {"/usr/share/datasets", "data"};
  // This host's data-plane address (--data-plane-address) or the interface
  // whose IPv4 address it is (--data-plane-interface; also handed to NCCL as
  // NCCL_SOCKET_IFNAME); at most one. Both empty: the trainers use the
  // address the coordinator gives rank 0 (this worker's --listen host).
  std::string data_plane_address;
  std::string data_plane_interface;
  // The host (name or address) the coordinator, Prometheus and the other
  // ranks reach this worker at (--advertise-host): its health service,
  // /metrics, and rank 0's default data-plane host. Empty: the --listen host;
  // when that is a wildcard (0.0.0.0, ::), the data-plane address, else this
  // machine's host name (which a container network resolves).
  std::string advertise_host;
  // Where /metrics is served (HOST:PORT, loopback unless `insecure`; port 0 picks a free
  // port); empty for no metrics server.
  std::string metrics_listen = "127.0.0.1:0";
  // How long a finished job's series stay on /metrics.
  absl::Duration metrics_job_grace = absl::Seconds(60);
  // Written once serving and registered: the bound address, then
  // "metrics HOST:PORT" when metrics are served.
  std::string ready_file;
  // Trainer SIGTERM -> SIGKILL grace on cancel.
  absl::Duration cancel_grace = absl::Seconds(3);
  // The wait between registration attempts while the coordinator is
  // unreachable.
  absl::Duration register_retry = absl::Seconds(1);
  // The most the reports waiting for the coordinator may take on this
  // worker's disk (under work_dir), split evenly among the slots; past it
  // the oldest metrics rows are dropped (see report_spool.h).
  int64_t spool_bytes = int64_t{256} << 20;
  // With slots > 1: pin each trainer to its slot's share of the cores this
  // daemon may use (common/cpu_cores.h CoreShare), so that trainers running
  // side by side never oversubscribe them; train.threads 0 then means the
  // share. With one slot, or false, trainers inherit the daemon's mask and
  // split it among their job's ranks on the host.
  bool share_cores = true;
  // Keep one trainer started ahead for every free slot (`assignment
  // --prestarted`, waiting on its stdin; pinned like its slot), and hand
  // the next assignment to it: a job's trainer then starts without paying
  // the process's start-up (about a second of CPU loading LibTorch). Each
  // one holds its memory (~170 MB resident with Debian's LibTorch) while
  // it waits. false: every assignment starts its own process.
  bool prestart_trainers = true;
};

class WorkerDaemon {
 public:
  // Validates the options, starts the health server and talks to the
  // coordinator at options.coordinator over gRPC. INVALID_ARGUMENT names a
  // bad option (a non-loopback listen address without TLS or --insecure;
  // TLS files incomplete, unreadable or not PEM: the flag and the file);
  // NOT_FOUND for a data-plane interface without an IPv4 address;
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerDaemon>> Create(WorkerDaemonOptions options);

  // The same over `link` (not null), which the daemon owns and which owns
  // the session (the worker id); options.coordinator may be empty.
  static absl::StatusOr<std::unique_ptr<WorkerDaemon>> Create(WorkerDaemonOptions options,
                                                              std::unique_ptr<CoordinatorLink> link);

  ~WorkerDaemon();

  // Registers (retrying while the coordinator is unreachable), writes the
  // ready file once, then heartbeats and runs assignments until Stop().
  // Heartbeats are long polls: the coordinator holds one up to the heartbeat
  // interval and answers as soon as it places a job here, so one beat
  // follows another at once (a coordinator that answers at once gets one
  // per interval) and Stop() may wait for one held beat.
  // Trainers keep running while the coordinator cannot be reached (their
  // reports wait in their runners' spools). When a heartbeat answers
  // NOT_FOUND (the session expired, or the coordinator restarted) the daemon
  // registers again listing the assignments it still runs; the coordinator
  // adopts those it agrees with and cancels the others in its heartbeat
  // answers. On stop, running trainers are killed; the coordinator
  // reschedules their jobs when this worker's lease expires. Call from one
  // thread at a time; errors only when the ready file cannot be written.
  absl::Status Run();

  // Makes Run() return soon. Thread-safe.
  void Stop();

  // The HOST:PORT the coordinator and Prometheus reach the health service at:
  // the bound port on the advertised host (WorkerDaemonOptions::advertise_host).
  const std::string& address() const { return address_; }
  // How the health service is exposed (TLS, loopback, or --insecure).
  rpc::ListenExposure exposure() const { return exposure_; }

  // The HOST:PORT of /metrics as reported to the coordinator (a wildcard
  // bound host replaced by the advertised one); empty when not served.
  const std::string& metrics_address() const { return metrics_address_; }

 private:
  WorkerDaemon(WorkerDaemonOptions options, std::unique_ptr<CoordinatorLink> link);
  absl::Status Register();
  // One heartbeat round, long-polled for up to the heartbeat interval
  // (HeartbeatRequest.wait_ms); true when it delivered assignments.
  // NOT_FOUND when the session has expired.
  absl::StatusOr<bool> Heartbeat();
  void StartAssignment(const v1::Assignment& assignment);
  std::string AssignmentDir(const v1::Assignment& assignment) const;
  bool WaitForStop(absl::Duration timeout);
  void UpdateSlotMetrics();
  // Starts a prestarted trainer for every free slot that has none (or whose
  // one has exited); failures are logged (assignments then start their own).
  void Prestart();
  // The CPUs of `slot`'s trainers; empty when the cores are not shared.
  std::vector<int> SlotCpus(int slot) const;
  // Drops the runners that reported their outcome.
  void ReapFinished();

  WorkerDaemonOptions options_;
  std::string address_;
  std::string metrics_address_;
  rpc::ListenExposure exposure_ = rpc::ListenExposure::kLoopback;
  grpc::CallbackGenericService unimplemented_;
  std::unique_ptr<grpc::Server> health_server_;
  // Outlive runners_ (declared after them), whose runners call them.
  std::unique_ptr<CoordinatorLink> link_;
  std::shared_ptr<WorkerMetrics> metrics_;
  std::shared_ptr<GpuCollector> gpu_metrics_;  // cuda workers only
  std::unique_ptr<metrics::MetricsServer> metrics_server_;  // serves the two above; null when off
  absl::Duration heartbeat_interval_ = absl::Milliseconds(500);
  // The CPUs this daemon may use (its affinity at Create); shared among the
  // slots when share_cores.
  std::vector<int> cpus_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the Run() thread.
  std::vector<std::unique_ptr<AssignmentRunner>> runners_;
  // By slot: the trainer started ahead for it (null: none); see
  // prestart_trainers. Killed with the daemon.
  std::vector<std::unique_ptr<Subprocess>> prestarted_;
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_DAEMON_H_
