// Who may call what, through a real in-process gRPC server on 127.0.0.1:0
// with an auth file: every method of both services is called.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "common/file_util.h"
#include "common/rpc/bearer_token.h"
#include "common/rpc/rpc.h"
#include "proto/dfv.grpc.pb.h"
#include "server/auth.h"
#include "server/service.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSubmitterToken[] = "submitter-token-0123456789";
constexpr char kViewerToken[] = "viewer-token-0123456789";

// A call of one method with `context`; its status.
using Call = std::function<grpc::Status(grpc::ClientContext*)>;

std::set<std::string> MethodNames(const char* service) {
  const google::protobuf::ServiceDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  std::set<std::string> names;
  for (int i = 0; descriptor != nullptr && i < descriptor->method_count(); ++i) {
    names.insert(descriptor->method(i)->name());
  }
  return names;
}

template <typename Map>
std::set<std::string> Keys(const Map& map) {
  std::set<std::string> keys;
  for (const auto& [key, value] : map) keys.insert(key);
  return keys;
}

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir =
        testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    const std::string auth_file = dir + "/auth.txt";
    ASSERT_TRUE(WriteFileAtomically(
                    auth_file, absl::StrCat("# test tokens\n", HashToken(kSubmitterToken),
                                            " submitter alice\n", HashToken(kViewerToken),
                                            " viewer bob\n"))
                    .ok());
    CoordinatorServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.coordinator.data_dir = dir + "/data";
    options.tick_interval_ms = 50;
    options.metrics_listen = "";
    options.auth.auth_file = auth_file;
    auto server = CoordinatorServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = rpc::MakeChannel(server_->address());
    client_ = dfv::v1::Coordinator::NewStub(channel);
    gateway_ = dfv::v1::WorkerGateway::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // A context with a deadline and, unless empty, "authorization: <value>".
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& authorization = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!authorization.empty()) context->AddMetadata(rpc::kAuthorizationKey, authorization);
    return context;
  }
  static std::string Bearer(const std::string& token) {
    return absl::StrCat(rpc::kBearerPrefix, token);
  }

  // Every client method, called for job j-000001 (unknown unless submitted).
  std::map<std::string, Call> ClientCalls() {
    std::map<std::string, Call> calls;
    calls["SubmitJob"] = [this](grpc::ClientContext* context) {
      dfv::v1::SubmitJobRequest request;
      request.set_spec_yaml(testing::JobYaml("auth"));
      request.set_wait_for_workers(true);
      dfv::v1::SubmitJobResponse response;
      return client_->SubmitJob(context, request, &response);
    };
    calls["EvaluateCheckpoint"] = [this](grpc::ClientContext* context) {
      dfv::v1::EvaluateCheckpointRequest request;
      request.set_job_id("j-000001");
      request.add_overrides("evaluate.classifiers=[mlp]");
      dfv::v1::EvaluateCheckpointResponse response;
      return client_->EvaluateCheckpoint(context, request, &response);
    };
    calls["GetJob"] = [this](grpc::ClientContext* context) {
      dfv::v1::GetJobRequest request;
      request.set_job_id("j-000001");
      dfv::v1::Job response;
      return client_->GetJob(context, request, &response);
    };
    calls["ListJobs"] = [this](grpc::ClientContext* context) {
      dfv::v1::ListJobsResponse response;
      return client_->ListJobs(context, dfv::v1::ListJobsRequest(), &response);
    };
    calls["CancelJob"] = [this](grpc::ClientContext* context) {
      dfv::v1::CancelJobRequest request;
      request.set_job_id("j-000001");
      dfv::v1::CancelJobResponse response;
      return client_->CancelJob(context, request, &response);
    };
    calls["WatchJob"] = [this](grpc::ClientContext* context) {
      dfv::v1::WatchJobRequest request;
      request.set_job_id("j-000001");
      auto reader = client_->WatchJob(context, request);
      dfv::v1::JobEvent event;
      while (reader->Read(&event)) {
      }
      return reader->Finish();
    };
    calls["ListArtifacts"] = [this](grpc::ClientContext* context) {
      dfv::v1::ListArtifactsRequest request;
      request.set_job_id("j-000001");
      dfv::v1::ListArtifactsResponse response;
      return client_->ListArtifacts(context, request, &response);
    };
    calls["GetArtifact"] = [this](grpc::ClientContext* context) {
      dfv::v1::GetArtifactRequest request;
      request.set_job_id("j-000001");
      request.set_name("report.json");
      auto reader = client_->GetArtifact(context, request);
      dfv::v1::ArtifactChunk chunk;
      while (reader->Read(&chunk)) {
      }
      return reader->Finish();
    };
    calls["ListWorkers"] = [this](grpc::ClientContext* context) {
      dfv::v1::ListWorkersResponse response;
      return client_->ListWorkers(context, dfv::v1::ListWorkersRequest(), &response);
    };
    calls["DeleteArtifacts"] = [this](grpc::ClientContext* context) {
      dfv::v1::DeleteArtifactsRequest request;
      request.set_job_id("j-000001");
      dfv::v1::DeleteArtifactsResponse response;
      return client_->DeleteArtifacts(context, request, &response);
    };
    calls["CollectGarbage"] = [this](grpc::ClientContext* context) {
      dfv::v1::CollectGarbageResponse response;
      return client_->CollectGarbage(context, dfv::v1::CollectGarbageRequest(), &response);
    };
    return calls;
  }

  // Every worker method, as session `worker_id` about `a`.
  std::map<std::string, Call> WorkerCalls(const std::string& worker_id,
                                          const dfv::v1::Assignment& a) {
    std::map<std::string, Call> calls;
    calls["RegisterWorker"] = [this](grpc::ClientContext* context) {
      dfv::v1::RegisterWorkerResponse response;
      return gateway_->RegisterWorker(context, Registration("intruder"), &response);
    };
    calls["Heartbeat"] = [this, worker_id](grpc::ClientContext* context) {
      dfv::v1::HeartbeatRequest request;
      request.set_worker_id(worker_id);
      dfv::v1::HeartbeatResponse response;
      return gateway_->Heartbeat(context, request, &response);
    };
    calls["ReportEvents"] = [this, worker_id, a](grpc::ClientContext* context) {
      dfv::v1::ReportEventsRequest request;
      request.set_worker_id(worker_id);
      request.set_job_id(a.job_id());
      request.set_attempt(a.attempt());
      request.set_rank(a.rank());
      request.add_events()->mutable_state()->set_state(dfv::v1::RUNNING);
      dfv::v1::ReportEventsResponse response;
      return gateway_->ReportEvents(context, request, &response);
    };
    calls["UploadArtifact"] = [this, worker_id, a](grpc::ClientContext* context) {
      dfv::v1::UploadArtifactResponse response;
      auto writer = gateway_->UploadArtifact(context, &response);
      dfv::v1::UploadArtifactRequest first;
      auto* header = first.mutable_header();
      header->set_worker_id(worker_id);
      header->set_job_id(a.job_id());
      header->set_attempt(a.attempt());
      header->mutable_info()->set_name("report.json");
      header->mutable_info()->set_kind(dfv::v1::REPORT);
      header->mutable_info()->set_size(2);
      first.set_data("{}");
      writer->Write(first);
      writer->WritesDone();
      return writer->Finish();
    };
    calls["CompleteAssignment"] = [this, worker_id, a](grpc::ClientContext* context) {
      dfv::v1::CompleteAssignmentRequest request;
      request.set_worker_id(worker_id);
      request.set_job_id(a.job_id());
      request.set_attempt(a.attempt());
      request.set_rank(a.rank());
      request.set_outcome(dfv::v1::OUTCOME_FAILED);
      dfv::v1::CompleteAssignmentResponse response;
      return gateway_->CompleteAssignment(context, request, &response);
    };
    calls["FetchCheckpoint"] = [this, worker_id, a](grpc::ClientContext* context) {
      dfv::v1::FetchCheckpointRequest request;
      request.set_worker_id(worker_id);
      request.set_job_id(a.job_id());
      request.set_attempt(a.attempt());
      request.set_name("checkpoints/step-00000010.ckpt");
      auto reader = gateway_->FetchCheckpoint(context, request);
      dfv::v1::ArtifactChunk chunk;
      while (reader->Read(&chunk)) {
      }
      return reader->Finish();
    };
    calls["PublishRendezvous"] = [this, worker_id, a](grpc::ClientContext* context) {
      dfv::v1::PublishRendezvousRequest request;
      request.set_worker_id(worker_id);
      request.set_job_id(a.job_id());
      request.set_attempt(a.attempt());
      request.set_rank(a.rank());
      request.set_address("127.0.0.1:4242");
      dfv::v1::PublishRendezvousResponse response;
      return gateway_->PublishRendezvous(context, request, &response);
    };
    return calls;
  }

  static dfv::v1::RegisterWorkerRequest Registration(const std::string& name) {
    dfv::v1::RegisterWorkerRequest request;
    request.set_name(name);
    request.set_slots(1);
    request.set_device("cpu");
    request.set_address("127.0.0.1:9999");
    return request;
  }

  // Registers `name` (no token: workers have none) and heartbeats once.
  std::string RegisterWorker(const std::string& name, dfv::v1::HeartbeatResponse* beat) {
    dfv::v1::RegisterWorkerResponse registered;
    grpc::Status status = gateway_->RegisterWorker(Context().get(), Registration(name), &registered);
    EXPECT_TRUE(status.ok()) << status.error_message();
    dfv::v1::HeartbeatRequest request;
    request.set_worker_id(registered.worker_id());
    status = gateway_->Heartbeat(Context().get(), request, beat);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return registered.worker_id();
  }

  dfv::v1::JobState State(const std::string& job_id) {
    dfv::v1::GetJobRequest request;
    request.set_job_id(job_id);
    dfv::v1::Job job;
    grpc::Status status = client_->GetJob(Context(Bearer(kViewerToken)).get(), request, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job.state();
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<dfv::v1::Coordinator::Stub> client_;
  std::unique_ptr<dfv::v1::WorkerGateway::Stub> gateway_;
};

TEST_F(AuthServiceTest, EveryClientMethodNeedsAKnownToken) {
  std::map<std::string, Call> calls = ClientCalls();
  ASSERT_EQ(Keys(calls), MethodNames(dfv::v1::Coordinator::service_full_name()))
      << "call every client method here";
  for (auto& [method, call] : calls) {
    grpc::Status status = call(Context().get());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_THAT(status.error_message(), HasSubstr("missing bearer token")) << method;

    status = call(Context(Bearer("wrong-token-4711")).get());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_EQ(status.error_message(), "unknown token: it is not in the coordinator's auth file")
        << method;

    status = call(Context(kViewerToken).get());  // no "Bearer "
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_THAT(status.error_message(), Not(HasSubstr(kViewerToken))) << method;
  }
  dfv::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->ListJobs(Context(Bearer(kViewerToken)).get(), {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0) << "the refused SubmitJob calls stored nothing";
}

TEST_F(AuthServiceTest, AViewerReadsButMayNotSubmitOrCancel) {
  std::map<std::string, Call> calls = ClientCalls();
  for (const char* method : {"SubmitJob", "CancelJob", "DeleteArtifacts", "CollectGarbage", "EvaluateCheckpoint"}) {
    grpc::Status status = calls[method](Context(Bearer(kViewerToken)).get());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_EQ(status.error_message(),
              absl::StrCat(method, " needs role submitter; token 'bob' has role viewer"));
  }
  // Reads pass the gate: the job does not exist, or there is nothing yet.
  for (const char* method : {"GetJob", "WatchJob", "ListArtifacts", "GetArtifact"}) {
    grpc::Status status = calls[method](Context(Bearer(kViewerToken)).get());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << method << ": " << status.error_message();
  }
  for (const char* method : {"ListJobs", "ListWorkers"}) {
    grpc::Status status = calls[method](Context(Bearer(kViewerToken)).get());
    EXPECT_TRUE(status.ok()) << method << ": " << status.error_message();
  }

  // The submitter submits and cancels; the viewer sees the result.
  ASSERT_TRUE(calls["SubmitJob"](Context(Bearer(kSubmitterToken)).get()).ok());
  EXPECT_EQ(State("j-000001"), dfv::v1::QUEUED);
  for (const char* method : {"GetJob", "ListArtifacts"}) {
    grpc::Status status = calls[method](Context(Bearer(kViewerToken)).get());
    EXPECT_TRUE(status.ok()) << method << ": " << status.error_message();
  }
  grpc::Status cancelled = calls["CancelJob"](Context(Bearer(kSubmitterToken)).get());
  ASSERT_TRUE(cancelled.ok()) << cancelled.error_message();
  EXPECT_EQ(State("j-000001"), dfv::v1::CANCELLED);
  grpc::Status watched = calls["WatchJob"](Context(Bearer(kViewerToken)).get());
  EXPECT_TRUE(watched.ok()) << watched.error_message();
}

TEST_F(AuthServiceTest, ClientTokensMayNotCallTheWorkerService) {
  dfv::v1::HeartbeatResponse beat;
  const std::string worker_id = RegisterWorker("w1", &beat);
  dfv::v1::Assignment a;
  a.set_job_id("j-000001");
  a.set_attempt(1);
  std::map<std::string, Call> calls = WorkerCalls(worker_id, a);
  ASSERT_EQ(Keys(calls), MethodNames(dfv::v1::WorkerGateway::service_full_name()))
      << "call every worker method here";
  for (auto& [method, call] : calls) {
    for (const char* token : {kSubmitterToken, kViewerToken}) {
      grpc::Status status = call(Context(Bearer(token)).get());
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
      EXPECT_THAT(status.error_message(), HasSubstr("a client token may not call it")) << method;
    }
  }
  dfv::v1::ListWorkersResponse workers;
  ASSERT_TRUE(client_->ListWorkers(Context(Bearer(kViewerToken)).get(), {}, &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1) << "the refused registration added no worker";
  EXPECT_EQ(workers.workers(0).name(), "w1");
}

TEST_F(AuthServiceTest, WorkersNeedNoTokenWithoutTlsButActOnlyOnTheirOwnAssignments) {
  ASSERT_TRUE(ClientCalls()["SubmitJob"](Context(Bearer(kSubmitterToken)).get()).ok());
  dfv::v1::HeartbeatResponse beat;
  const std::string w1 = RegisterWorker("w1", &beat);
  dfv::v1::HeartbeatRequest again;
  again.set_worker_id(w1);
  ASSERT_TRUE(gateway_->Heartbeat(Context().get(), again, &beat).ok());
  ASSERT_EQ(beat.assignments_size(), 1) << "w1 got the job";
  const dfv::v1::Assignment a = beat.assignments(0);
  dfv::v1::HeartbeatResponse ignored;
  const std::string w2 = RegisterWorker("w2", &ignored);

  // w2, with its own live session, about w1's assignment.
  std::map<std::string, Call> calls = WorkerCalls(w2, a);
  for (const char* method : {"ReportEvents", "UploadArtifact", "CompleteAssignment", "FetchCheckpoint"}) {
    grpc::Status status = calls[method](Context().get());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << method << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("worker w2 ")) << method;
  }
  EXPECT_EQ(State(a.job_id()), dfv::v1::SCHEDULED) << "nothing w2 sent counted";
  // w1 itself may: its checkpoint fetch passes the gate (the job has none yet).
  grpc::Status fetched = WorkerCalls(w1, a)["FetchCheckpoint"](Context().get());
  EXPECT_EQ(fetched.error_code(), grpc::StatusCode::NOT_FOUND) << fetched.error_message();
  grpc::Status reported = WorkerCalls(w1, a)["ReportEvents"](Context().get());
  ASSERT_TRUE(reported.ok()) << reported.error_message();
  EXPECT_EQ(State(a.job_id()), dfv::v1::RUNNING);
}

}  // namespace
}  // namespace dfv::server
