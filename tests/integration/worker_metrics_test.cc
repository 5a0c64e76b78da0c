// A worker daemon's /metrics while it trains, with real processes: the
// coordinator, one worker (--metrics-listen 127.0.0.1:0, the default) and its
// trainer. The scrape is checked for the job's series, then by Prometheus's
// own `promtool check metrics` where Debian's prometheus package installed
// it; after the job is cancelled its series go once the grace has passed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "tests/integration/cluster.h"
#include "tests/testing/http_get.h"

namespace dfv::testing {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

// The value of the sample that `series` (name and labels, as printed) names
// in `text`; NaN when absent.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      return std::stod(std::string(line));
    }
  }
  return std::nan("");
}

std::string Scrape(const std::string& address) {
  auto response = HttpGet(address, "/metrics");
  return response.ok() && response->status == 200 ? response->body : "";
}

// Runs `promtool check metrics` on `text`: its exit code and what it said.
std::pair<int, std::string> PromtoolCheckMetrics(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/scrape.txt";
  EXPECT_TRUE(WriteFileAtomically(path, text).ok());
  std::FILE* pipe = popen(absl::StrCat(kPromtool, " check metrics < '", path, "' 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(WorkerMetricsEndToEnd, AWorkersMetricsShowItsJobWhileItTrainsAndDropItAfterTheGrace) {
  Cluster cluster("worker_metrics");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1", 1, {"--metrics-job-grace", "2"}).ok());
  const std::string address = cluster.MetricsAddress("w1");
  ASSERT_FALSE(address.empty()) << "no 'metrics HOST:PORT' line in the ready file";

  CommandResult submitted =
      cluster.Dfvctl({"submit", cluster.WriteJob("job.yaml", SmallJob("metrics", "vae", 1000000))});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  const std::string job = absl::StrCat("job_id=\"", id, "\",rank=\"0\"");

  // Scrape as Prometheus would until the trainer has reported a few windows.
  std::string text;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (absl::Now() < deadline) {
    text = Scrape(address);
    if (Sample(text, absl::StrCat("dfv_job_step_seconds_count{", job, "}")) >= 30) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_GE(Sample(text, absl::StrCat("dfv_job_step_seconds_count{", job, "}")), 30) << text << cluster.Log("w1");
  EXPECT_GT(Sample(text, absl::StrCat("dfv_job_training_metric{", job, ",term=\"loss\"}")), 0) << text;
  EXPECT_GT(Sample(text, absl::StrCat("dfv_job_training_metric{", job, ",term=\"reconstruction\"}")), 0) << text;
  EXPECT_GT(Sample(text, absl::StrCat("dfv_job_samples_per_second{", job, "}")), 0) << text;
  EXPECT_GT(Sample(text, absl::StrCat("dfv_trainer_resident_memory_bytes{", job, "}")), 10 << 20) << text;
  EXPECT_GE(Sample(text, absl::StrCat("dfv_trainer_cpu_seconds_total{", job, "}")), 0) << text;
  EXPECT_GT(Sample(text, absl::StrCat("dfv_job_step{", job, "}")), 0) << text;
  // SmallJob's 1000 epochs of 512 sprites in batches of 16 end before its max_steps.
  EXPECT_EQ(Sample(text, absl::StrCat("dfv_job_total_steps{", job, "}")), 1000 * 512 / 16) << text;
  EXPECT_EQ(Sample(text, "dfv_worker_slots{state=\"busy\"}"), 1) << text;
  EXPECT_EQ(Sample(text, "dfv_trainers_started_total"), 1) << text;
  EXPECT_TRUE(std::isnan(Sample(text, "dfv_gpu_memory_total_bytes{gpu=\"0\"}"))) << "a cpu worker has no GPU series";

  if (std::filesystem::exists(kPromtool)) {
    auto [code, said] = PromtoolCheckMetrics(cluster.dir(), text);
    EXPECT_EQ(code, 0) << "promtool check metrics:\n" << said << "\non:\n" << text;
    ::testing::Test::RecordProperty("promtool", said.empty() ? "no problems" : said);
  } else {
    std::printf("promtool check skipped: %s is missing (Debian's prometheus package, scripts/install-deps.sh)\n",
                kPromtool);
  }

  CommandResult cancel = cluster.Dfvctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  // The trainer ends as cancelled; 2 s later (the grace) its series are gone.
  const absl::Time gone_by = absl::Now() + absl::Seconds(30);
  while (absl::Now() < gone_by) {
    text = Scrape(address);
    if (Sample(text, "dfv_trainers_ended_total{outcome=\"cancelled\"}") == 1 && !absl::StrContains(text, id)) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(Sample(text, "dfv_trainers_ended_total{outcome=\"cancelled\"}"), 1) << text;
  EXPECT_FALSE(absl::StrContains(text, id)) << "the job's series outlived the grace:\n" << text;
  EXPECT_EQ(Sample(text, "dfv_worker_slots{state=\"free\"}"), 1) << text;
}

}  // namespace
}  // namespace dfv::testing
