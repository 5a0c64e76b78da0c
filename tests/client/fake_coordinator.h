// A scripted Coordinator for the client tests: watch streams and artifact
// transfers are fed from lists the test fills in, and every call is
// recorded, so tests check what dfvctl asked for without a gRPC server.
#ifndef DFV_TESTS_CLIENT_FAKE_COORDINATOR_H_
#define DFV_TESTS_CLIENT_FAKE_COORDINATOR_H_

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/coordinator.h"
#include "common/checksum.h"
#include "proto/dfv.pb.h"

namespace dfv::client::testing {

// Plays back `messages`, then ends with `end`.
template <typename T>
class FakeStream final : public MessageStream<T> {
 public:
  FakeStream(std::vector<T> messages, absl::Status end, std::function<void()> on_finish = {})
      : messages_(std::move(messages)), end_(std::move(end)), on_finish_(std::move(on_finish)) {}
  bool Read(T* out) override {
    if (next_ >= messages_.size()) return false;
    *out = messages_[next_++];
    return true;
  }
  absl::Status Finish() override {
    if (on_finish_) on_finish_();
    return end_;
  }

 private:
  std::vector<T> messages_;
  size_t next_ = 0;
  absl::Status end_;
  std::function<void()> on_finish_;
};

// One scripted WatchJob stream.
struct WatchScript {
  std::vector<v1::JobEvent> events;
  absl::Status end = absl::OkStatus();        // OK: the job is final
  std::function<void()> on_finish = nullptr;  // runs when the stream ends (moves a fake clock)
};

// One scripted GetArtifact transfer.
struct ArtifactScript {
  std::vector<v1::ArtifactChunk> chunks;
  absl::Status end;
};

inline v1::JobEvent StateEvent(int64_t seq, v1::JobState state, const std::string& reason = "",
                               int64_t time_ms = 0) {
  v1::JobEvent event;
  event.set_job_id("j-000001");
  event.set_seq(seq);
  event.set_time_ms(time_ms);
  event.mutable_state()->set_state(state);
  event.mutable_state()->set_attempt(1);
  event.mutable_state()->set_reason(reason);
  return event;
}

inline v1::JobEvent MessageEvent(int64_t seq, const std::string& text, int64_t time_ms = 0) {
  v1::JobEvent event;
  event.set_job_id("j-000001");
  event.set_seq(seq);
  event.set_time_ms(time_ms);
  event.mutable_message()->set_text(text);
  return event;
}

inline v1::ArtifactInfo MakeInfo(const std::string& name, const std::string& data,
                                 v1::ArtifactKind kind = v1::GRID) {
  v1::ArtifactInfo info;
  info.set_name(name);
  info.set_kind(kind);
  info.set_size(static_cast<int64_t>(data.size()));
  info.set_checksum(Crc32Hex(Crc32(data)));
  info.set_attempt(1);
  return info;
}

// A well-formed transfer of `data` in chunks of `chunk_bytes`; the first
// chunk carries the info and no data.
inline ArtifactScript Transfer(const v1::ArtifactInfo& info, const std::string& data,
                               size_t chunk_bytes = 4) {
  ArtifactScript script;
  v1::ArtifactChunk first;
  *first.mutable_info() = info;
  script.chunks.push_back(first);
  for (size_t i = 0; i < data.size(); i += chunk_bytes) {
    v1::ArtifactChunk chunk;
    chunk.set_data(data.substr(i, chunk_bytes));
    script.chunks.push_back(chunk);
  }
  return script;
}

class FakeCoordinator final : public Coordinator {
 public:
  const std::string& address() const override { return address_; }

  absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitJobRequest& request) override {
    submitted.push_back(request);
    if (!submit_status.ok()) return submit_status;
    return job;
  }

  absl::StatusOr<v1::Job> EvaluateCheckpoint(const v1::EvaluateCheckpointRequest& request) override {
    evaluated.push_back(request);
    if (!evaluate_status.ok()) return evaluate_status;
    return job;
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) override {
    get_job_calls.push_back(job_id);
    if (!get_job_results.empty()) {
      absl::StatusOr<v1::Job> result = get_job_results.front();
      get_job_results.pop_front();
      return result;
    }
    if (!get_job_status.ok()) return get_job_status;
    return job;
  }

  absl::StatusOr<v1::Job> AwaitJob(const std::string& job_id, absl::Duration wait) override {
    await_waits.push_back(wait);
    return GetJob(job_id);
  }

  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) override {
    list_requests.push_back(request);
    return jobs;
  }

  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id, const std::string& reason) override {
    cancelled.emplace_back(job_id, reason);
    return job;
  }

  std::unique_ptr<JobEventStream> WatchJob(const std::string& job_id, int64_t after_seq) override {
    watch_after_seqs.push_back(after_seq);
    if (watch_scripts.empty()) {
      return std::make_unique<FakeStream<v1::JobEvent>>(
          std::vector<v1::JobEvent>{}, absl::UnavailableError("no more scripted streams"));
    }
    WatchScript script = watch_scripts.front();
    watch_scripts.pop_front();
    return std::make_unique<FakeStream<v1::JobEvent>>(script.events, script.end, script.on_finish);
  }

  absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(const std::string& job_id) override {
    return artifact_list;
  }

  std::unique_ptr<ArtifactChunkStream> GetArtifact(const std::string& job_id,
                                                   const std::string& name) override {
    artifact_requests.push_back(name);
    artifact_jobs.push_back(job_id);
    auto job_it = job_transfers.find(job_id);
    const std::map<std::string, ArtifactScript>& scripts =
        job_it != job_transfers.end() ? job_it->second : transfers;
    auto it = scripts.find(name);
    if (it == scripts.end()) {
      return std::make_unique<FakeStream<v1::ArtifactChunk>>(
          std::vector<v1::ArtifactChunk>{}, absl::NotFoundError("no artifact " + name));
    }
    return std::make_unique<FakeStream<v1::ArtifactChunk>>(it->second.chunks, it->second.end);
  }

  absl::StatusOr<v1::ListWorkersResponse> ListWorkers() override { return workers; }

  absl::StatusOr<v1::DeleteArtifactsResponse> DeleteArtifacts(const std::string& job_id) override {
    deleted_jobs.push_back(job_id);
    return delete_result;
  }

  absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage() override { return garbage; }

  // Adds an artifact to the listing and scripts its transfer.
  void AddArtifact(const std::string& name, const std::string& data,
                   v1::ArtifactKind kind = v1::GRID) {
    v1::ArtifactInfo info = MakeInfo(name, data, kind);
    *artifact_list.add_artifacts() = info;
    transfers[name] = Transfer(info, data);
  }

  // Scripted answers.
  v1::Job job;                                          // SubmitJob, Get/AwaitJob, CancelJob
  absl::Status submit_status;                           // non-OK: SubmitJob fails
  absl::Status evaluate_status;                         // non-OK: EvaluateCheckpoint fails
  absl::Status get_job_status;                          // non-OK: Get/AwaitJob fail
  std::deque<absl::StatusOr<v1::Job>> get_job_results;  // consumed before `job`
  v1::ListJobsResponse jobs;
  std::deque<WatchScript> watch_scripts;
  v1::ListArtifactsResponse artifact_list;
  std::map<std::string, ArtifactScript> transfers;
  // Per job id; a job listed here gets only its own transfers.
  std::map<std::string, std::map<std::string, ArtifactScript>> job_transfers;
  v1::ListWorkersResponse workers;
  absl::StatusOr<v1::DeleteArtifactsResponse> delete_result = v1::DeleteArtifactsResponse();
  v1::CollectGarbageResponse garbage;

  // Recorded calls.
  std::vector<v1::SubmitJobRequest> submitted;
  std::vector<v1::EvaluateCheckpointRequest> evaluated;
  std::vector<std::string> get_job_calls;  // AwaitJob's too
  std::vector<std::string> deleted_jobs;   // DeleteArtifacts
  std::vector<absl::Duration> await_waits;
  std::vector<v1::ListJobsRequest> list_requests;
  std::vector<std::pair<std::string, std::string>> cancelled;
  std::vector<int64_t> watch_after_seqs;
  std::vector<std::string> artifact_requests;
  std::vector<std::string> artifact_jobs;  // the job id of each artifact request

 private:
  std::string address_ = "127.0.0.1:7070";
};

// A FILE* whose contents the test can read back (open_memstream).
class CapturedFile {
 public:
  CapturedFile() : file_(open_memstream(&buffer_, &size_)) {}
  ~CapturedFile() {
    std::fclose(file_);
    std::free(buffer_);
  }
  CapturedFile(const CapturedFile&) = delete;
  CapturedFile& operator=(const CapturedFile&) = delete;

  std::FILE* get() { return file_; }
  std::string text() {
    std::fflush(file_);
    return std::string(buffer_, size_);
  }

 private:
  char* buffer_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

}  // namespace dfv::client::testing

#endif  // DFV_TESTS_CLIENT_FAKE_COORDINATOR_H_
