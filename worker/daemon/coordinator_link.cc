#include "worker/daemon/coordinator_link.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/rpc/rpc.h"
#include "common/status_macros.h"

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

// Reads a file once, in pieces of at most rpc::kArtifactChunkBytes, into a
// caller's buffer (whose capacity is reused). A piece's buffer is sized to
// what is left of the file (plus one byte, so a file that grew is still read
// to its end): a 1 MiB buffer for every 20 KiB grid cost the daemon more CPU
// (zeroing it, faulting its pages in) than the upload.
class ChunkReader {
 public:
  explicit ChunkReader(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    open_errno_ = fd_ < 0 ? errno : 0;
  }
  ~ChunkReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;

  // The file's size now (fstat).
  absl::StatusOr<int64_t> Size() {
    if (fd_ < 0) return Error("open", open_errno_);
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Error("fstat", errno);
    size_ = static_cast<int64_t>(st.st_size);
    return size_;
  }

  // The next piece in *out (empty at the end of the file). The file's size
  // is looked at again only when the reads reach it.
  absl::Status Next(std::string* out) {
    if (fd_ < 0) return Error("open", open_errno_);
    if (at_ >= size_) DFV_RETURN_IF_ERROR(Size().status());
    const int64_t left = std::max<int64_t>(0, size_ - at_) + 1;
    out->resize(static_cast<size_t>(std::min<int64_t>(left, rpc::kArtifactChunkBytes)));
    size_t filled = 0;
    while (filled < out->size()) {
      const ssize_t n = ::read(fd_, out->data() + filled, out->size() - filled);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error("read", errno);
      if (n == 0) break;
      filled += static_cast<size_t>(n);
    }
    out->resize(filled);
    at_ += static_cast<int64_t>(filled);
    return absl::OkStatus();
  }

 private:
  absl::Status Error(const char* what, int err) const {
    const std::string message = absl::StrCat(what, " ", path_, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
  }
  const std::string path_;
  const int fd_;
  int open_errno_ = 0;
  int64_t at_ = 0;     // bytes read so far
  int64_t size_ = -1;  // the file's size when last looked at
};

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
  // One pass over the file, never all of it in memory: the header declares
  // the size, and the checksum, summed while the file streams, goes in a
  // last message after the data. The pieces are read into one reused buffer
  // (reading a 200 MB checkpoint into a growing string and copying each
  // chunk out of it cost more CPU than the RPC itself).
  ChunkReader reader(path);
  DFV_ASSIGN_OR_RETURN(const int64_t size, reader.Size());
  info.set_size(size);
  info.clear_checksum();
  info.set_attempt(key.attempt);

  grpc::ClientContext context;
  // Large checkpoints on a slow link: scale the deadline with the size.
  SetDeadline(context, std::chrono::seconds(30 + (size >> 20)));
  v1::UploadArtifactResponse response;
  auto writer = gateway_->UploadArtifact(&context, &response);
  v1::UploadArtifactRequest header;
  header.mutable_header()->set_worker_id(worker_id());
  header.mutable_header()->set_job_id(key.job_id);
  header.mutable_header()->set_attempt(key.attempt);
  *header.mutable_header()->mutable_info() = info;
  bool ok = writer->Write(header);
  v1::UploadArtifactRequest chunk;
  int64_t sent = 0;
  uint32_t crc = 0;
  absl::Status read = absl::OkStatus();
  while (ok) {
    read = reader.Next(chunk.mutable_data());
    if (!read.ok() || chunk.data().empty()) break;
    sent += static_cast<int64_t>(chunk.data().size());
    crc = Crc32Update(crc, chunk.data());
    ok = writer->Write(chunk);
  }
  if (read.ok() && ok && sent != size) {
    // The coordinator would refuse it; say why.
    read = absl::DataLossError(absl::StrCat(path, " changed while it was uploaded"));
  }
  if (!read.ok()) {
    context.TryCancel();
    writer->Finish().ok();  // cancelled: the coordinator drops the partial file
    return absl::Status(read.code(), absl::StrCat("uploading ", info.name(), ": ", read.message()));
  }
  if (ok) {
    v1::UploadArtifactRequest last;
    last.set_checksum(Crc32Hex(crc));
    writer->Write(last);
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
