#include "worker/daemon/coordinator_link.h"

#include <chrono>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/rpc/rpc.h"

namespace dfv::daemon {
namespace {

// Unary calls give up after this; the runner retries what matters.
constexpr auto kCallTimeout = std::chrono::seconds(20);
// Register and heartbeat give up sooner: the daemon retries them on its own
// schedule, and a heartbeat stuck for long would let the lease expire unseen.
constexpr auto kSessionCallTimeout = std::chrono::seconds(5);

void SetDeadline(grpc::ClientContext& context, std::chrono::seconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

// The fields by which a worker names one rank of one attempt, common to the
// requests about an assignment.
template <typename Request>
void SetAssignment(Request& request, const std::string& worker_id, const AssignmentKey& key) {
  request.set_worker_id(worker_id);
  request.set_job_id(key.job_id);
  request.set_attempt(key.attempt);
  request.set_rank(key.rank);
}

}  // namespace

GrpcCoordinatorLink::GrpcCoordinatorLink(std::shared_ptr<grpc::Channel> channel)
    : gateway_(v1::WorkerGateway::NewStub(channel)) {}

std::string GrpcCoordinatorLink::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

absl::StatusOr<v1::RegisterWorkerResponse> GrpcCoordinatorLink::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  v1::RegisterWorkerResponse response;
  grpc::ClientContext context;
  SetDeadline(context, kSessionCallTimeout);
  absl::Status status = rpc::FromGrpcStatus(gateway_->RegisterWorker(&context, request, &response));
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  worker_id_ = response.worker_id();
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> GrpcCoordinatorLink::Heartbeat(const v1::HeartbeatRequest& request) {
  v1::HeartbeatRequest with_id = request;
  with_id.set_worker_id(worker_id());
  v1::HeartbeatResponse response;
  grpc::ClientContext context;
  SetDeadline(context, kSessionCallTimeout);
  absl::Status status = rpc::FromGrpcStatus(gateway_->Heartbeat(&context, with_id, &response));
  if (!status.ok()) return status;
  return response;
}

absl::Status GrpcCoordinatorLink::ReportEvents(const AssignmentKey& key, int64_t batch,
                                               const std::vector<v1::JobEvent>& events, bool* cancel) {
  v1::ReportEventsRequest request;
  SetAssignment(request, worker_id(), key);
  request.set_batch(batch);
  for (const v1::JobEvent& event : events) *request.add_events() = event;
  v1::ReportEventsResponse response;
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::duration_cast<std::chrono::seconds>(kCallTimeout));
  absl::Status status = rpc::FromGrpcStatus(gateway_->ReportEvents(&context, request, &response));
  if (status.ok()) *cancel = response.cancel();
  return status;
}

absl::Status GrpcCoordinatorLink::UploadArtifact(const AssignmentKey& key, v1::ArtifactInfo info,
                                                 const std::string& path) {
  // Read once to learn size and checksum (the header comes first), then stream.
  auto contents = ReadFileToString(path);
  if (!contents.ok()) return contents.status();
  info.set_size(static_cast<int64_t>(contents->size()));
  info.set_checksum(Crc32Hex(Crc32(*contents)));
  info.set_attempt(key.attempt);

  grpc::ClientContext context;
  // Large checkpoints on a slow link: scale the deadline with the size.
  SetDeadline(context, std::chrono::seconds(30 + static_cast<int64_t>(contents->size() >> 20)));
  v1::UploadArtifactResponse response;
  auto writer = gateway_->UploadArtifact(&context, &response);
  v1::UploadArtifactRequest header;
  header.mutable_header()->set_worker_id(worker_id());
  header.mutable_header()->set_job_id(key.job_id);
  header.mutable_header()->set_attempt(key.attempt);
  *header.mutable_header()->mutable_info() = info;
  bool ok = writer->Write(header);
  for (size_t offset = 0; ok && offset < contents->size(); offset += rpc::kArtifactChunkBytes) {
    v1::UploadArtifactRequest chunk;
    chunk.set_data(contents->substr(offset, rpc::kArtifactChunkBytes));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  absl::Status status = rpc::FromGrpcStatus(writer->Finish());
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("uploading ", info.name(), ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status GrpcCoordinatorLink::PublishRendezvous(const AssignmentKey& key, const std::string& address) {
  v1::PublishRendezvousRequest request;
  SetAssignment(request, worker_id(), key);
  request.set_address(address);
  v1::PublishRendezvousResponse response;
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::duration_cast<std::chrono::seconds>(kCallTimeout));
  return rpc::FromGrpcStatus(gateway_->PublishRendezvous(&context, request, &response));
}

absl::Status GrpcCoordinatorLink::CompleteAssignment(const AssignmentKey& key, v1::Outcome outcome,
                                                     const std::string& reason, bool retryable) {
  v1::CompleteAssignmentRequest request;
  SetAssignment(request, worker_id(), key);
  request.set_outcome(outcome);
  request.set_reason(reason);
  request.set_retryable(retryable);
  v1::CompleteAssignmentResponse response;
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::duration_cast<std::chrono::seconds>(kCallTimeout));
  return rpc::FromGrpcStatus(gateway_->CompleteAssignment(&context, request, &response));
}

absl::Status GrpcCoordinatorLink::FetchCheckpoint(const std::string& job_id, int32_t attempt,
                                                  const std::string& name, const std::string& dest_path) {
  v1::FetchCheckpointRequest request;
  request.set_worker_id(worker_id());
  request.set_job_id(job_id);
  request.set_attempt(attempt);
  request.set_name(name);
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::seconds(300));
  auto reader = gateway_->FetchCheckpoint(&context, request);
  v1::ArtifactChunk chunk;
  v1::ArtifactInfo info;
  bool have_info = false;
  std::string data;
  while (reader->Read(&chunk)) {
    if (!have_info && chunk.has_info()) {
      info = chunk.info();
      have_info = true;
    }
    data += chunk.data();
  }
  absl::Status status = rpc::FromGrpcStatus(reader->Finish());
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("downloading ", name, " of ", job_id, ": ", status.message()));
  }
  if (!have_info) return absl::DataLossError(absl::StrCat("downloading ", name, ": no artifact header"));
  if (static_cast<int64_t>(data.size()) != info.size() || Crc32Hex(Crc32(data)) != info.checksum()) {
    return absl::DataLossError(absl::StrCat("downloading ", name, ": got ", data.size(), " bytes with ",
                                            Crc32Hex(Crc32(data)), ", expected ", info.size(), " bytes with ",
                                            info.checksum()));
  }
  return WriteFileAtomically(dest_path, data);
}

}  // namespace dfv::daemon
