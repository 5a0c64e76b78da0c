#include "worker/protocol/trainer_report.h"

#include <gtest/gtest.h>

namespace dfv::protocol {
namespace {

v1::TrainerReport RoundTrip(const v1::TrainerReport& report) {
  const std::string line = EncodeReport(report);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  absl::StatusOr<v1::TrainerReport> back = DecodeReport(line);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : v1::TrainerReport();
}

v1::TrainerReport Artifact(v1::ArtifactKind kind, const std::string& path, int64_t step) {
  v1::TrainerReport report;
  report.mutable_artifact()->set_kind(kind);
  report.mutable_artifact()->set_path(path);
  report.mutable_artifact()->set_step(step);
  return report;
}

v1::TrainerReport Rendezvous(const std::string& address) {
  v1::TrainerReport report;
  report.mutable_rendezvous()->set_address(address);
  return report;
}

TEST(TrainerReport, MetricsRoundTrip) {
  v1::TrainerReport report;
  v1::MetricsRow* row = report.mutable_metrics();
  row->set_step(100);
  row->set_epoch(2);
  auto* loss = row->add_values();
  loss->set_name("loss");
  loss->set_value(0.5);
  auto* kl = row->add_values();
  kl->set_name("kl");
  kl->set_value(0.25);
  v1::TrainerReport back = RoundTrip(report);
  ASSERT_EQ(back.report_case(), v1::TrainerReport::kMetrics);
  EXPECT_EQ(back.metrics().step(), 100);
  EXPECT_EQ(back.metrics().epoch(), 2);
  ASSERT_EQ(back.metrics().values_size(), 2);
  EXPECT_EQ(back.metrics().values(0).name(), "loss");
  EXPECT_DOUBLE_EQ(back.metrics().values(0).value(), 0.5);
  EXPECT_EQ(back.metrics().values(1).name(), "kl");
}

TEST(TrainerReport, ProgressStartedFinishedAndMessage) {
  v1::TrainerReport progress;
  v1::Progress* p = progress.mutable_progress()->mutable_progress();
  p->set_step(7);
  p->set_total_steps(70);
  p->set_epoch(1);
  p->set_samples_per_second(123.5);
  p->set_eta_seconds(9);
  auto* loss = progress.mutable_progress()->add_metrics();
  loss->set_name("loss");
  loss->set_value(0.125);
  v1::TrainerReport back = RoundTrip(progress);
  EXPECT_EQ(back.progress().progress().total_steps(), 70);
  EXPECT_DOUBLE_EQ(back.progress().progress().samples_per_second(), 123.5);
  ASSERT_EQ(back.progress().metrics_size(), 1);
  EXPECT_DOUBLE_EQ(back.progress().metrics(0).value(), 0.125);

  v1::TrainerReport started;
  started.mutable_started()->set_step(20);
  started.mutable_started()->set_total_steps(70);
  back = RoundTrip(started);
  ASSERT_EQ(back.report_case(), v1::TrainerReport::kStarted);
  EXPECT_EQ(back.started().step(), 20);
  EXPECT_EQ(back.started().total_steps(), 70);

  v1::TrainerReport finished;
  finished.mutable_finished()->set_steps(70);
  back = RoundTrip(finished);
  ASSERT_EQ(back.report_case(), v1::TrainerReport::kFinished);
  EXPECT_EQ(back.finished().steps(), 70);

  v1::TrainerReport message;
  message.mutable_message()->set_text("r\xc3\xa9sum\xc3\xa9 \"quoted\"\n");
  EXPECT_EQ(RoundTrip(message).message().text(), "r\xc3\xa9sum\xc3\xa9 \"quoted\"\n");
}

TEST(TrainerReport, WindowTimingsAndACheckpointsWriteTimeRoundTrip) {
  v1::TrainerReport window;
  v1::TrainerWindow* w = window.mutable_window();
  w->set_step(50);
  for (double seconds : {0.004, 0.02, 1.5}) w->add_step_seconds(seconds);
  w->set_data_wait_seconds(0.25);
  w->set_allreduce_seconds(0.5);
  w->set_allreduce_bytes(int64_t{3} << 32);  // past 32 bits: JSON carries int64 as a string
  const std::string line = EncodeReport(window);
  EXPECT_NE(line.find("\"stepSeconds\":[0.004,0.02,1.5]"), std::string::npos) << line;
  v1::TrainerReport back = RoundTrip(window);
  ASSERT_EQ(back.report_case(), v1::TrainerReport::kWindow);
  EXPECT_EQ(back.window().step(), 50);
  ASSERT_EQ(back.window().step_seconds_size(), 3);
  EXPECT_DOUBLE_EQ(back.window().step_seconds(2), 1.5);
  EXPECT_DOUBLE_EQ(back.window().data_wait_seconds(), 0.25);
  EXPECT_DOUBLE_EQ(back.window().allreduce_seconds(), 0.5);
  EXPECT_EQ(back.window().allreduce_bytes(), int64_t{3} << 32);

  v1::TrainerReport checkpoint = Artifact(v1::CHECKPOINT, "checkpoints/step-00000050.ckpt", 50);
  checkpoint.mutable_artifact()->set_write_seconds(0.125);
  EXPECT_DOUBLE_EQ(RoundTrip(checkpoint).artifact().write_seconds(), 0.125);
}

TEST(TrainerReport, AMessageWithInvalidUtf8StaysOneDecodableLine) {
  v1::TrainerReport message;
  message.mutable_message()->set_text("bad \xff\xfe bytes from a file");
  EXPECT_EQ(RoundTrip(message).message().text(), "bad  bytes from a file");
}

TEST(PrestartedAssignment, RoundTripsAsOneLine) {
  v1::PrestartedAssignment handed;
  for (const char* arg : {"--job", "/w/j-1-a1-r0/job.yaml", "--out", "/w/j-1-a1-r0/run", "--rank", "0"}) {
    handed.add_args(arg);
  }
  handed.add_env("DFV_RENDEZVOUS_SECRET=0123abcd");
  handed.add_env("A=b=c");
  const std::string line = EncodePrestartedAssignment(handed);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto decoded = DecodePrestartedAssignment(line);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->SerializeAsString(), handed.SerializeAsString());
}

TEST(PrestartedAssignment, RefusesWhatIsNotOne) {
  EXPECT_TRUE(absl::IsInvalidArgument(DecodePrestartedAssignment("not json").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DecodePrestartedAssignment(R"({"args":["x"],"env":["NOEQUALS"]})").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DecodePrestartedAssignment(R"({"env":["=value"]})").status()));
  EXPECT_TRUE(DecodePrestartedAssignment(R"({"args":["--job","j.yaml"]})").ok());
}

TEST(TrainerReport, ErrorKeepsCodeAndMessage) {
  v1::TrainerReport back = RoundTrip(ErrorReport(absl::NotFoundError("dataset.path: /x does not exist")));
  ASSERT_EQ(back.report_case(), v1::TrainerReport::kError);
  absl::Status status = StatusFromError(back.error());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "dataset.path: /x does not exist");
  for (absl::StatusCode code : {absl::StatusCode::kUnavailable, absl::StatusCode::kAborted,
                                absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnauthenticated}) {
    EXPECT_EQ(StatusFromError(RoundTrip(ErrorReport(absl::Status(code, "x"))).error()).code(), code);
  }
  // A failure is never OK, and a code from elsewhere is UNKNOWN.
  v1::TrainerError odd;
  odd.set_message("?");
  EXPECT_EQ(StatusFromError(odd).code(), absl::StatusCode::kUnknown);
  odd.set_code(99);
  EXPECT_EQ(StatusFromError(odd).code(), absl::StatusCode::kUnknown);
}

TEST(TrainerReport, ArtifactKindsAndUnsafePaths) {
  v1::TrainerReport grid = RoundTrip(Artifact(v1::GRID, "grids/swap-step00000020.png", 20));
  EXPECT_EQ(grid.artifact().kind(), v1::GRID);
  EXPECT_EQ(grid.artifact().path(), "grids/swap-step00000020.png");
  EXPECT_EQ(grid.artifact().step(), 20);
  for (v1::ArtifactKind kind : {v1::CHECKPOINT, v1::REPORT, v1::METRICS, v1::JOB_SPEC, v1::LOG}) {
    EXPECT_EQ(RoundTrip(Artifact(kind, "a.bin", 0)).artifact().kind(), kind);
  }
  for (const char* path : {"../etc/passwd", "/etc/passwd", "grids/../../x", "", "a//b"}) {
    absl::StatusOr<v1::TrainerReport> line = DecodeReport(EncodeReport(Artifact(v1::GRID, path, 0)));
    EXPECT_TRUE(absl::IsInvalidArgument(line.status())) << path;
  }
  EXPECT_FALSE(DecodeReport(EncodeReport(Artifact(v1::ARTIFACT_KIND_UNSPECIFIED, "a.png", 0))).ok());
  EXPECT_FALSE(DecodeReport(R"({"artifact":{"kind":"MOVIE","path":"a.png"}})").ok());
}

TEST(TrainerReport, RendezvousCarriesAHostAndPort) {
  // The trainer's line, as the daemon reads it.
  absl::StatusOr<v1::TrainerReport> written = DecodeReport(R"({"rendezvous":{"address":"10.0.0.7:41234"}})");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->rendezvous().address(), "10.0.0.7:41234");
  for (const char* address : {"127.0.0.1:41234", "10.0.0.7:1", "[::1]:65535", "node-3.cluster:29500"}) {
    EXPECT_EQ(RoundTrip(Rendezvous(address)).rendezvous().address(), address);
  }
  // The port must be the bound one: 0, none or out of range is refused.
  for (const char* address : {"127.0.0.1:0", "127.0.0.1", ":41234", "127.0.0.1:65536", "::1:80", ""}) {
    absl::StatusOr<v1::TrainerReport> line = DecodeReport(EncodeReport(Rendezvous(address)));
    EXPECT_TRUE(absl::IsInvalidArgument(line.status())) << address;
    EXPECT_NE(line.status().message().find("rendezvous"), absl::string_view::npos) << line.status();
  }
  EXPECT_FALSE(DecodeReport(R"({"rendezvous":{"address":41234}})").ok());
}

TEST(TrainerReport, RejectsWhatIsNotAReport) {
  for (const char* bad : {"", "not json", "[1,2]", "{}", R"({"warp":{}})", R"({"type":"metrics"})",
                          R"({"metrics":{"step":"x"}})", R"({"progress":{"step":1}})",
                          "libgomp: a stray line on stdout"}) {
    absl::StatusOr<v1::TrainerReport> line = DecodeReport(bad);
    EXPECT_FALSE(line.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(line.status())) << bad;
  }
}

}  // namespace
}  // namespace dfv::protocol
