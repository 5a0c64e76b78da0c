// The gRPC services end to end, in process, on 127.0.0.1:0.
#include "server/retention.h"
#include "server/service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/checksum.h"
#include "common/file_util.h"
#include "common/rpc/rpc.h"
#include "common/rpc/tls.h"
#include "proto/dfv.grpc.pb.h"
#include "tests/server/metric_reader.h"
#include "tests/server/test_util.h"
#include "tests/testing/certs.h"
#include "tests/testing/http_get.h"

namespace dfv::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

// Registers a one-slot cpu worker `name` (with its health and /metrics
// addresses, when given); its session id, or "" after a test failure.
std::string RegisterCpuWorker(dfv::v1::WorkerGateway::Stub& gateway, const std::string& name,
                              const std::string& address = "", const std::string& metrics_address = "") {
  dfv::v1::RegisterWorkerRequest reg;
  reg.set_name(name);
  reg.set_slots(1);
  reg.set_device("cpu");
  reg.set_address(address);
  reg.set_metrics_address(metrics_address);
  dfv::v1::RegisterWorkerResponse registered;
  grpc::Status status = gateway.RegisterWorker(Context().get(), reg, &registered);
  EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
  return registered.worker_id();
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.coordinator.data_dir =
        testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    options.tick_interval_ms = 50;
    auto server = CoordinatorServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
    EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
    auto channel = rpc::MakeChannel(server_->address());
    client_ = dfv::v1::Coordinator::NewStub(channel);
    gateway_ = dfv::v1::WorkerGateway::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Queued even before any worker has registered.
  std::string Submit(const std::string& yaml) {
    dfv::v1::SubmitJobRequest request;
    request.set_spec_yaml(yaml);
    request.set_wait_for_workers(true);
    dfv::v1::SubmitJobResponse response;
    grpc::Status status = client_->SubmitJob(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  // Registers a worker and heartbeats until it receives an assignment.
  dfv::v1::Assignment StartOnWorker(std::string* worker_id) {
    *worker_id = RegisterCpuWorker(*gateway_, "w1", "127.0.0.1:9999");
    dfv::v1::HeartbeatRequest beat;
    beat.set_worker_id(*worker_id);
    dfv::v1::HeartbeatResponse response;
    grpc::Status status = gateway_->Heartbeat(Context().get(), beat, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.assignments_size(), 1);
    return response.assignments_size() > 0 ? response.assignments(0) : dfv::v1::Assignment();
  }

  grpc::Status Report(const std::string& worker_id, const dfv::v1::Assignment& a,
                      std::vector<dfv::v1::JobEvent> events) {
    dfv::v1::ReportEventsRequest request;
    request.set_worker_id(worker_id);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    for (auto& e : events) *request.add_events() = std::move(e);
    dfv::v1::ReportEventsResponse response;
    return gateway_->ReportEvents(Context().get(), request, &response);
  }

  grpc::Status Complete(const std::string& worker_id, const dfv::v1::Assignment& a) {
    dfv::v1::CompleteAssignmentRequest request;
    request.set_worker_id(worker_id);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    request.set_outcome(dfv::v1::OUTCOME_SUCCEEDED);
    dfv::v1::CompleteAssignmentResponse response;
    return gateway_->CompleteAssignment(Context().get(), request, &response);
  }

  grpc::Status Upload(const std::string& worker_id, const dfv::v1::Assignment& a,
                      const std::string& name, const std::string& data, const std::string& checksum,
                      dfv::v1::UploadArtifactResponse* response, int64_t declared_size = -1) {
    auto context = Context();
    auto writer = gateway_->UploadArtifact(context.get(), response);
    dfv::v1::UploadArtifactRequest first;
    auto* header = first.mutable_header();
    header->set_worker_id(worker_id);
    header->set_job_id(a.job_id());
    header->set_attempt(a.attempt());
    header->mutable_info()->set_name(name);
    header->mutable_info()->set_kind(dfv::v1::CHECKPOINT);
    header->mutable_info()->set_step(10);
    header->mutable_info()->set_size(declared_size >= 0 ? declared_size : static_cast<int64_t>(data.size()));
    header->mutable_info()->set_checksum(checksum);
    bool ok = writer->Write(first);
    for (size_t at = 0; ok && at < data.size(); at += rpc::kArtifactChunkBytes) {
      dfv::v1::UploadArtifactRequest chunk;
      chunk.set_data(data.substr(at, rpc::kArtifactChunkBytes));
      ok = writer->Write(chunk);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // The job's stored artifacts, as ListArtifacts answers.
  std::vector<dfv::v1::ArtifactInfo> Listed(const std::string& job_id) {
    dfv::v1::ListArtifactsRequest list;
    list.set_job_id(job_id);
    dfv::v1::ListArtifactsResponse listed;
    EXPECT_TRUE(client_->ListArtifacts(Context().get(), list, &listed).ok());
    return {listed.artifacts().begin(), listed.artifacts().end()};
  }

  // GetArtifact of `name`: its status, and the bytes received into `received`.
  grpc::Status Download(const std::string& job_id, const std::string& name, std::string* received) {
    dfv::v1::GetArtifactRequest get;
    get.set_job_id(job_id);
    get.set_name(name);
    auto context = Context();
    auto reader = client_->GetArtifact(context.get(), get);
    dfv::v1::ArtifactChunk chunk;
    while (reader->Read(&chunk)) *received += chunk.data();
    return reader->Finish();
  }

  // An artifact's bytes through GetArtifact ("" when it fails, which fails
  // the test).
  std::string Downloaded(const std::string& job_id, const std::string& name) {
    std::string received;
    const grpc::Status status = Download(job_id, name, &received);
    EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
    return status.ok() ? received : std::string();
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<dfv::v1::Coordinator::Stub> client_;
  std::unique_ptr<dfv::v1::WorkerGateway::Stub> gateway_;
};

dfv::v1::JobEvent StateRunning() {
  dfv::v1::JobEvent event;
  event.mutable_state()->set_state(dfv::v1::RUNNING);
  return event;
}

dfv::v1::JobEvent Text(const std::string& text) {
  dfv::v1::JobEvent event;
  event.mutable_message()->set_text(text);
  return event;
}

TEST_F(ServiceTest, ABadSpecIsInvalidArgumentNamingTheField) {
  dfv::v1::SubmitJobRequest request;
  request.set_spec_yaml(testing::JobYaml("bad") + "train: {lr: -1}\n");
  request.set_source_name("bad.yaml");
  dfv::v1::SubmitJobResponse response;
  grpc::Status status = client_->SubmitJob(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("bad.yaml:"));
  EXPECT_THAT(status.error_message(), HasSubstr("train"));

  request.set_spec_yaml(testing::JobYaml("bad-lr"));
  request.add_overrides("train.lr=-1");
  status = client_->SubmitJob(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("train.lr"));

  dfv::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->ListJobs(Context().get(), dfv::v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
}

TEST_F(ServiceTest, SubmitBeyondTheLiveWorkersIsRefusedUnlessWaiting) {
  dfv::v1::SubmitJobRequest request;
  request.set_spec_yaml(testing::JobYaml("early", /*workers=*/2));
  dfv::v1::SubmitJobResponse response;
  grpc::Status status = client_->SubmitJob(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(),
            "resources.workers: 2 ranks need 2 cpu worker slots, the cluster has 0 (no live cpu "
            "worker); submit with --wait to queue it until workers join");
  dfv::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->ListJobs(Context().get(), dfv::v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);

  request.set_wait_for_workers(true);
  status = client_->SubmitJob(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.job().state(), dfv::v1::QUEUED);
  EXPECT_EQ(response.job().world_size(), 2);
}

TEST_F(ServiceTest, PublishRendezvousIsValidatedAndReleasesTheOtherRanks) {
  const std::string id = Submit(testing::JobYaml("pair", /*workers=*/2));
  std::string ids[2];
  for (int i = 0; i < 2; ++i) {
    ids[i] = RegisterCpuWorker(*gateway_, absl::StrCat("w", i), absl::StrCat("127.0.0.1:", 9000 + i));
    ASSERT_FALSE(ids[i].empty());
  }
  auto beat = [&](int i) {
    dfv::v1::HeartbeatRequest request;
    request.set_worker_id(ids[i]);
    dfv::v1::HeartbeatResponse response;
    EXPECT_TRUE(gateway_->Heartbeat(Context().get(), request, &response).ok());
    return response;
  };
  beat(0);
  beat(1);  // both have heartbeated: placed, w0 (first by name) runs rank 0
  dfv::v1::HeartbeatResponse rank0 = beat(0);
  ASSERT_EQ(rank0.assignments_size(), 1);
  EXPECT_EQ(rank0.assignments(0).rank(), 0);
  EXPECT_EQ(rank0.assignments(0).rendezvous(), "127.0.0.1:0");
  EXPECT_EQ(beat(1).assignments_size(), 0);  // rank 1 waits for the address

  dfv::v1::PublishRendezvousRequest publish;
  publish.set_worker_id(ids[0]);
  publish.set_job_id(id);
  publish.set_attempt(1);
  publish.set_rank(0);
  dfv::v1::PublishRendezvousResponse published;
  for (const char* bad : {"", "no-port", "127.0.0.1:0", "127.0.0.1:70000"}) {
    publish.set_address(bad);
    grpc::Status status = gateway_->PublishRendezvous(Context().get(), publish, &published);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), StartsWith("address:")) << bad;
  }
  publish.set_address("127.0.0.1:4242");
  publish.set_rank(-1);
  grpc::Status status = gateway_->PublishRendezvous(Context().get(), publish, &published);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("rank:"));
  publish.set_rank(1);
  status = gateway_->PublishRendezvous(Context().get(), publish, &published);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), StartsWith("rank: only rank 0 publishes"));
  publish.set_rank(0);
  publish.set_worker_id(ids[1]);
  status = gateway_->PublishRendezvous(Context().get(), publish, &published);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("worker w1 does not run rank 0"));

  publish.set_worker_id(ids[0]);
  status = gateway_->PublishRendezvous(Context().get(), publish, &published);
  ASSERT_TRUE(status.ok()) << status.error_message();
  dfv::v1::HeartbeatResponse rank1 = beat(1);
  ASSERT_EQ(rank1.assignments_size(), 1);
  EXPECT_EQ(rank1.assignments(0).rank(), 1);
  EXPECT_EQ(rank1.assignments(0).world_size(), 2);
  EXPECT_EQ(rank1.assignments(0).rendezvous(), "127.0.0.1:4242");
}

TEST_F(ServiceTest, EveryRequestFieldIsValidated) {
  dfv::v1::Job job;
  grpc::Status status = client_->GetJob(Context().get(), dfv::v1::GetJobRequest(), &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("job_id:"));

  dfv::v1::GetJobRequest get;
  get.set_job_id("j-000042");
  EXPECT_EQ(client_->GetJob(Context().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);

  dfv::v1::ListJobsRequest list;
  list.set_limit(-1);
  dfv::v1::ListJobsResponse jobs;
  status = client_->ListJobs(Context().get(), list, &jobs);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("limit:"));

  dfv::v1::RegisterWorkerRequest reg;
  reg.set_name("w1");
  reg.set_slots(0);
  reg.set_device("cpu");
  dfv::v1::RegisterWorkerResponse registered;
  status = gateway_->RegisterWorker(Context().get(), reg, &registered);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("slots:"));
  reg.set_slots(1);
  reg.set_device("tpu");
  status = gateway_->RegisterWorker(Context().get(), reg, &registered);
  EXPECT_THAT(status.error_message(), StartsWith("device:"));
  reg.set_device("cpu");
  reg.set_name("../evil");
  status = gateway_->RegisterWorker(Context().get(), reg, &registered);
  EXPECT_THAT(status.error_message(), StartsWith("name:"));

  dfv::v1::HeartbeatRequest beat;
  beat.set_worker_id("w-0000000000000000");
  dfv::v1::HeartbeatResponse beat_response;
  EXPECT_EQ(gateway_->Heartbeat(Context().get(), beat, &beat_response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  beat.add_running()->set_job_id("j-000001");
  status = gateway_->Heartbeat(Context().get(), beat, &beat_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("running[0].attempt:"));

  dfv::v1::CompleteAssignmentRequest complete;
  complete.set_worker_id("w-0000000000000000");
  complete.set_job_id("j-000001");
  complete.set_attempt(1);
  dfv::v1::CompleteAssignmentResponse completed;
  status = gateway_->CompleteAssignment(Context().get(), complete, &completed);
  EXPECT_THAT(status.error_message(), StartsWith("outcome:"));

  dfv::v1::WatchJobRequest watch;
  watch.set_job_id("j-000001");
  watch.set_after_seq(-1);
  auto context = Context();
  auto reader = client_->WatchJob(context.get(), watch);
  dfv::v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("after_seq:"));

  dfv::v1::GetArtifactRequest get_artifact;
  get_artifact.set_job_id("j-000001");
  get_artifact.set_name("../../etc/passwd");
  auto artifact_context = Context();
  auto artifact_reader = client_->GetArtifact(artifact_context.get(), get_artifact);
  dfv::v1::ArtifactChunk chunk;
  EXPECT_FALSE(artifact_reader->Read(&chunk));
  status = artifact_reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("name:"));
}

// Artifact names that leave the job's folder ("..", absolute, a NUL byte)
// are refused on both services before anything is read or stored, and a
// message over the size limit is refused by gRPC on both.
TEST_F(ServiceTest, BadArtifactNamesAndOversizedMessagesAreRefusedOnBothServices) {
  const std::string id = Submit(testing::JobYaml("names"));
  const std::string worker_id = RegisterCpuWorker(*gateway_, "w1");
  ASSERT_FALSE(worker_id.empty());
  const std::string bad_names[] = {"../outside", "checkpoints/../../x", "/etc/passwd", std::string("a\0b", 3)};
  for (const std::string& name : bad_names) {
    std::string ignored;
    grpc::Status status = Download(id, name, &ignored);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(status.error_message(), StartsWith("name:")) << name;

    dfv::v1::FetchCheckpointRequest fetch;
    fetch.set_worker_id(worker_id);
    fetch.set_job_id(id);
    fetch.set_attempt(1);
    fetch.set_name(name);
    auto fetch_context = Context();
    auto fetched = gateway_->FetchCheckpoint(fetch_context.get(), fetch);
    dfv::v1::ArtifactChunk chunk;
    while (fetched->Read(&chunk)) {
    }
    status = fetched->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;

    dfv::v1::UploadArtifactResponse uploaded;
    auto upload_context = Context();
    auto writer = gateway_->UploadArtifact(upload_context.get(), &uploaded);
    dfv::v1::UploadArtifactRequest first;
    first.mutable_header()->set_worker_id(worker_id);
    first.mutable_header()->set_job_id(id);
    first.mutable_header()->set_attempt(1);
    first.mutable_header()->mutable_info()->set_name(name);
    first.mutable_header()->mutable_info()->set_kind(dfv::v1::REPORT);
    first.mutable_header()->mutable_info()->set_size(2);
    first.set_data("{}");
    writer->Write(first);
    writer->WritesDone();
    status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name << ": " << status.error_message();
  }
  dfv::v1::ListArtifactsRequest list;
  list.set_job_id(id);
  dfv::v1::ListArtifactsResponse listed;
  ASSERT_TRUE(client_->ListArtifacts(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.artifacts_size(), 0) << "nothing was stored";

  // Over the 64 MiB limit: gRPC refuses the message before a handler runs.
  const std::string huge(static_cast<size_t>(rpc::kMaxMessageBytes) + 1024, 'x');
  dfv::v1::SubmitJobRequest submit;
  submit.set_spec_yaml(huge);
  dfv::v1::SubmitJobResponse submitted;
  EXPECT_EQ(client_->SubmitJob(Context().get(), submit, &submitted).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  dfv::v1::ReportEventsRequest report;
  report.set_worker_id(worker_id);
  report.set_job_id(id);
  report.set_attempt(1);
  report.add_events()->mutable_message()->set_text(huge);
  dfv::v1::ReportEventsResponse reported;
  EXPECT_EQ(gateway_->ReportEvents(Context().get(), report, &reported).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  dfv::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->ListJobs(Context().get(), {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1) << "the oversized submission stored nothing";
}

// The Coordinator refuses what a worker may not report; a gRPC client sees
// INVALID_ARGUMENT naming the event, even from an unknown session.
TEST_F(ServiceTest, EventsAWorkerMayNotReportAreInvalidArgument) {
  dfv::v1::Assignment unknown;
  unknown.set_job_id("j-000001");
  unknown.set_attempt(1);
  dfv::v1::JobEvent failed;
  failed.mutable_state()->set_state(dfv::v1::FAILED);
  grpc::Status status = Report("w-0000000000000000", unknown, {Text("hello"), failed});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "events[1].state.state: a worker may only report RUNNING, got FAILED");

  dfv::v1::JobEvent artifact;
  artifact.mutable_artifact()->set_name("model.pt");
  status = Report("w-0000000000000000", unknown, {artifact});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "events[0]: artifact events come from UploadArtifact, not ReportEvents");

  status = Report("w-0000000000000000", unknown, {dfv::v1::JobEvent()});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "events[0]: has no payload");

  // Well-formed events from an unknown session: register again.
  status = Report("w-0000000000000000", unknown, {StateRunning()});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("register again"));
}

TEST_F(ServiceTest, WatchJobReplaysThenFollowsUntilTheJobIsFinal) {
  const std::string id = Submit(testing::JobYaml("watched"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);  // QUEUED, SCHEDULED

  dfv::v1::WatchJobRequest request;
  request.set_job_id(id);
  auto context = Context();
  auto reader = client_->WatchJob(context.get(), request);
  std::vector<dfv::v1::JobEvent> seen;
  dfv::v1::JobEvent event;
  // Replay.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(reader->Read(&event));
    seen.push_back(event);
  }
  EXPECT_EQ(seen[0].state().state(), dfv::v1::QUEUED);
  EXPECT_EQ(seen[1].state().state(), dfv::v1::SCHEDULED);
  // Follow.
  ASSERT_TRUE(Report(worker_id, assignment, {StateRunning(), Text("step 1")}).ok());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(reader->Read(&event));
    seen.push_back(event);
  }
  EXPECT_EQ(seen[2].state().state(), dfv::v1::RUNNING);
  EXPECT_EQ(seen[3].message().text(), "step 1");
  ASSERT_TRUE(Complete(worker_id, assignment).ok());
  while (reader->Read(&event)) seen.push_back(event);
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen.back().state().state(), dfv::v1::SUCCEEDED);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].seq(), static_cast<int64_t>(i + 1));

  // A watch of a finished job replays what follows after_seq and ends.
  request.set_after_seq(3);
  auto again_context = Context();
  auto again = client_->WatchJob(again_context.get(), request);
  std::vector<int64_t> seqs;
  while (again->Read(&event)) seqs.push_back(event.seq());
  EXPECT_TRUE(again->Finish().ok());
  EXPECT_EQ(seqs, (std::vector<int64_t>{4, 5}));

  request.set_after_seq(5);
  auto none_context = Context();
  auto none = client_->WatchJob(none_context.get(), request);
  EXPECT_FALSE(none->Read(&event));
  EXPECT_TRUE(none->Finish().ok());

  // From beyond the newest event: refused, naming it (it would skip events).
  request.set_after_seq(50);
  auto future_context = Context();
  auto future = client_->WatchJob(future_context.get(), request);
  EXPECT_FALSE(future->Read(&event));
  grpc::Status future_status = future->Finish();
  EXPECT_EQ(future_status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(future_status.error_message(), HasSubstr("after_seq: 50 is beyond job"));
  EXPECT_THAT(future_status.error_message(), HasSubstr("newest event, 5"));

  request.set_job_id("j-000404");
  request.set_after_seq(0);
  auto missing_context = Context();
  auto missing = client_->WatchJob(missing_context.get(), request);
  EXPECT_FALSE(missing->Read(&event));
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, WatchReplaysLongLogsInBatchesAndOrdersConcurrentAppends) {
  const std::string id = Submit(testing::JobYaml("busy"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  std::vector<dfv::v1::JobEvent> many;
  for (int i = 0; i < 600; ++i) many.push_back(Text("replayed " + std::to_string(i)));
  ASSERT_TRUE(Report(worker_id, assignment, std::move(many)).ok());  // seq 3..602

  dfv::v1::WatchJobRequest request;
  request.set_job_id(id);
  auto context = Context();
  auto reader = client_->WatchJob(context.get(), request);
  // Appends from several threads at once while the watch replays: their
  // notifications may arrive out of order; the stream must not.
  std::vector<std::thread> reporters;
  for (int t = 0; t < 4; ++t) {
    reporters.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        EXPECT_TRUE(Report(worker_id, assignment, {Text(absl::StrCat("live ", t, "/", i))}).ok());
      }
    });
  }
  for (auto& thread : reporters) thread.join();
  ASSERT_TRUE(Complete(worker_id, assignment).ok());

  std::vector<int64_t> seqs;
  dfv::v1::JobEvent event;
  while (reader->Read(&event)) seqs.push_back(event.seq());
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(seqs.size(), 2u + 600u + 100u + 1u);
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  EXPECT_EQ(event.state().state(), dfv::v1::SUCCEEDED);
}

TEST_F(ServiceTest, ArtifactsRoundTripInChunks) {
  const std::string id = Submit(testing::JobYaml("artifacts"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  std::string data;
  for (int i = 0; data.size() < 2 * rpc::kArtifactChunkBytes + 12345; ++i) {
    data += std::to_string(i * 7919) + ",";
  }
  const std::string checksum = Crc32Hex(Crc32(data));

  dfv::v1::UploadArtifactResponse uploaded;
  grpc::Status status = Upload(worker_id, assignment, "checkpoints/step-10.ckpt", data,
                               "crc32:00000000", &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  status = Upload(worker_id, assignment, "checkpoints/step-10.ckpt", data, checksum, &uploaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(uploaded.info().size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(uploaded.info().checksum(), checksum);

  dfv::v1::ListArtifactsRequest list;
  list.set_job_id(id);
  dfv::v1::ListArtifactsResponse listed;
  ASSERT_TRUE(client_->ListArtifacts(Context().get(), list, &listed).ok());
  ASSERT_EQ(listed.artifacts_size(), 1);
  EXPECT_EQ(listed.artifacts(0).name(), "checkpoints/step-10.ckpt");

  dfv::v1::GetArtifactRequest get;
  get.set_job_id(id);
  get.set_name("checkpoints/step-10.ckpt");
  auto context = Context();
  auto reader = client_->GetArtifact(context.get(), get);
  dfv::v1::ArtifactChunk chunk;
  std::string received;
  int chunks = 0;
  while (reader->Read(&chunk)) {
    if (chunks == 0) {
      EXPECT_EQ(chunk.info().name(), "checkpoints/step-10.ckpt");
      EXPECT_EQ(chunk.info().checksum(), checksum);
    } else {
      EXPECT_FALSE(chunk.has_info());
    }
    received += chunk.data();
    ++chunks;
  }
  status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(received, data);

  get.set_name("checkpoints/missing.ckpt");
  auto missing_context = Context();
  auto missing = client_->GetArtifact(missing_context.get(), get);
  EXPECT_FALSE(missing->Read(&chunk));
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// The coordinator reads an upload's next message while it writes the last
// one: many chunks still land in order, and an error found while a read is in
// flight (more bytes than declared) ends the call with that error, storing
// nothing.
TEST_F(ServiceTest, UploadsOfManyChunksLandInOrderAndAnOversizedOneStoresNothing) {
  const std::string id = Submit(testing::JobYaml("pipelined"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  std::string data;
  for (int chunk = 0; chunk < 9; ++chunk) {
    data.append(rpc::kArtifactChunkBytes - chunk, static_cast<char>('a' + chunk));
  }
  dfv::v1::UploadArtifactResponse uploaded;
  const int64_t declared = rpc::kArtifactChunkBytes + rpc::kArtifactChunkBytes / 2;
  grpc::Status status = Upload(worker_id, assignment, "checkpoints/step-9.ckpt", data,
                               Crc32Hex(Crc32(data)), &uploaded, declared);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("larger than the ", declared, " bytes")));
  EXPECT_TRUE(Listed(id).empty()) << "the refused upload stored nothing";

  status = Upload(worker_id, assignment, "checkpoints/step-9.ckpt", data, Crc32Hex(Crc32(data)), &uploaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(Downloaded(id, "checkpoints/step-9.ckpt") == data) << "the stored bytes differ from the uploaded ones";
}

// A sender that sums the file while it streams it gives the checksum after
// the data instead of in the header; every other way to give it (none, both,
// twice, data after it, a wrong one) is refused, storing nothing.
TEST_F(ServiceTest, AnUploadsChecksumMayFollowItsDataOnceAndLast) {
  const std::string id = Submit(testing::JobYaml("trailer"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  const std::string data(rpc::kArtifactChunkBytes + 777, 'q');
  const std::string good = Crc32Hex(Crc32(data));
  struct Case {
    std::string what;
    std::string header_checksum;
    std::vector<std::pair<std::string, std::string>> messages;  // data, checksum
    grpc::StatusCode code;
    std::string message;
  };
  const std::string first = data.substr(0, rpc::kArtifactChunkBytes);
  const std::string rest = data.substr(rpc::kArtifactChunkBytes);
  const std::vector<Case> cases = {
      {"none", "", {{first, ""}, {rest, ""}}, grpc::StatusCode::INVALID_ARGUMENT, "ended without a checksum"},
      {"both", good, {{first, ""}, {rest, good}}, grpc::StatusCode::INVALID_ARGUMENT,
       "both in its header and after its data"},
      {"twice", "", {{first, ""}, {rest, good}, {"", good}}, grpc::StatusCode::INVALID_ARGUMENT, "twice"},
      {"data after it", "", {{first, good}, {rest, ""}}, grpc::StatusCode::INVALID_ARGUMENT,
       "data after its checksum"},
      {"bad format", "", {{data, "md5:x"}}, grpc::StatusCode::INVALID_ARGUMENT, "must look like crc32:"},
      {"wrong", "", {{data, "crc32:00000000"}}, grpc::StatusCode::DATA_LOSS, "has checksum " + good},
      {"after the data", "", {{first, ""}, {rest, ""}, {"", good}}, grpc::StatusCode::OK, ""},
  };
  for (const Case& c : cases) {
    auto context = Context();
    dfv::v1::UploadArtifactResponse uploaded;
    auto writer = gateway_->UploadArtifact(context.get(), &uploaded);
    dfv::v1::UploadArtifactRequest header;
    header.mutable_header()->set_worker_id(worker_id);
    header.mutable_header()->set_job_id(assignment.job_id());
    header.mutable_header()->set_attempt(assignment.attempt());
    dfv::v1::ArtifactInfo* info = header.mutable_header()->mutable_info();
    info->set_name("checkpoints/step-10.ckpt");
    info->set_kind(dfv::v1::CHECKPOINT);
    info->set_step(10);
    info->set_size(static_cast<int64_t>(data.size()));
    info->set_checksum(c.header_checksum);
    bool ok = writer->Write(header);
    for (const auto& [bytes, checksum] : c.messages) {
      dfv::v1::UploadArtifactRequest message;
      message.set_data(bytes);
      message.set_checksum(checksum);
      ok = ok && writer->Write(message);
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.what;
    const std::vector<dfv::v1::ArtifactInfo> listed = Listed(id);
    if (c.code != grpc::StatusCode::OK) {
      EXPECT_TRUE(listed.empty()) << c.what << " stored nothing";
    } else {
      ASSERT_EQ(listed.size(), 1u);
      EXPECT_EQ(listed[0].checksum(), good);
      EXPECT_EQ(uploaded.info().checksum(), good);
      EXPECT_TRUE(Downloaded(id, listed[0].name()) == data);
    }
  }
}

TEST_F(ServiceTest, DeleteArtifactsAndCollectGarbageTranslate) {
  const std::string id = Submit(testing::JobYaml("deleted"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  dfv::v1::UploadArtifactResponse uploaded;
  const std::string data = "checkpoint bytes";
  ASSERT_TRUE(Upload(worker_id, assignment, "checkpoints/step-1.ckpt", data, Crc32Hex(Crc32(data)), &uploaded).ok());

  dfv::v1::DeleteArtifactsRequest bad;
  bad.set_job_id("../etc");
  dfv::v1::DeleteArtifactsResponse deleted;
  EXPECT_EQ(client_->DeleteArtifacts(Context().get(), bad, &deleted).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  dfv::v1::DeleteArtifactsRequest request;
  request.set_job_id(id);
  grpc::Status running = client_->DeleteArtifacts(Context().get(), request, &deleted);
  EXPECT_EQ(running.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << running.error_message();

  dfv::v1::CollectGarbageResponse report;
  ASSERT_TRUE(client_->CollectGarbage(Context().get(), dfv::v1::CollectGarbageRequest(), &report).ok());
  ASSERT_EQ(report.this_pass_size(), kDeleteReasonCount);
  ASSERT_EQ(report.since_start_size(), kDeleteReasonCount);
  for (int i = 0; i < kDeleteReasonCount; ++i) {
    EXPECT_EQ(report.this_pass(i).reason(), DeleteReasonLabel(kDeleteReasons[i]));
    EXPECT_EQ(report.this_pass(i).files(), 0);
  }
  EXPECT_EQ(report.stored_bytes(), static_cast<int64_t>(data.size()));
  EXPECT_GT(report.available_bytes(), 0);
}

TEST_F(ServiceTest, EvaluateCheckpointValidatesItsFieldsAndAnswersFromTheIoThreads) {
  const std::string id = Submit(testing::JobYaml("trained"));
  std::string worker_id;
  const dfv::v1::Assignment assignment = StartOnWorker(&worker_id);
  dfv::v1::UploadArtifactResponse uploaded;
  const std::string data = "checkpoint bytes";
  ASSERT_TRUE(Upload(worker_id, assignment, "checkpoints/step-1.ckpt", data, Crc32Hex(Crc32(data)), &uploaded).ok());

  auto evaluate = [&](const std::string& job_id, const std::string& checkpoint,
                      std::vector<std::string> overrides, dfv::v1::EvaluateCheckpointResponse* response) {
    dfv::v1::EvaluateCheckpointRequest request;
    request.set_job_id(job_id);
    request.set_checkpoint(checkpoint);
    for (const std::string& o : overrides) request.add_overrides(o);
    request.set_wait_for_workers(true);
    return client_->EvaluateCheckpoint(Context().get(), request, response);
  };
  dfv::v1::EvaluateCheckpointResponse response;
  grpc::Status status = evaluate("../etc", "", {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("job_id"));
  status = evaluate(id, "../step-1.ckpt", {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("checkpoint:"));
  status = evaluate(id, "", {""}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("overrides[0]"));
  status = evaluate("j-000042", "", {"evaluate.tsne=true"}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();

  status = evaluate(id, "step-1.ckpt", {"evaluate.tsne=true"}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.job().name(), "trained-eval");
  EXPECT_EQ(response.job().evaluates().job_id(), id);
  EXPECT_EQ(response.job().evaluates().checkpoint(), "checkpoints/step-1.ckpt");
}

TEST_F(ServiceTest, ShutdownEndsOpenWatchesWithUnavailable) {
  const std::string id = Submit(testing::JobYaml("interrupted"));
  dfv::v1::WatchJobRequest request;
  request.set_job_id(id);
  auto context = Context();
  auto reader = client_->WatchJob(context.get(), request);
  dfv::v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.seq(), 1);
  std::thread stopper([&] { server_->Shutdown(); });
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  stopper.join();
  server_->Wait();
}

TEST_F(ServiceTest, TheInterceptorCountsEveryCallByMethodAndCode) {
  ASSERT_NE(server_->metrics(), nullptr);
  const std::string id = Submit(testing::JobYaml("counted"));
  dfv::v1::GetJobRequest get;
  get.set_job_id(id);
  dfv::v1::Job job;
  ASSERT_TRUE(client_->GetJob(Context().get(), get, &job).ok());
  get.set_job_id("../nope");
  ASSERT_EQ(client_->GetJob(Context().get(), get, &job).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A streaming call: the job is not final, so the watch runs until cancelled.
  dfv::v1::WatchJobRequest watch;
  watch.set_job_id(id);
  auto watch_context = Context();
  auto reader = client_->WatchJob(watch_context.get(), watch);
  dfv::v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  watch_context->TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  const std::map<std::string, std::string> get_job = {{"grpc_service", "dfv.v1.Coordinator"},
                                                      {"grpc_method", "GetJob"}};
  auto with_code = [&](std::map<std::string, std::string> labels, const char* code) {
    labels.emplace("grpc_code", code);
    return labels;
  };
  std::vector<prometheus::MetricFamily> families = server_->metrics()->Collect();
  EXPECT_EQ(testing::SeriesValue(families, "grpc_server_handled_total", with_code(get_job, "OK")),
            1.0);
  EXPECT_EQ(testing::SeriesValue(families, "grpc_server_handled_total",
                                 with_code(get_job, "InvalidArgument")),
            1.0);
  EXPECT_EQ(testing::SeriesValue(families, "grpc_server_handled_total",
                                 with_code(get_job, "NotFound")),
            0.0);
  EXPECT_EQ(testing::SeriesValue(families, "grpc_server_handling_seconds", get_job), 2.0);
  EXPECT_EQ(testing::SeriesValue(families, "grpc_server_handled_total",
                                 {{"grpc_service", "dfv.v1.Coordinator"},
                                  {"grpc_method", "SubmitJob"},
                                  {"grpc_code", "OK"}}),
            1.0);
  // The stream ends on the server once it sees the cancel; wait for that.
  const std::map<std::string, std::string> watch_job = {{"grpc_service", "dfv.v1.Coordinator"},
                                                        {"grpc_method", "WatchJob"}};
  std::optional<double> watches;
  for (int i = 0; i < 200; ++i) {
    watches = testing::SeriesValue(server_->metrics()->Collect(), "grpc_server_handling_seconds",
                                   watch_job);
    if (watches == 1.0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(watches, 1.0);
  EXPECT_EQ(testing::SeriesValue(server_->metrics()->Collect(), "grpc_server_handled_total",
                                 with_code(watch_job, "Canceled")),
            1.0);
}

// `promtool check metrics` (Prometheus's own linter) on what /metrics serves.
TEST_F(ServiceTest, PromtoolAcceptsTheMetricsPage) {
  const char* kPromtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(kPromtool)) {
    GTEST_SKIP() << kPromtool << " is not installed (Debian package prometheus; "
                 << "scripts/install-deps.sh installs it)";
  }
  Submit(testing::JobYaml("scraped"));
  ASSERT_FALSE(server_->metrics_address().empty());
  absl::StatusOr<dfv::testing::HttpResponse> page =
      dfv::testing::HttpGet(server_->metrics_address(), "/metrics");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("dfv_jobs{state=\"QUEUED\"} 1"));
  EXPECT_THAT(page->body, HasSubstr("# TYPE grpc_server_handling_seconds histogram"));
  EXPECT_THAT(page->body, HasSubstr("process_resident_memory_bytes"));

  const std::string dir = testing::FreshDir("promtool");
  ASSERT_TRUE(WriteFileAtomically(dir + "/metrics.txt", page->body).ok());
  const std::string command =
      absl::StrCat(kPromtool, " check metrics < ", dir, "/metrics.txt > ", dir, "/out.txt 2>&1");
  const int rc = std::system(command.c_str());
  absl::StatusOr<std::string> out = ReadFileToString(dir + "/out.txt");
  EXPECT_EQ(rc, 0) << (out.ok() ? *out : out.status().ToString());
}

TEST_F(ServiceTest, AMetricsAddressIsValidated) {
  dfv::v1::RegisterWorkerRequest reg;
  reg.set_name("w1");
  reg.set_slots(1);
  reg.set_device("cpu");
  dfv::v1::RegisterWorkerResponse registered;
  for (const char* bad : {"no-port", "127.0.0.1:0", "127.0.0.1:70000"}) {
    reg.set_metrics_address(bad);
    grpc::Status status = gateway_->RegisterWorker(Context().get(), reg, &registered);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), StartsWith("metrics_address:")) << bad;
  }
  reg.set_metrics_address("127.0.0.1:9100");
  ASSERT_TRUE(gateway_->RegisterWorker(Context().get(), reg, &registered).ok());
  EXPECT_EQ(server_->coordinator()->MetricsTargets(),
            (std::vector<MetricsTarget>{{"w1", "127.0.0.1:9100"}}));
}

// The file-SD file follows the live workers: written at start, rewritten
// when a worker with a metrics address registers or is lost.
TEST(CoordinatorServerTest, KeepsThePrometheusSdFileInLineWithTheLiveWorkers) {
  CoordinatorServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.coordinator.data_dir = testing::FreshDir("sd-file");
  options.coordinator.lease_ttl_ms = 1500;
  options.coordinator.heartbeat_interval_ms = 100;
  options.tick_interval_ms = 20;
  options.prometheus_sd_file = options.coordinator.data_dir + "/workers.json";
  auto server = CoordinatorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto read = [&]() -> nlohmann::json {
    absl::StatusOr<std::string> text = ReadFileToString(options.prometheus_sd_file);
    return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
  };
  EXPECT_EQ(read(), nlohmann::json::array());

  auto gateway = dfv::v1::WorkerGateway::NewStub(rpc::MakeChannel((*server)->address()));
  std::string ids[2];
  for (int i = 0; i < 2; ++i) {
    ids[i] = RegisterCpuWorker(*gateway, absl::StrCat("w", i), "", absl::StrCat("127.0.0.1:", 9100 + i));
    ASSERT_FALSE(ids[i].empty());
  }
  const nlohmann::json both = nlohmann::json::parse(R"([
    {"targets": ["127.0.0.1:9100"], "labels": {"worker": "w0"}},
    {"targets": ["127.0.0.1:9101"], "labels": {"worker": "w1"}}])");
  const nlohmann::json only_w1 = nlohmann::json::parse(R"([
    {"targets": ["127.0.0.1:9101"], "labels": {"worker": "w1"}}])");
  // w1 keeps heartbeating, w0 goes silent and is lost after its lease.
  nlohmann::json seen;
  bool saw_both = false;
  for (int i = 0; i < 300; ++i) {
    dfv::v1::HeartbeatRequest beat;
    beat.set_worker_id(ids[1]);
    dfv::v1::HeartbeatResponse response;
    ASSERT_TRUE(gateway->Heartbeat(Context().get(), beat, &response).ok());
    seen = read();
    saw_both = saw_both || seen == both;
    if (saw_both && seen == only_w1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(saw_both);
  EXPECT_EQ(seen, only_w1);
}

TEST(CoordinatorServerTest, WithoutAMetricsAddressThereAreNoMetrics) {
  CoordinatorServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.coordinator.data_dir = testing::FreshDir("no-metrics");
  options.metrics_listen = "";
  auto server = CoordinatorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->metrics(), nullptr);
  EXPECT_EQ((*server)->metrics_address(), "");

  options.metrics_listen = "0.0.0.0:0";
  options.coordinator.data_dir = testing::FreshDir("open-metrics");
  auto open = CoordinatorServer::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(open.status())) << open.status();
}

TEST(CoordinatorServerTest, RefusesNonLoopbackWithoutTls) {
  CoordinatorServerOptions options;
  options.listen_address = "0.0.0.0:0";
  options.coordinator.data_dir = testing::FreshDir("non-loopback");
  auto server = CoordinatorServer::Create(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(),
              HasSubstr("no TLS configured: --listen must be a loopback address"));
}

// With certificates the one port serves TLS on any address: dfvctl with the
// CA only and a worker with its client certificate get in, plaintext does not.
TEST(CoordinatorServerTest, ServesTlsOnAnyAddress) {
  const std::string certs = testing::FreshDir("tls-certs");
  ASSERT_TRUE(dfv::testing::MakeCerts(certs, {"w1"}).ok());
  CoordinatorServerOptions options;
  options.listen_address = "0.0.0.0:0";
  options.coordinator.data_dir = testing::FreshDir("tls");
  options.tls = dfv::testing::CoordinatorTls(certs);
  auto server = CoordinatorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->exposure(), rpc::ListenExposure::kTls);
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  for (const rpc::TlsFiles& files : {dfv::testing::ClientTls(certs), dfv::testing::WorkerTls(certs, "w1")}) {
    auto channel = rpc::MakeChannel(address, files);
    ASSERT_TRUE(channel.ok()) << channel.status();
    dfv::v1::ListWorkersResponse workers;
    grpc::Status status =
        dfv::v1::Coordinator::NewStub(*channel)->ListWorkers(Context().get(), dfv::v1::ListWorkersRequest(), &workers);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  dfv::v1::ListWorkersResponse workers;
  grpc::Status plaintext = dfv::v1::Coordinator::NewStub(rpc::MakeChannel(address))
                               ->ListWorkers(Context().get(), dfv::v1::ListWorkersRequest(), &workers);
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(CoordinatorServerTest, RefusesIncompleteTlsFiles) {
  const std::string certs = testing::FreshDir("tls-bad-certs");
  ASSERT_TRUE(dfv::testing::MakeCerts(certs).ok());
  CoordinatorServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.coordinator.data_dir = testing::FreshDir("tls-bad");
  options.tls = dfv::testing::CoordinatorTls(certs);
  options.tls.ca.clear();
  auto server = CoordinatorServer::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(server.status())) << server.status();
  EXPECT_THAT(server.status().message(), HasSubstr("--tls-ca: required"));
  options.tls = dfv::testing::CoordinatorTls(certs);
  options.tls.cert = certs + "/missing.pem";
  server = CoordinatorServer::Create(options);
  EXPECT_THAT(server.status().message(), HasSubstr("--tls-cert: cannot read " + options.tls.cert));
}

TEST(CoordinatorServerTest, InsecureServesPlaintextOnAnyAddress) {
  CoordinatorServerOptions options;
  options.listen_address = "0.0.0.0:0";
  options.metrics_listen = "0.0.0.0:0";
  options.coordinator.data_dir = testing::FreshDir("insecure");
  options.insecure = true;
  auto server = CoordinatorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->exposure(), rpc::ListenExposure::kInsecurePlaintext);
  dfv::v1::ListWorkersResponse workers;
  grpc::Status status = dfv::v1::Coordinator::NewStub(rpc::MakeChannel(absl::StrCat("127.0.0.1:", (*server)->port())))
                            ->ListWorkers(Context().get(), dfv::v1::ListWorkersRequest(), &workers);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace dfv::server
