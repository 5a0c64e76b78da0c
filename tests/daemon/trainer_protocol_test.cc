#include "worker/daemon/trainer_protocol.h"

#include <gtest/gtest.h>

namespace dfv::daemon {
namespace {

TEST(TrainerProtocol, MetricsRoundTrip) {
  auto line = DecodeTrainerLine(EncodeMetrics(100, 2, {{"loss", 0.5}, {"kl", 0.25}}));
  ASSERT_TRUE(line.ok()) << line.status();
  ASSERT_EQ(line->type, TrainerLine::Type::kMetrics);
  const v1::MetricsRow& row = line->event.metrics();
  EXPECT_EQ(row.step(), 100);
  EXPECT_EQ(row.epoch(), 2);
  ASSERT_EQ(row.values_size(), 2);
  EXPECT_EQ(row.values(0).name(), "loss");
  EXPECT_DOUBLE_EQ(row.values(0).value(), 0.5);
  EXPECT_EQ(row.values(1).name(), "kl");
}

TEST(TrainerProtocol, ProgressStartedFinishedAndMessage) {
  v1::Progress p;
  p.set_step(7);
  p.set_total_steps(70);
  p.set_epoch(1);
  p.set_samples_per_second(123.5);
  p.set_eta_seconds(9);
  auto progress = DecodeTrainerLine(EncodeProgress(p));
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->event.progress().total_steps(), 70);
  EXPECT_DOUBLE_EQ(progress->event.progress().samples_per_second(), 123.5);

  auto started = DecodeTrainerLine(EncodeStarted(20, 70));
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->type, TrainerLine::Type::kStarted);
  EXPECT_EQ(started->event.state().state(), v1::RUNNING);
  EXPECT_EQ(started->step, 20);

  auto finished = DecodeTrainerLine(EncodeFinished(70));
  ASSERT_TRUE(finished.ok());
  EXPECT_EQ(finished->type, TrainerLine::Type::kFinished);
  EXPECT_EQ(finished->step, 70);

  auto message = DecodeTrainerLine(EncodeMessage("r\xc3\xa9sum\xc3\xa9 \"quoted\"\n"));
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(message->event.message().text(), "r\xc3\xa9sum\xc3\xa9 \"quoted\"\n");
}

TEST(TrainerProtocol, ErrorKeepsCodeAndMessage) {
  auto line = DecodeTrainerLine(EncodeError(absl::NotFoundError("dataset.path: /x does not exist")));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->type, TrainerLine::Type::kError);
  EXPECT_EQ(line->error.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(line->error.message(), "dataset.path: /x does not exist");
}

TEST(TrainerProtocol, ArtifactKindsAndUnsafePaths) {
  auto grid = DecodeTrainerLine(EncodeArtifact("grid", "grids/swap-step00000020.png", 20));
  ASSERT_TRUE(grid.ok());
  EXPECT_EQ(grid->artifact_kind, v1::GRID);
  EXPECT_EQ(grid->artifact_path, "grids/swap-step00000020.png");
  EXPECT_EQ(grid->step, 20);
  for (const char* kind : {"checkpoint", "report", "metrics", "job", "log"}) {
    auto line = DecodeTrainerLine(EncodeArtifact(kind, "a.bin", 0));
    ASSERT_TRUE(line.ok()) << kind;
    EXPECT_NE(line->artifact_kind, v1::ARTIFACT_KIND_UNSPECIFIED) << kind;
  }
  for (const char* path : {"../etc/passwd", "/etc/passwd", "grids/../../x", "", "a//b"}) {
    EXPECT_FALSE(DecodeTrainerLine(EncodeArtifact("grid", path, 0)).ok()) << path;
  }
  EXPECT_FALSE(DecodeTrainerLine(EncodeArtifact("movie", "a.png", 0)).ok());
}

TEST(TrainerProtocol, RendezvousCarriesAHostAndPort) {
  // The trainer's line, as the daemon reads it (key order does not matter).
  auto written = DecodeTrainerLine(R"({"type":"rendezvous","address":"10.0.0.7:41234"})");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->rendezvous_address, "10.0.0.7:41234");
  EXPECT_EQ(EncodeRendezvous("10.0.0.7:41234").find('\n'), std::string::npos);
  for (const char* address : {"127.0.0.1:41234", "10.0.0.7:1", "[::1]:65535", "node-3.cluster:29500"}) {
    auto line = DecodeTrainerLine(EncodeRendezvous(address));
    ASSERT_TRUE(line.ok()) << address << ": " << line.status();
    EXPECT_EQ(line->type, TrainerLine::Type::kRendezvous);
    EXPECT_EQ(line->rendezvous_address, address);
  }
  // The port must be the bound one: 0, none or out of range is refused.
  for (const char* address : {"127.0.0.1:0", "127.0.0.1", ":41234", "127.0.0.1:65536", "::1:80", ""}) {
    auto line = DecodeTrainerLine(EncodeRendezvous(address));
    EXPECT_TRUE(absl::IsInvalidArgument(line.status())) << address;
    EXPECT_NE(line.status().message().find("rendezvous"), absl::string_view::npos) << line.status();
  }
  EXPECT_FALSE(DecodeTrainerLine(R"({"type":"rendezvous"})").ok());
  EXPECT_FALSE(DecodeTrainerLine(R"({"type":"rendezvous","address":41234})").ok());
}

TEST(TrainerProtocol, RejectsWhatIsNotALine) {
  for (const char* bad : {"", "not json", "[1,2]", "{}", R"({"type":"warp"})", R"({"type":"metrics"})",
                          R"({"type":"metrics","step":"x","epoch":0,"values":[]})",
                          R"({"type":"progress","step":1})"}) {
    auto line = DecodeTrainerLine(bad);
    EXPECT_FALSE(line.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(line.status())) << bad;
  }
}

}  // namespace
}  // namespace dfv::daemon
