#include "server/metrics.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "proto/enums.h"

namespace dfv::server {
namespace {

// go-grpc-prometheus labels codes with Go's names for them (codes.Code's
// String()), so dashboards and alerts written for it work unchanged.
constexpr std::array<const char*, CoordinatorMetrics::kGrpcCodes> kGrpcCodeLabels = {
    "OK",       "Canceled",          "Unknown",        "InvalidArgument",  "DeadlineExceeded",
    "NotFound", "AlreadyExists",     "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",        "Unimplemented",  "Internal",         "Unavailable",
    "DataLoss", "Unauthenticated"};

// From a quick RPC to a long WatchJob stream.
const prometheus::Histogram::BucketBoundaries kRpcBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
// The contract: 0.05 .. 600 s.
const prometheus::Histogram::BucketBoundaries kSubmitToRunningBuckets = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
// A WAL commit without fsync takes tens of microseconds; a checkpointing one
// milliseconds.
const prometheus::Histogram::BucketBoundaries kCommitBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};

constexpr RestartReason kRestartReasons[kRestartReasonCount] = {
    RestartReason::kWorkerLost, RestartReason::kRankFailed, RestartReason::kRankCancelled,
    RestartReason::kRendezvous, RestartReason::kCoordinatorRestarted};

// Times one call: from the interceptor's creation (the call arrived) to the
// status being sent. A call that ends without sending one (the client went
// away first) counts as Canceled.
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(const CoordinatorMetrics::RpcMethod* method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}

  ~RpcMetricsInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!recorded_ &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    const int index = static_cast<int>(code);
    if (index >= 0 && index < static_cast<int>(method_->handled.size())) {
      method_->handled[index]->Increment();
    } else {
      method_->handled[grpc::StatusCode::UNKNOWN]->Increment();
    }
    method_->seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  const CoordinatorMetrics::RpcMethod* const method_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;  // batches of one call do not run concurrently
};

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(const CoordinatorMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const CoordinatorMetrics::RpcMethod* method =
        info->method() != nullptr ? metrics_->FindRpcMethod(info->method()) : nullptr;
    return method != nullptr ? new RpcMetricsInterceptor(method) : nullptr;
  }

 private:
  const CoordinatorMetrics* const metrics_;
};

}  // namespace

const char* RestartReasonLabel(RestartReason reason) {
  switch (reason) {
    case RestartReason::kWorkerLost: return "worker_lost";
    case RestartReason::kRankFailed: return "rank_failed";
    case RestartReason::kRankCancelled: return "rank_cancelled";
    case RestartReason::kRendezvous: return "rendezvous";
    case RestartReason::kCoordinatorRestarted: return "coordinator_restarted";
  }
  return "worker_lost";
}

CoordinatorMetrics::CoordinatorMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  auto& jobs = prometheus::BuildGauge()
                   .Name("dfv_jobs")
                   .Help("Jobs in each state (final states counted since the database was created).")
                   .Register(r);
  auto& finished = prometheus::BuildCounter()
                       .Name("dfv_jobs_finished_total")
                       .Help("Jobs that reached a final state.")
                       .Register(r);
  for (int state = dfv::v1::JobState_MIN; state <= dfv::v1::JobState_MAX; ++state) {
    const auto job_state = static_cast<dfv::v1::JobState>(state);
    if (job_state == dfv::v1::JOB_STATE_UNSPECIFIED) continue;
    const prometheus::Labels labels = {{"state", dfv::v1::JobState_Name(job_state)}};
    jobs_[state] = &jobs.Add(labels);
    if (dfv::v1::IsFinalState(job_state)) finished_[state] = &finished.Add(labels);
  }
  queue_length_ = &prometheus::BuildGauge()
                       .Name("dfv_queue_length")
                       .Help("Jobs QUEUED.")
                       .Register(r)
                       .Add({});
  queue_oldest_age_ = &prometheus::BuildGauge()
                           .Name("dfv_queue_oldest_age_seconds")
                           .Help("How long the longest-waiting QUEUED job has waited since it was "
                                 "(last) queued; 0 when none is.")
                           .Register(r)
                           .Add({});
  submitted_ = &prometheus::BuildCounter()
                    .Name("dfv_jobs_submitted_total")
                    .Help("Jobs accepted by SubmitJob.")
                    .Register(r)
                    .Add({});
  submit_to_running_ = &prometheus::BuildHistogram()
                            .Name("dfv_job_submit_to_running_seconds")
                            .Help("Time from a job's submission to its first RUNNING.")
                            .Register(r)
                            .Add({}, kSubmitToRunningBuckets);
  auto& workers = prometheus::BuildGauge()
                      .Name("dfv_workers")
                      .Help("Worker sessions: alive, and lost but still listed.")
                      .Register(r);
  workers_alive_ = &workers.Add({{"state", "alive"}});
  workers_lost_ = &workers.Add({{"state", "lost"}});
  auto& slots = prometheus::BuildGauge()
                    .Name("dfv_worker_slots")
                    .Help("Slots of the live workers: free, and busy (held by an assignment).")
                    .Register(r);
  slots_free_ = &slots.Add({{"state", "free"}});
  slots_busy_ = &slots.Add({{"state", "busy"}});
  leases_expired_ = &prometheus::BuildCounter()
                         .Name("dfv_worker_leases_expired_total")
                         .Help("Worker leases that ran out (the worker was lost).")
                         .Register(r)
                         .Add({});
  auto& restarts = prometheus::BuildCounter()
                       .Name("dfv_job_restarts_total")
                       .Help("Attempts that ended with their job requeued, by reason.")
                       .Register(r);
  for (RestartReason reason : kRestartReasons) {
    restarts_[static_cast<int>(reason)] = &restarts.Add({{"reason", RestartReasonLabel(reason)}});
  }
  artifact_stored_ = &prometheus::BuildGauge()
                          .Name("dfv_artifact_stored_bytes")
                          .Help("Bytes of all artifacts in the store.")
                          .Register(r)
                          .Add({});
  artifact_written_ = &prometheus::BuildCounter()
                           .Name("dfv_artifact_written_bytes_total")
                           .Help("Bytes of artifact uploads committed.")
                           .Register(r)
                           .Add({});
  auto& deleted = prometheus::BuildCounter()
                      .Name("dfv_artifacts_deleted_total")
                      .Help("Artifact files removed, by reason (keep_last, deleted, orphan).")
                      .Register(r);
  auto& deleted_bytes = prometheus::BuildCounter()
                            .Name("dfv_artifact_deleted_bytes_total")
                            .Help("Bytes of artifact files removed, by reason (keep_last, deleted, orphan).")
                            .Register(r);
  for (DeleteReason reason : kDeleteReasons) {
    artifacts_deleted_[static_cast<int>(reason)] = &deleted.Add({{"reason", DeleteReasonLabel(reason)}});
    artifact_deleted_bytes_[static_cast<int>(reason)] = &deleted_bytes.Add({{"reason", DeleteReasonLabel(reason)}});
  }
  data_available_ = &prometheus::BuildGauge()
                         .Name("dfv_data_available_bytes")
                         .Help("Free bytes on the file system of the coordinator's data folder.")
                         .Register(r)
                         .Add({});
  events_appended_ = &prometheus::BuildCounter()
                          .Name("dfv_events_appended_total")
                          .Help("Job events appended to the event logs.")
                          .Register(r)
                          .Add({});
  watchers_ = &prometheus::BuildGauge()
                   .Name("dfv_watchers")
                   .Help("Open WatchJob streams.")
                   .Register(r)
                   .Add({});
  store_commit_ = &prometheus::BuildHistogram()
                       .Name("dfv_store_commit_seconds")
                       .Help("SQLite write transaction time, BEGIN to COMMIT.")
                       .Register(r)
                       .Add({}, kCommitBuckets);

  // Every method of every service in proto/dfv.proto, with every code.
  auto& handled = prometheus::BuildCounter()
                      .Name("grpc_server_handled_total")
                      .Help("RPCs completed on the server, by method and status code.")
                      .Register(r);
  auto& seconds = prometheus::BuildHistogram()
                      .Name("grpc_server_handling_seconds")
                      .Help("Time from an RPC's arrival to its status being sent.")
                      .Register(r);
  const google::protobuf::FileDescriptor* file = dfv::v1::JobState_descriptor()->file();
  for (int s = 0; s < file->service_count(); ++s) {
    const google::protobuf::ServiceDescriptor* service = file->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      const std::string& method_name = service->method(m)->name();
      const prometheus::Labels labels = {{"grpc_service", service->full_name()},
                                         {"grpc_method", method_name}};
      RpcMethod& method = rpc_methods_[absl::StrCat("/", service->full_name(), "/", method_name)];
      for (size_t code = 0; code < kGrpcCodeLabels.size(); ++code) {
        prometheus::Labels with_code = labels;
        with_code.emplace("grpc_code", kGrpcCodeLabels[code]);
        method.handled[code] = &handled.Add(with_code);
      }
      method.seconds = &seconds.Add(labels, kRpcBuckets);
    }
  }
}

CoordinatorMetrics::~CoordinatorMetrics() = default;

void CoordinatorMetrics::JobFinished(dfv::v1::JobState state) {
  if (state >= 0 && state < dfv::v1::JobState_ARRAYSIZE && finished_[state] != nullptr) {
    finished_[state]->Increment();
  }
}

void CoordinatorMetrics::JobRequeued(RestartReason reason) {
  restarts_[static_cast<int>(reason)]->Increment();
}

void CoordinatorMetrics::SetStateSource(StateSource source) {
  absl::MutexLock lock(&collect_mu_);
  source_ = std::move(source);
}

std::vector<prometheus::MetricFamily> CoordinatorMetrics::Collect() const {
  // One scrape at a time, so the gauges it returns come from one snapshot.
  absl::MutexLock lock(&collect_mu_);
  if (source_) {
    const CoordinatorState state = source_();
    for (int s = 0; s < dfv::v1::JobState_ARRAYSIZE; ++s) {
      if (jobs_[s] != nullptr) jobs_[s]->Set(static_cast<double>(state.jobs[s]));
    }
    queue_length_->Set(static_cast<double>(state.jobs[dfv::v1::QUEUED]));
    queue_oldest_age_->Set(state.oldest_queued_seconds);
    workers_alive_->Set(static_cast<double>(state.workers.alive));
    workers_lost_->Set(static_cast<double>(state.workers.lost));
    slots_free_->Set(static_cast<double>(state.workers.free_slots));
    slots_busy_->Set(static_cast<double>(state.workers.busy_slots));
    artifact_stored_->Set(static_cast<double>(state.artifact_stored_bytes));
    watchers_->Set(static_cast<double>(state.watchers));
    if (state.data_available_bytes >= 0) data_available_->Set(static_cast<double>(state.data_available_bytes));
  }
  return registry_->Collect();
}

const CoordinatorMetrics::RpcMethod* CoordinatorMetrics::FindRpcMethod(
    const std::string& full_method) const {
  auto it = rpc_methods_.find(full_method);
  return it == rpc_methods_.end() ? nullptr : &it->second;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CoordinatorMetrics::NewRpcInterceptorFactory() {
  return std::make_unique<RpcMetricsInterceptorFactory>(this);
}

// ---------------------------------------------------------------------------
// Prometheus file-based service discovery

std::string PrometheusSdJson(const std::vector<MetricsTarget>& targets) {
  nlohmann::json groups = nlohmann::json::array();
  for (const MetricsTarget& target : targets) {
    nlohmann::json group = nlohmann::json::object();
    group["targets"] = nlohmann::json::array({target.address});
    group["labels"] = {{"worker", target.worker}};
    groups.push_back(std::move(group));
  }
  return groups.dump(2) + "\n";
}

absl::Status PrometheusSdFile::Update(const std::vector<MetricsTarget>& targets) {
  if (written_ && targets == last_) return absl::OkStatus();
  absl::Status status = WriteFileAtomically(path_, PrometheusSdJson(targets));
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("--prometheus-sd-file: ", status.message()));
  }
  written_ = true;
  last_ = targets;
  return absl::OkStatus();
}

}  // namespace dfv::server
