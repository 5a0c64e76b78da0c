// The whole service with real processes on loopback: dfv-coordinator, one or
// two dfv-worker daemons (each training in its own trainer process) and
// dfvctl, ports picked by the kernel and read from ready files.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/png.h"
#include "proto/dfv.pb.h"
#include "tests/integration/cluster.h"

namespace dfv::testing {
namespace {

template <typename Message>
Message FromJson(const std::string& text) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << text;
  return message;
}

std::vector<v1::JobEvent> ParseEvents(const std::string& out) {
  std::vector<v1::JobEvent> events;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    events.push_back(FromJson<v1::JobEvent>(std::string(line)));
  }
  return events;
}

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

// Submits `yaml` and returns the job id printed on stdout.
std::string Submit(Cluster& cluster, const std::string& file, const std::string& yaml) {
  CommandResult r = cluster.Dfvctl({"submit", cluster.WriteJob(file, yaml)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string id = Trim(r.out);
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(id.find('\n'), std::string::npos) << "submit must print the id alone: " << r.out;
  return id;
}

v1::Job GetJob(Cluster& cluster, const std::string& id) {
  CommandResult r = cluster.Dfvctl({"get", id, "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return FromJson<v1::Job>(r.out);
}

// Polls `get` until the job is in `state`; returns how long that took.
absl::StatusOr<absl::Duration> WaitForState(Cluster& cluster, const std::string& id, v1::JobState state,
                                            absl::Duration timeout) {
  absl::Time start = absl::Now();
  v1::Job job;
  while (absl::Now() - start < timeout) {
    job = GetJob(cluster, id);
    if (job.state() == state) return absl::Now() - start;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(id, " still ", v1::JobState_Name(job.state()), " (reason: ",
                                                  job.reason(), ") after ", absl::FormatDuration(timeout)));
}

std::vector<v1::WorkerInfo> Workers(Cluster& cluster) {
  CommandResult r = cluster.Dfvctl({"workers", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  v1::ListWorkersResponse response = FromJson<v1::ListWorkersResponse>(r.out);
  return {response.workers().begin(), response.workers().end()};
}

double MetricValue(const v1::MetricsRow& row, const std::string& name) {
  for (const auto& v : row.values()) {
    if (v.name() == name) return v.value();
  }
  ADD_FAILURE() << "no metric " << name;
  return 0;
}

TEST(EndToEnd, SubmitWatchDownloadAndResume) {
  Cluster cluster("submit_watch");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", SmallJob("e2e", "cycle_vae", 60));

  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err << cluster.Log("coordinator") << cluster.Log("w1");
  std::vector<v1::JobEvent> events = ParseEvents(watch.out);
  ASSERT_FALSE(events.empty());
  // Gap-free sequence from 1, ending in SUCCEEDED.
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
  ASSERT_TRUE(events.back().has_state()) << events.back().DebugString();
  EXPECT_EQ(events.back().state().state(), v1::SUCCEEDED) << events.back().state().reason();

  // The loss fell: the first metrics row against the last.
  std::vector<v1::MetricsRow> rows;
  std::vector<v1::JobState> states;
  for (const auto& e : events) {
    if (e.has_metrics()) rows.push_back(e.metrics());
    if (e.has_state()) states.push_back(e.state().state());
  }
  ASSERT_GE(rows.size(), 2u);
  EXPECT_LT(MetricValue(rows.back(), "loss"), MetricValue(rows.front(), "loss"));
  EXPECT_EQ(states, (std::vector<v1::JobState>{v1::QUEUED, v1::SCHEDULED, v1::RUNNING, v1::SUCCEEDED}));

  // A watcher that joins late after seq k gets exactly the events after k.
  const int64_t k = static_cast<int64_t>(events.size() / 2);
  CommandResult late = cluster.Dfvctl({"watch", id, "--after-seq", std::to_string(k), "-o", "json"});
  ASSERT_EQ(late.exit_code, 0) << late.err;
  std::vector<v1::JobEvent> tail = ParseEvents(late.out);
  ASSERT_EQ(tail.size(), events.size() - k);
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].SerializeAsString(), events[k + i].SerializeAsString()) << i;
  }

  // Every promised grid decodes at its size; the report and the checkpoint came back.
  const std::string download = cluster.dir() + "/download";
  CommandResult got = cluster.Dfvctl({"artifacts", id, "--download", download});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  int grids = 0;
  for (const char* grid : {"reconstruction", "swap", "interpolation"}) {
    const std::string path = absl::StrCat(download, "/grids/", grid, "-step00000060.png");
    auto image = ReadPngFile(path);
    ASSERT_TRUE(image.ok()) << path << ": " << image.status();
    EXPECT_GT(image->width, 28);
    EXPECT_GT(image->height, 28);
    ++grids;
  }
  EXPECT_EQ(grids, 3);
  EXPECT_TRUE(std::filesystem::exists(download + "/report.json"));
  EXPECT_TRUE(std::filesystem::exists(download + "/metrics.csv"));
  const std::string checkpoint = download + "/checkpoints/step-00000060.ckpt";
  ASSERT_TRUE(std::filesystem::exists(checkpoint));

  // The downloaded checkpoint loads: a local run resumes from it at step 60.
  daemon::SpawnOptions resume;
  resume.argv = {DFV_WORKER_BINARY, "train",     "--local", download + "/job.yaml", "--resume", checkpoint,
                 "--out",           cluster.dir() + "/resumed", "--set", "train.max_steps=70"};
  resume.stderr_path = cluster.dir() + "/resume.log";
  auto process = daemon::Subprocess::Spawn(resume);
  ASSERT_TRUE(process.ok());
  daemon::ExitStatus exit = (*process)->Wait();
  std::string log = cluster.Log("resume");
  EXPECT_TRUE(exit.exited && exit.code == 0) << log;
  EXPECT_TRUE(absl::StrContains(log, "at step 60")) << log;
}

TEST(EndToEnd, CancelFreesTheSlotAndTheWorkerKeepsServing) {
  Cluster cluster("cancel");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "long.yaml", SmallJob("long", "vae", 1000000));
  ASSERT_TRUE(WaitForState(cluster, id, v1::RUNNING, absl::Seconds(60)).ok()) << cluster.Log("w1");

  CommandResult cancel = cluster.Dfvctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  auto took = WaitForState(cluster, id, v1::CANCELLED, absl::Seconds(5));
  ASSERT_TRUE(took.ok()) << took.status() << cluster.Log("w1");

  std::vector<v1::WorkerInfo> workers = Workers(cluster);
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].free_slots(), 1);
  EXPECT_EQ(workers[0].state(), v1::WORKER_ALIVE);

  // Cancelling a finished job is refused with its state named.
  CommandResult again = cluster.Dfvctl({"cancel", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "CANCELLED")) << again.err;

  const std::string next = Submit(cluster, "next.yaml", SmallJob("next", "vae", 20));
  EXPECT_TRUE(WaitForState(cluster, next, v1::SUCCEEDED, absl::Seconds(60)).ok()) << cluster.Log("w1");
}

TEST(EndToEnd, CrashingTrainerFailsTheJobAndTheWorkerTakesTheNext) {
  Cluster cluster("crash");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string missing = cluster.dir() + "/vanished-data";
  const std::string bad = Submit(cluster, "bad-data.yaml", absl::StrCat(R"(name: vanished
model: vae
dataset: {kind: fashion_mnist, path: )", missing, R"(}
train: {max_steps: 10, threads: 1}
)"));
  ASSERT_TRUE(WaitForState(cluster, bad, v1::FAILED, absl::Seconds(60)).ok());
  v1::Job failed = GetJob(cluster, bad);
  EXPECT_TRUE(absl::StrContains(failed.reason(), missing)) << failed.reason();

  const std::string next = Submit(cluster, "next.yaml", SmallJob("next", "vae", 20));
  EXPECT_TRUE(WaitForState(cluster, next, v1::SUCCEEDED, absl::Seconds(60)).ok()) << cluster.Log("w1");
}

TEST(EndToEnd, BadJobFileIsRefusedAndNothingIsQueued) {
  Cluster cluster("bad_job");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  const std::string path = cluster.WriteJob("bad.yaml", R"(name: bad
model: vae
dataset: {kind: sprites}
train: {batch_size: -4}
)");
  CommandResult r = cluster.Dfvctl({"submit", path});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "train.batch_size")) << r.err;

  CommandResult list = cluster.Dfvctl({"list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(list.out).jobs_size(), 0) << list.out;
}

TEST(EndToEnd, SingleSlotWorkerRunsJobsOneAfterTheOtherInPriorityOrder) {
  Cluster cluster("priority");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  // Both queued before any worker exists, the low-priority one first.
  const std::string low = Submit(cluster, "low.yaml", SmallJob("low", "vae", 30, /*priority=*/0));
  const std::string high = Submit(cluster, "high.yaml", SmallJob("high", "vae", 30, /*priority=*/5));
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  ASSERT_TRUE(WaitForState(cluster, low, v1::SUCCEEDED, absl::Seconds(90)).ok()) << cluster.Log("coordinator");
  ASSERT_TRUE(WaitForState(cluster, high, v1::SUCCEEDED, absl::Seconds(10)).ok());

  auto times = [&](const std::string& id) {
    CommandResult r = cluster.Dfvctl({"watch", id, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::pair<int64_t, int64_t> scheduled_done{0, 0};
    for (const auto& e : ParseEvents(r.out)) {
      if (e.has_state() && e.state().state() == v1::SCHEDULED) scheduled_done.first = e.time_ms();
      if (e.has_state() && e.state().state() == v1::SUCCEEDED) scheduled_done.second = e.time_ms();
    }
    return scheduled_done;
  };
  auto [high_start, high_end] = times(high);
  auto [low_start, low_end] = times(low);
  EXPECT_LE(high_start, high_end);
  EXPECT_LE(high_end, low_start) << "the low-priority job started before the high-priority one ended";
  EXPECT_LE(low_start, low_end);
}


// The trainer pid a worker daemon logged for its first assignment.
pid_t TrainerPid(const std::string& log) {
  const std::string marker = "trainer pid ";
  size_t at = log.find(marker);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(log.substr(at + marker.size())));
}

TEST(EndToEnd, LostWorkerRequeuesTheJobWhichResumesFromItsCheckpoint) {
  Cluster cluster("lost_worker");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", SmallJob("lost", "vae", 600));
  // Wait until a checkpoint has reached the coordinator.
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool have_checkpoint = false;
  while (!have_checkpoint && absl::Now() < deadline) {
    CommandResult r = cluster.Dfvctl({"artifacts", id, "-o", "json"});
    const auto listed = FromJson<v1::ListArtifactsResponse>(r.out);
    for (const auto& a : listed.artifacts()) {
      if (a.kind() == v1::CHECKPOINT) have_checkpoint = true;
    }
    if (!have_checkpoint) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(have_checkpoint) << cluster.Log("w1");
  const pid_t trainer = TrainerPid(cluster.Log("w1"));
  ASSERT_GT(trainer, 0);

  cluster.KillWorker("w1");
  // The orphaned trainer dies on its next write to the dead daemon's pipe.
  absl::Time kill_time = absl::Now();
  while (kill(trainer, 0) == 0 && absl::Now() - kill_time < absl::Seconds(10)) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_NE(kill(trainer, 0), 0) << "trainer " << trainer << " outlived its daemon";

  ASSERT_TRUE(cluster.StartWorker("w2").ok()) << cluster.Log("w2");
  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(120)).ok())
      << cluster.Log("coordinator") << cluster.Log("w2");
  v1::Job job = GetJob(cluster, id);
  EXPECT_EQ(job.attempt(), 2);
  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  bool requeued = false, resumed = false;
  for (const auto& e : ParseEvents(watch.out)) {
    if (e.has_state() && e.state().state() == v1::QUEUED && absl::StrContains(e.state().reason(), "w1")) requeued = true;
    if (e.has_message() && absl::StrContains(e.message().text(), "resumed from")) resumed = true;
  }
  EXPECT_TRUE(requeued);
  EXPECT_TRUE(resumed) << watch.out;
}


// grpc.health.v1.Health/Check with an empty request (all services), through
// the generic stub: the reply is HealthCheckResponse{status}, whose only
// field is the enum 1 (SERVING = 1), so its wire form is {0x08, 0x01}.
absl::StatusOr<std::string> HealthCheck(const std::string& address) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("cannot read the reply");
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return bytes;
}

TEST(EndToEnd, BothDaemonsServeHealthChecks) {
  Cluster cluster("health");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  auto coordinator = HealthCheck(cluster.coordinator_address());
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  EXPECT_EQ(*coordinator, std::string("\x08\x01", 2));
  std::vector<v1::WorkerInfo> workers = Workers(cluster);
  ASSERT_EQ(workers.size(), 1u);
  auto worker = HealthCheck(workers[0].address());
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ(*worker, std::string("\x08\x01", 2));
}

}  // namespace
}  // namespace dfv::testing
