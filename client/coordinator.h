// The coordinator as dfvctl sees it: the client-facing RPCs of
// proto/dfv.proto behind a small interface, so the verbs' logic (watching,
// downloading) is tested with fakes that feed events and chunks, and a gRPC
// implementation that talks to a real coordinator.
//
// Errors are absl::Status with the gRPC code kept (FromGrpcStatus), except
// that UNAVAILABLE reads "cannot reach coordinator at ADDR: ..." and a unary
// call past its deadline reads "coordinator at ADDR did not answer within
// ...". Streams have no deadline.
#ifndef DFV_CLIENT_COORDINATOR_H_
#define DFV_CLIENT_COORDINATOR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/tls.h"
#include "proto/dfv.grpc.pb.h"
#include "proto/dfv.pb.h"

namespace dfv::client {

// A server stream read one message at a time. Not thread-safe. Destroying a
// stream before Read returned false cancels the call.
template <typename T>
class MessageStream {
 public:
  virtual ~MessageStream() = default;
  // Reads the next message into `*out`; false at the end of the stream or
  // when it broke (Finish says which).
  virtual bool Read(T* out) = 0;
  // The stream's outcome; call once, after Read returned false. OK means
  // the server ended the stream normally.
  virtual absl::Status Finish() = 0;
};

using JobEventStream = MessageStream<v1::JobEvent>;
using ArtifactChunkStream = MessageStream<v1::ArtifactChunk>;

// The Coordinator service (client side). Implementations need not be
// thread-safe; dfvctl uses one from one thread.
class Coordinator {
 public:
  virtual ~Coordinator() = default;

  // "HOST:PORT" of the coordinator, for messages.
  virtual const std::string& address() const = 0;

  virtual absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitJobRequest& request) = 0;
  // The new evaluation job.
  virtual absl::StatusOr<v1::Job> EvaluateCheckpoint(const v1::EvaluateCheckpointRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& job_id) = 0;
  // GetJob that, while the coordinator is unreachable, waits up to `wait`
  // for it to come back instead of failing at once (gRPC wait_for_ready);
  // DEADLINE_EXCEEDED when it did not. Tells a watch when to reconnect.
  virtual absl::StatusOr<v1::Job> AwaitJob(const std::string& job_id, absl::Duration wait) = 0;
  virtual absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> CancelJob(const std::string& job_id,
                                            const std::string& reason) = 0;
  // Events with seq > after_seq, then live ones; ends when the job is final.
  virtual std::unique_ptr<JobEventStream> WatchJob(const std::string& job_id,
                                                   int64_t after_seq) = 0;
  virtual absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(const std::string& job_id) = 0;
  // The first chunk carries the artifact's info; data chunks follow.
  virtual std::unique_ptr<ArtifactChunkStream> GetArtifact(const std::string& job_id,
                                                           const std::string& name) = 0;
  virtual absl::StatusOr<v1::ListWorkersResponse> ListWorkers() = 0;
  virtual absl::StatusOr<v1::DeleteArtifactsResponse> DeleteArtifacts(const std::string& job_id) = 0;
  virtual absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage() = 0;
};

struct GrpcCoordinatorOptions {
  // HOST:PORT of the coordinator (IPv6 in brackets).
  std::string address = "127.0.0.1:7070";
  // TLS: the cluster CA (tls.ca) that signed the coordinator's certificate,
  // and optionally the name to check it against (tls.server_name); empty:
  // plaintext.
  rpc::TlsFiles tls;
  // Deadline of every unary call; streams have none.
  absl::Duration unary_timeout = absl::Seconds(10);
  // Sent as "authorization: Bearer <token>" on every call when not empty
  // (read from --token-file / $DFV_TOKEN_FILE, never from a flag value).
  std::string token;
};

// A Coordinator over a gRPC channel (common/rpc MakeChannel). Creating it
// does not connect; the first call does.
class GrpcCoordinator final : public Coordinator {
 public:
  // INVALID_ARGUMENT naming --coordinator when the address is not HOST:PORT
  // with a port in 1..65535, or the timeout is not positive; naming the
  // --tls-* flag (and file) when the TLS files are incomplete, unreadable or
  // not PEM.
  static absl::StatusOr<std::unique_ptr<GrpcCoordinator>> Create(
      const GrpcCoordinatorOptions& options);

  const std::string& address() const override { return options_.address; }

  absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitJobRequest& request) override;
  absl::StatusOr<v1::Job> EvaluateCheckpoint(const v1::EvaluateCheckpointRequest& request) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) override;
  absl::StatusOr<v1::Job> AwaitJob(const std::string& job_id, absl::Duration wait) override;
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) override;
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id, const std::string& reason) override;
  std::unique_ptr<JobEventStream> WatchJob(const std::string& job_id, int64_t after_seq) override;
  absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(const std::string& job_id) override;
  std::unique_ptr<ArtifactChunkStream> GetArtifact(const std::string& job_id,
                                                   const std::string& name) override;
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers() override;
  absl::StatusOr<v1::DeleteArtifactsResponse> DeleteArtifacts(const std::string& job_id) override;
  absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage() override;

 private:
  using Stub = v1::Coordinator::Stub;
  GrpcCoordinator(GrpcCoordinatorOptions options, std::unique_ptr<v1::Coordinator::Stub> stub)
      : options_(std::move(options)), stub_(std::move(stub)) {}

  // Prepares `context` for any call: the bearer token, when there is one.
  // Every call goes through here.
  void PrepareCall(grpc::ClientContext* context) const;
  // Prepares `context` for a unary call: PrepareCall and the deadline.
  void PrepareUnary(grpc::ClientContext* context) const;
  // One unary call through PrepareUnary; a failure as CoordinatorCallStatus.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                                 const Request& request);

  GrpcCoordinatorOptions options_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

// The status dfvctl reports for a failed call to the coordinator at
// `address`: the code kept, UNAVAILABLE and DEADLINE_EXCEEDED reworded to
// name the address (see the file comment).
absl::Status CoordinatorCallStatus(const grpc::Status& status, const std::string& address,
                                   absl::Duration unary_timeout);

template <typename Request, typename Response>
absl::StatusOr<Response> GrpcCoordinator::Unary(
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*), const Request& request) {
  grpc::ClientContext context;
  PrepareUnary(&context);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return CoordinatorCallStatus(status, address(), options_.unary_timeout);
  return response;
}

}  // namespace dfv::client

#endif  // DFV_CLIENT_COORDINATOR_H_
