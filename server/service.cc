#include "server/service.h"

#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/rpc/rpc.h"
#include "common/status_macros.h"
#include "proto/enums.h"
#include "server/artifact_store.h"

namespace dfv::server {
namespace {

// Bounds on free-text request fields, so one request cannot bloat the
// database or the logs.
constexpr size_t kMaxIdBytes = 128;
constexpr size_t kMaxSourceNameBytes = 1024;
constexpr int kMaxOverrides = 256;
constexpr size_t kMaxOverrideBytes = 4096;
constexpr size_t kMaxReasonBytes = 16 * 1024;
constexpr int kMaxEventsPerReport = 10000;
constexpr size_t kMaxMessageBytes = 64 * 1024;
constexpr int kMaxRunning = 4096;
constexpr int kMaxSlots = 1024;
constexpr size_t kMaxAddressBytes = 512;
// A watcher that falls behind is served from the log, not from memory.
constexpr size_t kMaxBufferedEvents = 1024;

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckId(const std::string& field, const std::string& value, const char* example) {
  if (value.empty()) return Invalid(field, "must not be empty");
  if (value.size() > kMaxIdBytes || !IsSafePathComponent(value)) {
    return Invalid(field, absl::StrCat("'", value.substr(0, kMaxIdBytes), "' is not a valid id (like ",
                                       example, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckJobId(const std::string& value, const std::string& field = "job_id") {
  return CheckId(field, value, "j-000001");
}

absl::Status CheckWorkerId(const std::string& value, const std::string& field = "worker_id") {
  return CheckId(field, value, "w-0123456789abcdef");
}

absl::Status CheckMaxBytes(const std::string& field, const std::string& value, size_t max) {
  if (value.size() > max) {
    return Invalid(field, absl::StrCat("is ", value.size(), " bytes; at most ", max, " are allowed"));
  }
  return absl::OkStatus();
}

// A request's "key.path=value" overrides (SubmitJob, EvaluateCheckpoint).
absl::Status CheckOverrides(const google::protobuf::RepeatedPtrField<std::string>& overrides) {
  if (overrides.size() > kMaxOverrides) {
    return Invalid("overrides", absl::StrCat("has ", overrides.size(), " entries; at most ", kMaxOverrides,
                                             " are allowed"));
  }
  for (int i = 0; i < overrides.size(); ++i) {
    const std::string field = absl::StrCat("overrides[", i, "]");
    if (overrides[i].empty()) return Invalid(field, "must not be empty");
    DFV_RETURN_IF_ERROR(CheckMaxBytes(field, overrides[i], kMaxOverrideBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckAttemptRank(const std::string& prefix, int32_t attempt, int32_t rank) {
  if (attempt < 1) return Invalid(prefix + "attempt", absl::StrCat("must be >= 1, got ", attempt));
  if (rank < 0) return Invalid(prefix + "rank", absl::StrCat("must be >= 0, got ", rank));
  return absl::OkStatus();
}

// The running assignments a worker lists (Heartbeat, RegisterWorker).
absl::Status CheckRunning(
    const google::protobuf::RepeatedPtrField<dfv::v1::RunningAssignment>& running) {
  if (running.size() > kMaxRunning) {
    return Invalid("running",
                   absl::StrCat("has ", running.size(), " entries; at most ", kMaxRunning));
  }
  for (int i = 0; i < running.size(); ++i) {
    const std::string prefix = absl::StrCat("running[", i, "].");
    DFV_RETURN_IF_ERROR(CheckJobId(running[i].job_id(), prefix + "job_id"));
    DFV_RETURN_IF_ERROR(CheckAttemptRank(prefix, running[i].attempt(), running[i].rank()));
  }
  return absl::OkStatus();
}

absl::Status CheckArtifactName(const std::string& field, const std::string& name) {
  absl::Status status = ValidateArtifactName(name);
  if (!status.ok()) return Invalid(field, std::string(status.message()));
  return absl::OkStatus();
}

bool IsFinalStateEvent(const dfv::v1::JobEvent& event) {
  return event.has_state() && dfv::v1::IsFinalState(event.state().state());
}

// Runs `body`, turning an escaping exception into INTERNAL: no exception may
// leave a gRPC handler or an executor task.
template <typename Body>
absl::Status Guarded(const char* method, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected exception: {}", method, e.what());
    return absl::InternalError(absl::StrCat(method, ": internal error: ", e.what()));
  } catch (...) {
    spdlog::error("{}: unexpected exception", method);
    return absl::InternalError(absl::StrCat(method, ": internal error"));
  }
}

const char* const kClientService = dfv::v1::Coordinator::service_full_name();
const char* const kWorkerService = dfv::v1::WorkerGateway::service_full_name();

// The one gate every call passes before its request is looked at.
absl::StatusOr<CallerIdentity> Authorize(const Authenticator& auth,
                                         grpc::CallbackServerContext* context, const char* service,
                                         const char* method) {
  return auth.Authorize(*context, absl::StrCat("/", service, "/", method));
}

// The unary handler shape: authorize, run `body(caller)`, finish with the
// translated status.
template <typename Body>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const Authenticator& auth, const char* service,
                                      const char* method, Body&& body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(rpc::ToGrpcStatus(Guarded(method, [&]() -> absl::Status {
    DFV_ASSIGN_OR_RETURN(CallerIdentity caller, Authorize(auth, context, service, method));
    return body(caller);
  })));
  return reactor;
}

// FinishUnary for a body that reads files: authorized on the gRPC thread,
// then run on `io`, which finishes the call (the request and response live
// until then).
template <typename Body>
grpc::ServerUnaryReactor* FinishUnaryOnIo(grpc::CallbackServerContext* context, const Authenticator& auth,
                                          IoExecutor* io, const char* service, const char* method,
                                          Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<CallerIdentity> caller = Authorize(auth, context, service, method);
  if (!caller.ok()) {
    reactor->Finish(rpc::ToGrpcStatus(caller.status()));
    return reactor;
  }
  io->Post([reactor, method, caller = *std::move(caller), body = std::move(body)]() mutable {
    reactor->Finish(rpc::ToGrpcStatus(Guarded(method, [&] { return body(caller); })));
  });
  return reactor;
}

// A worker with a certificate acts only through its own sessions (a session
// id is no secret: ListWorkers shows it). Callers without one are the
// loopback workers of a coordinator without TLS, as before.
absl::Status CheckSessionCaller(Coordinator* coordinator, const CallerIdentity& caller,
                                const std::string& worker_id) {
  if (!caller.certified) return absl::OkStatus();
  return coordinator->CheckSessionOwner(worker_id, caller.name);
}

// A server-streaming call refused before it started: finishes at once and
// deletes itself when gRPC is done with it.
template <typename Message>
class RefusedWriter final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit RefusedWriter(const absl::Status& status) { this->Finish(rpc::ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// A client-streaming call refused before it started, likewise.
template <typename Message>
class RefusedReader final : public grpc::ServerReadReactor<Message> {
 public:
  explicit RefusedReader(const absl::Status& status) { this->Finish(rpc::ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// ---------------------------------------------------------------------------
// GetArtifact: opening and reading run on the IoExecutor; one operation
// (a read task or a write) is outstanding at any time, so the reactor needs
// no lock beyond the cancel flag.

class GetArtifactReactor final : public grpc::ServerWriteReactor<dfv::v1::ArtifactChunk> {
 public:
  GetArtifactReactor(Coordinator* coordinator, IoExecutor* io, std::string job_id, std::string name)
      : coordinator_(coordinator), io_(io), job_id_(std::move(job_id)), name_(std::move(name)) {
    io_->Post([this] { Run(&GetArtifactReactor::Open); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      return;
    }
    io_->Post([this] { Run(&GetArtifactReactor::ReadNext); });
  }
  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override { delete this; }

 private:
  void Run(absl::Status (GetArtifactReactor::*step)()) {
    absl::Status status = Guarded("GetArtifact", [&] { return (this->*step)(); });
    if (!status.ok()) Finish(rpc::ToGrpcStatus(status));
  }

  absl::Status Open() {
    DFV_ASSIGN_OR_RETURN(reader_, coordinator_->OpenArtifact(job_id_, name_));
    *chunk_.mutable_info() = reader_->info();
    return ReadNext();
  }

  // Sends the next chunk (the first one carries info), or finishes.
  absl::Status ReadNext() {
    if (cancelled_.load()) return absl::CancelledError("the client cancelled the call");
    DFV_ASSIGN_OR_RETURN(std::string data, reader_->Read(rpc::kArtifactChunkBytes));
    if (data.empty() && !chunk_.has_info()) {
      Finish(grpc::Status::OK);
      return absl::OkStatus();
    }
    *chunk_.mutable_data() = std::move(data);
    message_ = std::move(chunk_);
    chunk_.Clear();
    StartWrite(&message_);
    return absl::OkStatus();
  }

  Coordinator* const coordinator_;
  IoExecutor* const io_;
  const std::string job_id_;
  const std::string name_;
  std::unique_ptr<ArtifactReader> reader_;
  dfv::v1::ArtifactChunk chunk_;    // being assembled
  dfv::v1::ArtifactChunk message_;  // being written
  std::atomic<bool> cancelled_{false};
};

// ---------------------------------------------------------------------------
// UploadArtifact: the first message carries the header, the rest data.
// The next message is read while the last one is written: each data message
// is moved out of the request before the next read starts, so gRPC's receive
// (socket, deserialisation) on its threads overlaps the checksum and the file
// write on an IO thread. One IO task per upload runs at a time, in order: a
// read that completes while the write is in progress waits for that task,
// which then carries on with it.
class UploadArtifactReactor final : public grpc::ServerReadReactor<dfv::v1::UploadArtifactRequest> {
 public:
  UploadArtifactReactor(Coordinator* coordinator, IoExecutor* io, CallerIdentity caller,
                        dfv::v1::UploadArtifactResponse* response)
      : coordinator_(coordinator), io_(io), caller_(std::move(caller)), response_(response) {
    StartRead(&request_);
  }

  // ok == false: the client half-closed (or the call died; Commit checks).
  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;  // the call was finished with this read in flight; OnDone follows
      if (busy_) {
        pending_read_ = ok;  // the running task takes it when its write is done
        return;
      }
      busy_ = true;
    }
    io_->Post([this, ok] { Process(ok); });
  }
  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override { delete this; }

 private:
  // Runs on an IO thread, the only one working on this upload: handles the
  // read that completed, then any read that completed meanwhile.
  void Process(bool ok) {
    while (true) {
      absl::Status status = Guarded("UploadArtifact", [&] { return ok ? HandleMessage() : Commit(); });
      if (!status.ok()) {
        upload_.reset();  // removes the temporary file
        {
          absl::MutexLock lock(&mu_);
          finished_ = true;
        }
        Finish(rpc::ToGrpcStatus(status));
        return;  // OnDone may delete this from here on
      }
      if (!ok) return;  // committed: Commit finished the call
      absl::MutexLock lock(&mu_);
      if (!pending_read_.has_value()) {
        busy_ = false;
        return;
      }
      ok = *pending_read_;
      pending_read_.reset();
    }
  }

  static absl::Status CheckHeader(const dfv::v1::UploadArtifactRequest::Header& header) {
    DFV_RETURN_IF_ERROR(CheckWorkerId(header.worker_id(), "header.worker_id"));
    DFV_RETURN_IF_ERROR(CheckJobId(header.job_id(), "header.job_id"));
    if (header.attempt() < 1) {
      return Invalid("header.attempt", absl::StrCat("must be >= 1, got ", header.attempt()));
    }
    const dfv::v1::ArtifactInfo& info = header.info();
    DFV_RETURN_IF_ERROR(CheckArtifactName("header.info.name", info.name()));
    if (!dfv::v1::ArtifactKind_IsValid(info.kind()) ||
        info.kind() == dfv::v1::ARTIFACT_KIND_UNSPECIFIED) {
      return Invalid("header.info.kind", "must be one of GRID, CHECKPOINT, REPORT, METRICS, "
                                         "JOB_SPEC, LOG");
    }
    if (info.size() < 0) {
      return Invalid("header.info.size", absl::StrCat("must be >= 0, got ", info.size()));
    }
    if (info.step() < 0) {
      return Invalid("header.info.step", absl::StrCat("must be >= 0, got ", info.step()));
    }
    return absl::OkStatus();
  }

  absl::Status HandleMessage() {
    if (cancelled_.load()) return absl::CancelledError("the client cancelled the upload");
    if (upload_ == nullptr) {
      if (!request_.has_header()) {
        return Invalid("header", "the first message of an upload must carry the header");
      }
      DFV_RETURN_IF_ERROR(CheckHeader(request_.header()));
      DFV_RETURN_IF_ERROR(
          CheckSessionCaller(coordinator_, caller_, request_.header().worker_id()));
      DFV_ASSIGN_OR_RETURN(upload_, coordinator_->BeginUpload(request_.header()));
      worker_id_ = request_.header().worker_id();
    } else if (request_.has_header()) {
      return Invalid("header", "only the first message of an upload may carry the header");
    }
    // Swapped, not copied: the IO task owns these bytes while gRPC reads the
    // next message into request_.
    data_.swap(*request_.mutable_data());
    const std::string checksum = std::move(*request_.mutable_checksum());
    request_.Clear();
    StartRead(&request_);
    if (!data_.empty()) DFV_RETURN_IF_ERROR(upload_->Append(data_));
    if (!checksum.empty()) DFV_RETURN_IF_ERROR(upload_->DeclareChecksum(checksum));
    return absl::OkStatus();
  }

  absl::Status Commit() {
    if (cancelled_.load()) return absl::CancelledError("the client cancelled the upload");
    if (upload_ == nullptr) return Invalid("header", "the upload ended before its header");
    DFV_ASSIGN_OR_RETURN(*response_->mutable_info(),
                         coordinator_->FinishUpload(worker_id_, std::move(upload_)));
    Finish(grpc::Status::OK);
    return absl::OkStatus();
  }

  Coordinator* const coordinator_;
  IoExecutor* const io_;
  const CallerIdentity caller_;
  dfv::v1::UploadArtifactResponse* const response_;
  // Written by gRPC's read while the IO task works on data_.
  dfv::v1::UploadArtifactRequest request_;
  std::string data_;
  std::unique_ptr<ArtifactUpload> upload_;
  std::string worker_id_;
  std::atomic<bool> cancelled_{false};

  absl::Mutex mu_;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // an IO task for this upload is queued or running
  std::optional<bool> pending_read_ ABSL_GUARDED_BY(mu_);  // a read that completed while busy_
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called with an error
};

}  // namespace

// ---------------------------------------------------------------------------
// WatchJob: replays the log after after_seq, then follows the job's
// subscription. The log is the source of truth: subscription callbacks only
// carry events forward when they are the next one in order; any gap is read
// from the log. Nothing here waits: the reactor writes when it has the next
// event and otherwise returns until a callback or a completed write wakes it.

class WatchJobReactor final : public grpc::ServerWriteReactor<dfv::v1::JobEvent> {
 public:
  WatchJobReactor(Coordinator* coordinator, ClientService* service, std::string job_id,
                  int64_t after_seq, int batch)
      : coordinator_(coordinator),
        service_(service),
        job_id_(std::move(job_id)),
        batch_(batch),
        sent_seq_(after_seq),
        known_seq_(after_seq) {}

  // Subscribes, then reads the job: an event appended in between is seen by
  // both, which is harmless (sequence numbers deduplicate).
  void Start() {
    subscription_ = coordinator_->SubscribeEvents(
        job_id_, [this](const dfv::v1::JobEvent& event) { OnEvent(event); });
    absl::StatusOr<dfv::v1::Job> job = coordinator_->GetJob(job_id_);
    const bool registered = service_->RegisterWatch(this);
    absl::MutexLock lock(&mu_);
    if (!registered) {
      FinishLocked(absl::UnavailableError("the coordinator is shutting down"));
      return;
    }
    if (!job.ok()) {
      FinishLocked(job.status());
      return;
    }
    known_seq_ = std::max(known_seq_, job->last_seq());
    if (dfv::v1::IsFinalState(job->state())) final_seq_ = job->last_seq();
    PumpLocked();
  }

  // Ends the stream now, even with a write in flight: gRPC sends the status
  // after that write. (Waiting for OnWriteDone instead can stall until the
  // server's shutdown deadline cancels the call.)
  void Stop(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status, /*even_while_writing=*/true);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(absl::CancelledError("the client stopped reading"));
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(absl::CancelledError("the client cancelled the watch"));
  }

  void OnDone() override {
    service_->UnregisterWatch(this);
    subscription_.reset();  // waits for a callback in progress
    delete this;
  }

 private:
  void OnEvent(const dfv::v1::JobEvent& event) {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    known_seq_ = std::max(known_seq_, event.seq());
    if (IsFinalStateEvent(event)) final_seq_ = event.seq();
    if (event.seq() > sent_seq_ && buffered_.size() < kMaxBufferedEvents) {
      buffered_.emplace(event.seq(), event);
    }
    PumpLocked();
  }

  // Writes the next event when one is ready and no write is in flight.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finish_requested_) return;
    while (!buffered_.empty() && buffered_.begin()->first <= sent_seq_) buffered_.erase(buffered_.begin());
    const bool next_in_memory = !buffered_.empty() && buffered_.begin()->first == sent_seq_ + 1;
    if (!next_in_memory && known_seq_ > sent_seq_) {
      absl::StatusOr<std::vector<dfv::v1::JobEvent>> events =
          coordinator_->ReadEvents(job_id_, sent_seq_, batch_);
      if (!events.ok()) {
        FinishLocked(events.status());
        return;
      }
      for (dfv::v1::JobEvent& event : *events) {
        if (IsFinalStateEvent(event)) final_seq_ = event.seq();
        buffered_.emplace(event.seq(), std::move(event));
      }
    }
    if (!buffered_.empty() && buffered_.begin()->first == sent_seq_ + 1) {
      current_ = std::move(buffered_.begin()->second);
      buffered_.erase(buffered_.begin());
      sent_seq_ = current_.seq();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    // Nothing to send: done once the job's final event went out.
    if (final_seq_ > 0 && sent_seq_ >= final_seq_) FinishLocked(absl::OkStatus());
  }

  // Normally the status waits for a write in flight (OnWriteDone finishes
  // then), so the stream ends after the event being written, as the client
  // expects.
  void FinishLocked(const absl::Status& status, bool even_while_writing = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!finish_requested_) {
      finish_requested_ = true;
      finish_status_ = status;
    }
    if ((writing_ && !even_while_writing) || finished_) return;
    finished_ = true;
    Finish(rpc::ToGrpcStatus(finish_status_));
  }

  Coordinator* const coordinator_;
  ClientService* const service_;
  const std::string job_id_;
  const int batch_;
  std::unique_ptr<EventLog::Subscription> subscription_;

  absl::Mutex mu_;
  int64_t sent_seq_ ABSL_GUARDED_BY(mu_);   // newest seq written (or being written)
  int64_t known_seq_ ABSL_GUARDED_BY(mu_);  // newest seq known to exist
  int64_t final_seq_ ABSL_GUARDED_BY(mu_) = 0;  // seq of the final StateChange, once known
  std::map<int64_t, dfv::v1::JobEvent> buffered_ ABSL_GUARDED_BY(mu_);
  dfv::v1::JobEvent current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------
// ClientService

ClientService::ClientService(Coordinator* coordinator, IoExecutor* io, const Authenticator* auth,
                             int watch_batch)
    : coordinator_(coordinator), io_(io), auth_(auth), watch_batch_(std::max(1, watch_batch)) {}

ClientService::~ClientService() = default;

void ClientService::BeginShutdown() {
  absl::MutexLock lock(&watch_mu_);
  shutting_down_ = true;
  // Under watch_mu_, a reactor cannot finish OnDone (it unregisters first),
  // so every pointer here is alive.
  for (WatchJobReactor* watch : watches_) {
    watch->Stop(absl::UnavailableError(
        "the coordinator is shutting down; watch again with after_seq set to the last seq seen"));
  }
}

bool ClientService::RegisterWatch(WatchJobReactor* reactor) {
  absl::MutexLock lock(&watch_mu_);
  if (shutting_down_) return false;
  watches_.insert(reactor);
  return true;
}

void ClientService::UnregisterWatch(WatchJobReactor* reactor) {
  absl::MutexLock lock(&watch_mu_);
  watches_.erase(reactor);
}

grpc::ServerUnaryReactor* ClientService::SubmitJob(grpc::CallbackServerContext* context,
                                                   const dfv::v1::SubmitJobRequest* request,
                                                   dfv::v1::SubmitJobResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "SubmitJob", [&](const CallerIdentity&) -> absl::Status {
    if (request->spec_yaml().empty()) return Invalid("spec_yaml", "must not be empty");
    DFV_RETURN_IF_ERROR(CheckMaxBytes("spec_yaml", request->spec_yaml(), jobspec::kMaxJobFileBytes));
    DFV_RETURN_IF_ERROR(CheckMaxBytes("source_name", request->source_name(), kMaxSourceNameBytes));
    DFV_RETURN_IF_ERROR(CheckOverrides(request->overrides()));
    std::vector<std::string> overrides(request->overrides().begin(), request->overrides().end());
    DFV_ASSIGN_OR_RETURN(*response->mutable_job(),
                         coordinator_->SubmitJob(request->spec_yaml(), request->source_name(),
                                                 overrides, request->wait_for_workers()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ClientService::EvaluateCheckpoint(grpc::CallbackServerContext* context,
                                                            const dfv::v1::EvaluateCheckpointRequest* request,
                                                            dfv::v1::EvaluateCheckpointResponse* response) {
  return FinishUnaryOnIo(
      context, *auth_, io_, kClientService, "EvaluateCheckpoint",
      [this, request, response](const CallerIdentity&) -> absl::Status {
        DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
        if (!request->checkpoint().empty()) {
          DFV_RETURN_IF_ERROR(CheckArtifactName("checkpoint", request->checkpoint()));
        }
        DFV_RETURN_IF_ERROR(CheckOverrides(request->overrides()));
        Coordinator::EvaluationRequest evaluation;
        evaluation.job_id = request->job_id();
        evaluation.checkpoint = request->checkpoint();
        evaluation.overrides.assign(request->overrides().begin(), request->overrides().end());
        evaluation.wait_for_workers = request->wait_for_workers();
        DFV_ASSIGN_OR_RETURN(*response->mutable_job(), coordinator_->EvaluateCheckpoint(evaluation));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ClientService::GetJob(grpc::CallbackServerContext* context,
                                                const dfv::v1::GetJobRequest* request,
                                                dfv::v1::Job* response) {
  return FinishUnary(context, *auth_, kClientService, "GetJob", [&](const CallerIdentity&) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_ASSIGN_OR_RETURN(*response, coordinator_->GetJob(request->job_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ClientService::ListJobs(grpc::CallbackServerContext* context,
                                                  const dfv::v1::ListJobsRequest* request,
                                                  dfv::v1::ListJobsResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "ListJobs", [&](const CallerIdentity&) -> absl::Status {
    std::vector<dfv::v1::JobState> states;
    for (int i = 0; i < request->states_size(); ++i) {
      const int state = request->states(i);
      if (!dfv::v1::JobState_IsValid(state) || state == dfv::v1::JOB_STATE_UNSPECIFIED) {
        return Invalid(absl::StrCat("states[", i, "]"),
                       absl::StrCat(state, " is not a job state (QUEUED ... CANCELLED)"));
      }
      states.push_back(static_cast<dfv::v1::JobState>(state));
    }
    if (request->limit() < 0) {
      return Invalid("limit", absl::StrCat("must be >= 0 (0: all), got ", request->limit()));
    }
    DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::Job> jobs,
                         coordinator_->ListJobs(states, request->limit()));
    for (dfv::v1::Job& job : jobs) *response->add_jobs() = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ClientService::CancelJob(grpc::CallbackServerContext* context,
                                                   const dfv::v1::CancelJobRequest* request,
                                                   dfv::v1::CancelJobResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "CancelJob", [&](const CallerIdentity&) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_RETURN_IF_ERROR(CheckMaxBytes("reason", request->reason(), kMaxReasonBytes));
    DFV_ASSIGN_OR_RETURN(*response->mutable_job(),
                         coordinator_->CancelJob(request->job_id(), request->reason()));
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<dfv::v1::JobEvent>* ClientService::WatchJob(
    grpc::CallbackServerContext* context, const dfv::v1::WatchJobRequest* request) {
  absl::Status status = Authorize(*auth_, context, kClientService, "WatchJob").status();
  if (status.ok()) status = CheckJobId(request->job_id());
  if (status.ok() && request->after_seq() < 0) {
    status = Invalid("after_seq", absl::StrCat("must be >= 0, got ", request->after_seq()));
  }
  if (status.ok()) {
    // A watch from beyond the newest event would silently skip the events
    // up to its number once they come.
    absl::StatusOr<dfv::v1::Job> job = coordinator_->GetJob(request->job_id());
    if (!job.ok()) {
      status = job.status();
    } else if (request->after_seq() > job->last_seq()) {
      status = absl::OutOfRangeError(absl::StrCat("after_seq: ", request->after_seq(), " is beyond job ",
                                                  request->job_id(), "'s newest event, ", job->last_seq()));
    }
  }
  if (!status.ok()) return new RefusedWriter<dfv::v1::JobEvent>(status);
  auto* reactor = new WatchJobReactor(coordinator_, this, request->job_id(), request->after_seq(),
                                      watch_batch_);
  absl::Status started = Guarded("WatchJob", [&] {
    reactor->Start();
    return absl::OkStatus();
  });
  if (!started.ok()) reactor->Stop(started);
  return reactor;
}

grpc::ServerUnaryReactor* ClientService::ListArtifacts(grpc::CallbackServerContext* context,
                                                       const dfv::v1::ListArtifactsRequest* request,
                                                       dfv::v1::ListArtifactsResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "ListArtifacts", [&](const CallerIdentity&) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> artifacts,
                         coordinator_->ListArtifacts(request->job_id()));
    for (dfv::v1::ArtifactInfo& info : artifacts) *response->add_artifacts() = std::move(info);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<dfv::v1::ArtifactChunk>* ClientService::GetArtifact(
    grpc::CallbackServerContext* context, const dfv::v1::GetArtifactRequest* request) {
  absl::Status status = Authorize(*auth_, context, kClientService, "GetArtifact").status();
  if (status.ok()) status = CheckJobId(request->job_id());
  if (status.ok()) status = CheckArtifactName("name", request->name());
  if (!status.ok()) return new RefusedWriter<dfv::v1::ArtifactChunk>(status);
  return new GetArtifactReactor(coordinator_, io_, request->job_id(), request->name());
}

grpc::ServerUnaryReactor* ClientService::ListWorkers(grpc::CallbackServerContext* context,
                                                     const dfv::v1::ListWorkersRequest* request,
                                                     dfv::v1::ListWorkersResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "ListWorkers", [&](const CallerIdentity&) -> absl::Status {
    for (dfv::v1::WorkerInfo& info : coordinator_->ListWorkers()) {
      *response->add_workers() = std::move(info);
    }
    return absl::OkStatus();
  });
}

namespace {

// Every reason, in kDeleteReasons' order.
void FreedSpaceToProto(const FreedSpace& freed, google::protobuf::RepeatedPtrField<dfv::v1::FreedSpace>* out) {
  for (DeleteReason reason : kDeleteReasons) {
    dfv::v1::FreedSpace* row = out->Add();
    row->set_reason(DeleteReasonLabel(reason));
    row->set_files(freed.files[static_cast<int>(reason)]);
    row->set_bytes(freed.bytes[static_cast<int>(reason)]);
  }
}

}  // namespace

grpc::ServerUnaryReactor* ClientService::DeleteArtifacts(grpc::CallbackServerContext* context,
                                                         const dfv::v1::DeleteArtifactsRequest* request,
                                                         dfv::v1::DeleteArtifactsResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "DeleteArtifacts", [&](const CallerIdentity&) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_ASSIGN_OR_RETURN(FreedSpace freed, coordinator_->DeleteJobArtifacts(request->job_id()));
    response->set_files(freed.total_files());
    response->set_bytes(freed.total_bytes());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ClientService::CollectGarbage(grpc::CallbackServerContext* context,
                                                        const dfv::v1::CollectGarbageRequest* request,
                                                        dfv::v1::CollectGarbageResponse* response) {
  return FinishUnary(context, *auth_, kClientService, "CollectGarbage", [&](const CallerIdentity&) -> absl::Status {
    DFV_ASSIGN_OR_RETURN(Coordinator::GarbageReport report, coordinator_->CollectGarbage());
    FreedSpaceToProto(report.this_pass, response->mutable_this_pass());
    FreedSpaceToProto(report.since_start, response->mutable_since_start());
    response->set_stored_bytes(report.stored_bytes);
    response->set_available_bytes(report.available_bytes);
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------
// WorkerGatewayService

WorkerGatewayService::WorkerGatewayService(Coordinator* coordinator, IoExecutor* io,
                                           const Authenticator* auth, HeartbeatParking* parking,
                                           int64_t max_heartbeat_wait_ms)
    : coordinator_(coordinator),
      io_(io),
      auth_(auth),
      parking_(parking),
      max_heartbeat_wait_ms_(max_heartbeat_wait_ms) {}

grpc::ServerUnaryReactor* WorkerGatewayService::RegisterWorker(
    grpc::CallbackServerContext* context, const dfv::v1::RegisterWorkerRequest* request,
    dfv::v1::RegisterWorkerResponse* response) {
  return FinishUnary(context, *auth_, kWorkerService, "RegisterWorker", [&](const CallerIdentity& caller) -> absl::Status {
    if (request->name().empty()) return Invalid("name", "must not be empty");
    if (!IsSafePathComponent(request->name())) {
      return Invalid("name", absl::StrCat("'", request->name().substr(0, 128),
                                          "' must be 1-128 of [A-Za-z0-9._-], not starting with '.'"));
    }
    DFV_RETURN_IF_ERROR(CheckWorkerName(caller, request->name()));
    if (request->slots() < 1 || request->slots() > kMaxSlots) {
      return Invalid("slots", absl::StrCat("must be 1..", kMaxSlots, ", got ", request->slots()));
    }
    if (request->device() != "cpu" && request->device() != "cuda") {
      return Invalid("device", absl::StrCat("must be cpu or cuda, got '",
                                            request->device().substr(0, 64), "'"));
    }
    if (!request->address().empty()) {
      absl::StatusOr<rpc::HostPort> address = rpc::ParseHostPort(request->address(), "address");
      if (!address.ok()) return address.status();
    }
    if (!request->metrics_address().empty()) {
      DFV_RETURN_IF_ERROR(
          CheckMaxBytes("metrics_address", request->metrics_address(), kMaxAddressBytes));
      DFV_ASSIGN_OR_RETURN(rpc::HostPort metrics,
                           rpc::ParseHostPort(request->metrics_address(), "metrics_address"));
      if (metrics.port == 0) {
        return Invalid("metrics_address",
                       absl::StrCat("'", request->metrics_address(),
                                    "' has port 0; report the port /metrics is served on"));
      }
    }
    DFV_RETURN_IF_ERROR(CheckRunning(request->running()));
    DFV_ASSIGN_OR_RETURN(*response, coordinator_->RegisterWorker(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* WorkerGatewayService::Heartbeat(grpc::CallbackServerContext* context,
                                                          const dfv::v1::HeartbeatRequest* request,
                                                          dfv::v1::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Guarded("Heartbeat", [&]() -> absl::Status {
    DFV_ASSIGN_OR_RETURN(CallerIdentity caller, Authorize(*auth_, context, kWorkerService, "Heartbeat"));
    DFV_RETURN_IF_ERROR(CheckWorkerId(request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckSessionCaller(coordinator_, caller, request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckRunning(request->running()));
    DFV_ASSIGN_OR_RETURN(*response, coordinator_->Heartbeat(*request));
    return absl::OkStatus();
  });
  // Only assignments end the wait: a cancel is repeated in every answer
  // while the worker still reports the rank (its trainer stopping), and
  // answering those at once would have the worker beat in a tight loop.
  auto has_news = [](const dfv::v1::HeartbeatResponse& r) { return r.assignments_size() > 0; };
  const int64_t wait_ms = std::min(request->wait_ms(), max_heartbeat_wait_ms_);
  if (!status.ok() || parking_ == nullptr || wait_ms <= 0 || has_news(*response)) {
    reactor->Finish(rpc::ToGrpcStatus(status));
    return reactor;
  }
  // Nothing to deliver now: wait for a placement on this worker. Each
  // answer runs the heartbeat again (renewing the lease); the request is
  // the one the worker sent, whose running list is still what it runs.
  parking_->Park(request->worker_id(), absl::Now() + absl::Milliseconds(wait_ms),
                 [this, reactor, request, response, has_news](bool final) {
                   absl::Status again = Guarded("Heartbeat", [&]() -> absl::Status {
                     DFV_ASSIGN_OR_RETURN(*response, coordinator_->Heartbeat(*request));
                     return absl::OkStatus();
                   });
                   if (!again.ok() || final || has_news(*response)) {
                     reactor->Finish(rpc::ToGrpcStatus(again));
                     return true;
                   }
                   return false;
                 });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReportEvents(
    grpc::CallbackServerContext* context, const dfv::v1::ReportEventsRequest* request,
    dfv::v1::ReportEventsResponse* response) {
  return FinishUnary(context, *auth_, kWorkerService, "ReportEvents", [&](const CallerIdentity& caller) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckWorkerId(request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckSessionCaller(coordinator_, caller, request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_RETURN_IF_ERROR(CheckAttemptRank("", request->attempt(), request->rank()));
    if (request->batch() < 0) {
      return Invalid("batch", absl::StrCat("must be >= 0, got ", request->batch()));
    }
    if (request->events_size() > kMaxEventsPerReport) {
      return Invalid("events", absl::StrCat("has ", request->events_size(),
                                            " entries; at most ", kMaxEventsPerReport));
    }
    for (int i = 0; i < request->events_size(); ++i) {
      const dfv::v1::JobEvent& event = request->events(i);
      const std::string field = absl::StrCat("events[", i, "]");
      // Sizes and names only; which events a worker may report at all is the
      // Coordinator's decision.
      if (event.has_message()) {
        DFV_RETURN_IF_ERROR(
            CheckMaxBytes(field + ".message.text", event.message().text(), kMaxMessageBytes));
      }
      for (int k = 0; k < event.metrics().values_size(); ++k) {
        if (event.metrics().values(k).name().empty()) {
          return Invalid(absl::StrCat(field, ".metrics.values[", k, "].name"), "must not be empty");
        }
      }
    }
    DFV_ASSIGN_OR_RETURN(bool cancel, coordinator_->ReportEvents(*request));
    response->set_cancel(cancel);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<dfv::v1::ArtifactChunk>* WorkerGatewayService::FetchCheckpoint(
    grpc::CallbackServerContext* context, const dfv::v1::FetchCheckpointRequest* request) {
  absl::Status status = [&]() -> absl::Status {
    DFV_ASSIGN_OR_RETURN(CallerIdentity caller, Authorize(*auth_, context, kWorkerService, "FetchCheckpoint"));
    DFV_RETURN_IF_ERROR(CheckWorkerId(request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckSessionCaller(coordinator_, caller, request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_RETURN_IF_ERROR(CheckAttemptRank("", request->attempt(), 0));
    DFV_RETURN_IF_ERROR(CheckArtifactName("name", request->name()));
    return coordinator_->CheckCheckpointReader(request->worker_id(), request->job_id(), request->attempt());
  }();
  if (!status.ok()) return new RefusedWriter<dfv::v1::ArtifactChunk>(status);
  return new GetArtifactReactor(coordinator_, io_, request->job_id(), request->name());
}

grpc::ServerReadReactor<dfv::v1::UploadArtifactRequest>* WorkerGatewayService::UploadArtifact(
    grpc::CallbackServerContext* context, dfv::v1::UploadArtifactResponse* response) {
  absl::StatusOr<CallerIdentity> caller =
      Authorize(*auth_, context, kWorkerService, "UploadArtifact");
  if (!caller.ok()) return new RefusedReader<dfv::v1::UploadArtifactRequest>(caller.status());
  return new UploadArtifactReactor(coordinator_, io_, std::move(*caller), response);
}

grpc::ServerUnaryReactor* WorkerGatewayService::CompleteAssignment(
    grpc::CallbackServerContext* context, const dfv::v1::CompleteAssignmentRequest* request,
    dfv::v1::CompleteAssignmentResponse* response) {
  return FinishUnary(context, *auth_, kWorkerService, "CompleteAssignment", [&](const CallerIdentity& caller) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckWorkerId(request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckSessionCaller(coordinator_, caller, request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_RETURN_IF_ERROR(CheckAttemptRank("", request->attempt(), request->rank()));
    DFV_RETURN_IF_ERROR(CheckMaxBytes("reason", request->reason(), kMaxReasonBytes));
    return coordinator_->CompleteAssignment(*request);
  });
}

grpc::ServerUnaryReactor* WorkerGatewayService::PublishRendezvous(
    grpc::CallbackServerContext* context, const dfv::v1::PublishRendezvousRequest* request,
    dfv::v1::PublishRendezvousResponse* response) {
  return FinishUnary(context, *auth_, kWorkerService, "PublishRendezvous", [&](const CallerIdentity& caller) -> absl::Status {
    DFV_RETURN_IF_ERROR(CheckWorkerId(request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckSessionCaller(coordinator_, caller, request->worker_id()));
    DFV_RETURN_IF_ERROR(CheckJobId(request->job_id()));
    DFV_RETURN_IF_ERROR(CheckAttemptRank("", request->attempt(), request->rank()));
    DFV_RETURN_IF_ERROR(CheckMaxBytes("address", request->address(), kMaxAddressBytes));
    DFV_ASSIGN_OR_RETURN(rpc::HostPort address, rpc::ParseHostPort(request->address(), "address"));
    if (address.port == 0) {
      return Invalid("address", absl::StrCat("'", request->address(),
                                             "' has port 0; publish the port the rendezvous listens on"));
    }
    return coordinator_->PublishRendezvous(*request);
  });
}

// ---------------------------------------------------------------------------
// CoordinatorServer

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Create(
    const CoordinatorServerOptions& options) {
  // Before anything is opened, so bad TLS files fail the start at once.
  DFV_ASSIGN_OR_RETURN(rpc::ServerListen server_listen,
                       rpc::PrepareServerListen(options.listen_address, options.tls, options.insecure,
                                                rpc::ClientCertificates::kRequestedAndVerified));
  const rpc::HostPort& listen = server_listen.address;
  const rpc::ListenExposure exposure = server_listen.exposure;
  std::shared_ptr<grpc::ServerCredentials> credentials = server_listen.credentials;
  if (options.tick_interval_ms <= 0) {
    return absl::InvalidArgumentError("tick_interval_ms must be > 0");
  }
  if (options.coordinator.metrics != nullptr) {
    return absl::InvalidArgumentError(
        "coordinator.metrics must be null: the server makes its own (metrics_listen)");
  }
  // Before the data folder is opened: a bad auth file changes nothing. With
  // TLS every worker presents a certificate signed by the CA, and its name
  // comes from there.
  AuthOptions auth_options = options.auth;
  auth_options.require_worker_certificate = !options.tls.empty();
  DFV_ASSIGN_OR_RETURN(std::unique_ptr<Authenticator> auth, Authenticator::Create(auth_options));
  CoordinatorOptions coordinator_options = options.coordinator;
  std::shared_ptr<CoordinatorMetrics> metrics;
  std::unique_ptr<dfv::metrics::MetricsServer> metrics_server;
  if (!options.metrics_listen.empty()) {
    DFV_ASSIGN_OR_RETURN(metrics_server,
                         dfv::metrics::MetricsServer::Create(options.metrics_listen, options.insecure));
    metrics = std::make_shared<CoordinatorMetrics>();
    metrics_server->Register(metrics);
    coordinator_options.metrics = metrics.get();
  }
  // Made before the Coordinator, which wakes the heartbeats parked in it.
  auto parking = std::make_unique<HeartbeatParking>();
  coordinator_options.on_deliverable = [p = parking.get()](const std::vector<std::string>& workers) {
    p->Wake(workers);
  };
  DFV_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator,
                       Coordinator::Create(coordinator_options));
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer(
      options, std::move(metrics), std::move(metrics_server), std::move(auth),
      std::move(coordinator), std::move(parking)));
  if (!options.prometheus_sd_file.empty()) {
    server->sd_file_ = std::make_unique<PrometheusSdFile>(options.prometheus_sd_file);
    DFV_RETURN_IF_ERROR(server->sd_file_->Update(server->coordinator_->MetricsTargets()));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  rpc::ConfigureServerBuilder(builder);
  if (server->metrics_ != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(server->metrics_->NewRpcInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.AddListeningPort(options.listen_address, credentials, &server->port_);
  builder.RegisterService(server->client_service_.get());
  builder.RegisterService(server->worker_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address, " (in use, or not an address of this host)"));
  }
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
  }
  const std::string host = listen.host == "localhost" ? "127.0.0.1" : listen.host;
  server->address_ = absl::StrCat(host, ":", server->port_);
  server->exposure_ = exposure;
  if (exposure == rpc::ListenExposure::kInsecurePlaintext) {
    spdlog::warn("{}", rpc::InsecureListenWarning("--listen", server->address_));
  }
  if (!server->metrics_address_.empty() && options.insecure) {
    DFV_ASSIGN_OR_RETURN(rpc::HostPort metrics, rpc::ParseHostPort(server->metrics_address_, "--metrics-listen"));
    if (!rpc::IsLoopbackHost(metrics.host)) {
      spdlog::warn("{}", rpc::InsecureListenWarning("--metrics-listen", server->metrics_address_));
    }
  }
  server->tick_thread_ = std::thread([s = server.get()] { s->TickLoop(); });
  return server;
}

CoordinatorServer::CoordinatorServer(const CoordinatorServerOptions& options,
                                     std::shared_ptr<CoordinatorMetrics> metrics,
                                     std::unique_ptr<dfv::metrics::MetricsServer> metrics_server,
                                     std::unique_ptr<Authenticator> auth,
                                     std::unique_ptr<Coordinator> coordinator,
                                     std::unique_ptr<HeartbeatParking> parking)
    : options_(options),
      metrics_(std::move(metrics)),
      metrics_server_(std::move(metrics_server)),
      metrics_address_(metrics_server_ != nullptr ? metrics_server_->address() : ""),
      auth_(std::move(auth)),
      coordinator_(std::move(coordinator)),
      io_(std::make_unique<IoExecutor>(std::max(1, options.io_threads))),
      parking_(std::move(parking)),
      client_service_(
          std::make_unique<ClientService>(coordinator_.get(), io_.get(), auth_.get())),
      worker_service_(std::make_unique<WorkerGatewayService>(coordinator_.get(), io_.get(), auth_.get(),
                                                             parking_.get(),
                                                             options.coordinator.heartbeat_interval_ms)) {}

CoordinatorServer::~CoordinatorServer() {
  Shutdown();
  // Reactors hold pointers to the services and the executor: the server goes first.
  server_.reset();
}

void CoordinatorServer::TickLoop() {
  while (!stop_ticking_.WaitForNotificationWithTimeout(
      absl::Milliseconds(options_.tick_interval_ms))) {
    absl::Status status = Guarded("Tick", [&] {
      coordinator_->Tick();
      return absl::OkStatus();
    });
    if (!status.ok()) spdlog::error("tick: {}", status.ToString());
    UpdateSdFile();
  }
}

void CoordinatorServer::UpdateSdFile() {
  if (sd_file_ == nullptr) return;
  // Written here, off the Coordinator's lock and from one thread, so the
  // newest set is always the one left in the file. A failed write is tried
  // again next tick; it is logged once per failure streak.
  absl::Status status = Guarded("UpdateSdFile", [&] {
    return sd_file_->Update(coordinator_->MetricsTargets());
  });
  if (!status.ok() && sd_file_ok_) spdlog::error("{}", status.ToString());
  sd_file_ok_ = status.ok();
}

void CoordinatorServer::Shutdown() {
  {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
    client_service_->BeginShutdown();
    parking_->Stop();  // parked heartbeats are answered now, not at their deadline
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(options_.shutdown_grace_ms));
  }
  stop_ticking_.Notify();
  if (tick_thread_.joinable()) tick_thread_.join();
  shutdown_done_.Notify();
}

void CoordinatorServer::Wait() { shutdown_done_.WaitForNotification(); }

}  // namespace dfv::server
