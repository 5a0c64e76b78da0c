// The coordinator's Prometheus metrics: the "Coordinator" table of the
// metrics contract (issue 13), every family registered once here and its
// handles kept, so nothing on a hot path adds a series.
//
// Three kinds of figures:
// - Events (counters, histograms): the Coordinator calls the methods below
//   where they happen (submissions, final states, requeues, uploads, ...).
// - State (gauges: jobs by state, the queue, workers, slots, stored bytes,
//   watchers): computed at scrape time from one CoordinatorState snapshot,
//   which the Coordinator provides through SetStateSource.
// - RPCs (grpc_server_handled_total, grpc_server_handling_seconds): one gRPC
//   server interceptor (NewRpcInterceptorFactory) times every call of the
//   services of proto/dfv.proto, unary and streaming. Label values follow
//   go-grpc-prometheus: grpc_service is the full service name
//   ("dfv.v1.Coordinator", "dfv.v1.WorkerGateway"), grpc_method the method
//   ("SubmitJob"), grpc_code the Go name of the status code ("OK",
//   "InvalidArgument", "Canceled", ...). Every method x code series exists
//   from the start (at 0), so rate() and absent() work before the first
//   error. Calls of other services (gRPC health checking) are not counted.
//
// Label values are bounded: job states, worker states, slot states, restart
// reasons, deletion reasons, the services' methods and the 17 status codes.
//
// Thread-safety: all methods are thread-safe. The event methods and the
// interceptor only touch atomics (no lock), so the Coordinator calls them
// under its mutex. Collect holds its own mutex while it calls the state
// source, so the lock order is: this object's mutex, then whatever the
// source takes (the Coordinator's); the source must never call Collect or
// SetStateSource.
#ifndef DFV_SERVER_METRICS_H_
#define DFV_SERVER_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/dfv.pb.h"
#include "server/retention.h"
#include "server/worker_registry.h"

namespace dfv::server {

// Why an attempt ended and its job went back to the queue: the `reason`
// label of dfv_job_restarts_total. Decided where the attempt is ended, never
// parsed from the reason text.
enum class RestartReason {
  kWorkerLost,            // a worker's lease expired, or it registered again
  kRankFailed,            // a rank failed with a retryable error
  kRankCancelled,         // a rank was cancelled without a cancel request
  kRendezvous,            // not every rank started in time (the backstop)
  kCoordinatorRestarted,  // a coordinator restart interrupted the attempt
};
inline constexpr int kRestartReasonCount = 5;
// "worker_lost", "rank_failed", "rank_cancelled", "rendezvous",
// "coordinator_restarted".
const char* RestartReasonLabel(RestartReason reason);

// What the state gauges show, taken in one piece (Coordinator::MetricsState).
struct CoordinatorState {
  // Jobs by state, indexed by dfv::v1::JobState (QUEUED .. CANCELLED).
  std::array<int64_t, dfv::v1::JobState_ARRAYSIZE> jobs{};
  // How long the job that has waited longest in the queue has waited since
  // it (last) became QUEUED; 0 with an empty queue.
  double oldest_queued_seconds = 0;
  WorkerCounts workers;
  int64_t artifact_stored_bytes = 0;
  // Open WatchJob streams (subscriptions to a job's events).
  int64_t watchers = 0;
  // Free bytes on the data folder's file system; -1 when unknown.
  int64_t data_available_bytes = -1;
};

class CoordinatorMetrics : public prometheus::Collectable {
 public:
  // Registers every family on a registry of its own.
  CoordinatorMetrics();
  ~CoordinatorMetrics() override;
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  // ---- Events

  // SubmitJob accepted a job.
  void JobSubmitted() { submitted_->Increment(); }
  // A job reached `state` (SUCCEEDED, FAILED or CANCELLED; others ignored).
  void JobFinished(dfv::v1::JobState state);
  // A job became RUNNING for the first time, `seconds` after its submission.
  void JobFirstRunning(double seconds) { submit_to_running_->Observe(seconds); }
  // Worker leases that ran out.
  void LeasesExpired(int64_t count) { leases_expired_->Increment(static_cast<double>(count)); }
  // An attempt ended and its job was requeued.
  void JobRequeued(RestartReason reason);
  // An upload of `bytes` was committed.
  void ArtifactWritten(int64_t bytes) { artifact_written_->Increment(static_cast<double>(bytes)); }
  // Artifact files were removed (retention, dfvctl delete, orphans).
  void ArtifactsDeleted(DeleteReason reason, int64_t files, int64_t bytes) {
    artifacts_deleted_[static_cast<int>(reason)]->Increment(static_cast<double>(files));
    artifact_deleted_bytes_[static_cast<int>(reason)]->Increment(static_cast<double>(bytes));
  }
  // Job events were appended (and committed).
  void EventsAppended(int64_t count) { events_appended_->Increment(static_cast<double>(count)); }
  // A SQLite write transaction committed after `seconds` (BEGIN to COMMIT).
  void StoreCommitted(double seconds) { store_commit_->Observe(seconds); }

  // ---- State

  using StateSource = std::function<CoordinatorState()>;
  // Where the state gauges come from; nullptr stops reading it (the gauges
  // then keep their last values). Waits for a Collect in progress, so after
  // it returns the old source is not called again.
  void SetStateSource(StateSource source) ABSL_LOCKS_EXCLUDED(collect_mu_);

  // Sets the state gauges from one snapshot of the source, then returns
  // every family (what /metrics serves).
  std::vector<prometheus::MetricFamily> Collect() const override ABSL_LOCKS_EXCLUDED(collect_mu_);

  // ---- RPCs

  // The interceptor factory to register on the ServerBuilder. It refers to
  // this object, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcInterceptorFactory();

  // gRPC's status codes, OK (0) .. UNAUTHENTICATED (16).
  static constexpr int kGrpcCodes = 17;
  // The series of one method: a handled counter per status code, and the
  // latency histogram.
  struct RpcMethod {
    std::array<prometheus::Counter*, kGrpcCodes> handled{};  // by grpc::StatusCode
    prometheus::Histogram* seconds = nullptr;
  };
  // The method ("/dfv.v1.Coordinator/SubmitJob", as gRPC names it), or
  // nullptr when it is not one of the counted services' methods.
  const RpcMethod* FindRpcMethod(const std::string& full_method) const;

 private:
  const std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Counter* submitted_;
  std::array<prometheus::Counter*, dfv::v1::JobState_ARRAYSIZE> finished_{};  // final states only
  prometheus::Histogram* submit_to_running_;
  prometheus::Counter* leases_expired_;
  std::array<prometheus::Counter*, kRestartReasonCount> restarts_{};
  prometheus::Counter* artifact_written_;
  std::array<prometheus::Counter*, kDeleteReasonCount> artifacts_deleted_{};
  std::array<prometheus::Counter*, kDeleteReasonCount> artifact_deleted_bytes_{};
  prometheus::Counter* events_appended_;
  prometheus::Histogram* store_commit_;

  std::array<prometheus::Gauge*, dfv::v1::JobState_ARRAYSIZE> jobs_{};  // QUEUED .. CANCELLED
  prometheus::Gauge* queue_length_;
  prometheus::Gauge* queue_oldest_age_;
  prometheus::Gauge* workers_alive_;
  prometheus::Gauge* workers_lost_;
  prometheus::Gauge* slots_free_;
  prometheus::Gauge* slots_busy_;
  prometheus::Gauge* artifact_stored_;
  prometheus::Gauge* data_available_;
  prometheus::Gauge* watchers_;

  // Filled in the constructor, read-only afterwards (so lookups take no lock).
  std::map<std::string, RpcMethod, std::less<>> rpc_methods_;

  mutable absl::Mutex collect_mu_;
  StateSource source_ ABSL_GUARDED_BY(collect_mu_);
};

// Prometheus file-based service discovery: one target group per worker
// ([{"targets": ["HOST:PORT"], "labels": {"worker": "NAME"}}, ...]).
std::string PrometheusSdJson(const std::vector<MetricsTarget>& targets);

// Keeps a file-SD file in line with the workers' metrics endpoints,
// rewriting it (atomically) only when the set changes. Not thread-safe: one
// thread (the server's tick loop) owns it.
class PrometheusSdFile {
 public:
  explicit PrometheusSdFile(std::string path) : path_(std::move(path)) {}

  // Writes `targets` unless the file already holds them (the first call
  // always writes). On an error the next call tries again.
  absl::Status Update(const std::vector<MetricsTarget>& targets);

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  bool written_ = false;
  std::vector<MetricsTarget> last_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_METRICS_H_
