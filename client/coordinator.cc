#include "client/coordinator.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/bearer_token.h"
#include "common/rpc/rpc.h"
#include "common/rpc/tls.h"
#include "common/status_macros.h"

namespace dfv::client {
namespace {

// A server stream over a gRPC ClientReader. Owns the call's context, which
// must outlive the reader.
template <typename T>
class GrpcStream final : public MessageStream<T> {
 public:
  template <typename Start>
  GrpcStream(std::string address, Start start) : address_(std::move(address)) {
    reader_ = start(&context_);
  }

  ~GrpcStream() override {
    if (finished_) return;
    // Abandoned early (an error on our side): cancel the call and drain it so
    // the reader is finished before it is destroyed.
    context_.TryCancel();
    T ignored;
    while (reader_->Read(&ignored)) {
    }
    reader_->Finish();
  }

  bool Read(T* out) override { return !finished_ && reader_->Read(out); }

  absl::Status Finish() override {
    if (finished_) return absl::FailedPreconditionError("stream already finished");
    finished_ = true;
    return CoordinatorCallStatus(reader_->Finish(), address_, absl::ZeroDuration());
  }

 private:
  std::string address_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<T>> reader_;
  bool finished_ = false;
};

}  // namespace

absl::Status CoordinatorCallStatus(const grpc::Status& status, const std::string& address,
                                   absl::Duration unary_timeout) {
  if (status.ok()) return absl::OkStatus();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach coordinator at ", address, ": ", status.error_message()));
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      unary_timeout > absl::ZeroDuration()) {
    return absl::DeadlineExceededError(absl::StrCat("coordinator at ", address,
                                                    " did not answer within ",
                                                    absl::FormatDuration(unary_timeout)));
  }
  return rpc::FromGrpcStatus(status);
}

absl::StatusOr<std::unique_ptr<GrpcCoordinator>> GrpcCoordinator::Create(
    const GrpcCoordinatorOptions& options) {
  auto host_port = rpc::ParseHostPort(options.address, "--coordinator");
  if (!host_port.ok()) return host_port.status();
  if (host_port->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--coordinator: '", options.address, "' needs a port in 1..65535"));
  }
  if (options.unary_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the call timeout must be positive");
  }
  auto channel = rpc::MakeChannel(options.address, options.tls);
  if (!channel.ok()) return channel.status();
  auto stub = v1::Coordinator::NewStub(*channel);
  return std::unique_ptr<GrpcCoordinator>(new GrpcCoordinator(options, std::move(stub)));
}

void GrpcCoordinator::PrepareCall(grpc::ClientContext* context) const {
  // Metadata rather than call credentials: gRPC sends call credentials only
  // over TLS, and a loopback coordinator without TLS may still want tokens.
  if (!options_.token.empty()) {
    context->AddMetadata(rpc::kAuthorizationKey, absl::StrCat(rpc::kBearerPrefix, options_.token));
  }
}

void GrpcCoordinator::PrepareUnary(grpc::ClientContext* context) const {
  PrepareCall(context);
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.unary_timeout));
}

absl::StatusOr<v1::Job> GrpcCoordinator::SubmitJob(const v1::SubmitJobRequest& request) {
  DFV_ASSIGN_OR_RETURN(v1::SubmitJobResponse response, Unary(&Stub::SubmitJob, request));
  return std::move(*response.mutable_job());
}

absl::StatusOr<v1::Job> GrpcCoordinator::EvaluateCheckpoint(const v1::EvaluateCheckpointRequest& request) {
  DFV_ASSIGN_OR_RETURN(v1::EvaluateCheckpointResponse response, Unary(&Stub::EvaluateCheckpoint, request));
  return std::move(*response.mutable_job());
}

absl::StatusOr<v1::Job> GrpcCoordinator::GetJob(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return Unary(&Stub::GetJob, request);
}

absl::StatusOr<v1::Job> GrpcCoordinator::AwaitJob(const std::string& job_id, absl::Duration wait) {
  grpc::ClientContext context;
  // Fail-fast calls on a channel in reconnect backoff fail with the old
  // error before the channel tries again; waiting for readiness notices the
  // coordinator's return as soon as the channel reconnects.
  PrepareCall(&context);
  context.set_wait_for_ready(true);
  context.set_deadline(absl::ToChronoTime(absl::Now() + wait));
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status status = stub_->GetJob(&context, request, &job);
  if (!status.ok()) return CoordinatorCallStatus(status, address(), wait);
  return job;
}

absl::StatusOr<v1::ListJobsResponse> GrpcCoordinator::ListJobs(const v1::ListJobsRequest& request) {
  return Unary(&Stub::ListJobs, request);
}

absl::StatusOr<v1::Job> GrpcCoordinator::CancelJob(const std::string& job_id,
                                                   const std::string& reason) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  request.set_reason(reason);
  DFV_ASSIGN_OR_RETURN(v1::CancelJobResponse response, Unary(&Stub::CancelJob, request));
  return std::move(*response.mutable_job());
}

std::unique_ptr<JobEventStream> GrpcCoordinator::WatchJob(const std::string& job_id,
                                                          int64_t after_seq) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_seq(after_seq);
  return std::make_unique<GrpcStream<v1::JobEvent>>(
      address(), [&](grpc::ClientContext* context) {
        PrepareCall(context);
        return stub_->WatchJob(context, request);
      });
}

absl::StatusOr<v1::ListArtifactsResponse> GrpcCoordinator::ListArtifacts(
    const std::string& job_id) {
  v1::ListArtifactsRequest request;
  request.set_job_id(job_id);
  return Unary(&Stub::ListArtifacts, request);
}

std::unique_ptr<ArtifactChunkStream> GrpcCoordinator::GetArtifact(const std::string& job_id,
                                                                  const std::string& name) {
  v1::GetArtifactRequest request;
  request.set_job_id(job_id);
  request.set_name(name);
  return std::make_unique<GrpcStream<v1::ArtifactChunk>>(
      address(),
      [&](grpc::ClientContext* context) {
        PrepareCall(context);
        return stub_->GetArtifact(context, request);
      });
}

absl::StatusOr<v1::ListWorkersResponse> GrpcCoordinator::ListWorkers() {
  return Unary(&Stub::ListWorkers, v1::ListWorkersRequest());
}

absl::StatusOr<v1::DeleteArtifactsResponse> GrpcCoordinator::DeleteArtifacts(const std::string& job_id) {
  v1::DeleteArtifactsRequest request;
  request.set_job_id(job_id);
  return Unary(&Stub::DeleteArtifacts, request);
}

absl::StatusOr<v1::CollectGarbageResponse> GrpcCoordinator::CollectGarbage() {
  return Unary(&Stub::CollectGarbage, v1::CollectGarbageRequest());
}

}  // namespace dfv::client
