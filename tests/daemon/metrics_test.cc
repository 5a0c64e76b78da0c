// WorkerMetrics fed with the reports a trainer writes, read back through
// Collect() as a scrape would: gauge values, histogram counts, counters, the
// trainer's process readings, and the removal of a job's series after the
// grace period (with a fake clock).
#include "worker/daemon/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/jobspec/catalogue.h"
#include "prometheus/text_serializer.h"
#include "worker/protocol/trainer_report.h"

namespace dfv::daemon {
namespace {

using Labels = std::map<std::string, std::string>;

// The sample of family `name` whose labels are exactly `labels`.
std::optional<prometheus::ClientMetric> Find(const std::vector<prometheus::MetricFamily>& families,
                                             const std::string& name, const Labels& labels) {
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      Labels have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric;
    }
  }
  return std::nullopt;
}

// Every sample of family `name` that has label `key` = `value`.
int CountWith(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
              const std::string& key, const std::string& value) {
  int count = 0;
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) count += label.name == key && label.value == value;
    }
  }
  return count;
}

// The families that carry a job's series.
const char* const kJobFamilies[] = {
    "dfv_job_step", "dfv_job_total_steps", "dfv_job_training_metric", "dfv_job_samples_per_second",
    "dfv_job_step_seconds", "dfv_job_allreduce_seconds_total", "dfv_job_allreduce_bytes_total",
    "dfv_job_data_wait_seconds_total", "dfv_job_checkpoint_write_seconds_total",
    "dfv_job_checkpoint_written_bytes_total", "dfv_trainer_cpu_seconds_total"};

int JobSeries(const std::vector<prometheus::MetricFamily>& families, const std::string& job) {
  int count = 0;
  for (const char* name : kJobFamilies) count += CountWith(families, name, "job_id", job);
  return count;
}

v1::Assignment Assignment(const std::string& job, int attempt, int rank, const std::string& model = "vae") {
  v1::Assignment a;
  a.set_job_id(job);
  a.set_attempt(attempt);
  a.set_rank(rank);
  a.set_world_size(rank + 1);
  a.set_spec_yaml(absl::StrFormat(R"(
name: metrics-test
model: %s
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 256, sprites_test: 64, seed: 3}
train: {max_steps: 100, batch_size: 16}
)",
                                  model));
  return a;
}

AssignmentKey Key(const v1::Assignment& a) { return {a.job_id(), a.attempt(), a.rank()}; }

class FakeClock {
 public:
  absl::Time Now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

WorkerMetricsOptions Options(FakeClock* clock, int slots = 2) {
  WorkerMetricsOptions options;
  options.slots = slots;
  options.job_grace = absl::Seconds(60);
  options.now = [clock] { return clock->Now(); };
  return options;
}

v1::TrainerReport Started(int64_t step, int64_t total) {
  v1::TrainerReport r;
  r.mutable_started()->set_step(step);
  r.mutable_started()->set_total_steps(total);
  return r;
}

v1::TrainerReport Row(int64_t step, const std::map<std::string, double>& values) {
  v1::TrainerReport r;
  r.mutable_metrics()->set_step(step);
  for (const auto& [name, value] : values) {
    v1::MetricValue* v = r.mutable_metrics()->add_values();
    v->set_name(name);
    v->set_value(value);
  }
  return r;
}

v1::TrainerReport Window(int64_t step, const std::vector<double>& seconds, double data_wait, double allreduce,
                         int64_t bytes) {
  v1::TrainerReport r;
  v1::TrainerWindow* w = r.mutable_window();
  w->set_step(step);
  for (double s : seconds) w->add_step_seconds(s);
  w->set_data_wait_seconds(data_wait);
  w->set_allreduce_seconds(allreduce);
  w->set_allreduce_bytes(bytes);
  return r;
}

TEST(WorkerMetrics, SlotsAndTrainerCountersAreThereFromTheStart) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock, 3));
  auto families = metrics.Collect();
  EXPECT_EQ(Find(families, "dfv_worker_slots", {{"state", "free"}})->gauge.value, 3);
  EXPECT_EQ(Find(families, "dfv_worker_slots", {{"state", "busy"}})->gauge.value, 0);
  EXPECT_EQ(Find(families, "dfv_trainers_started_total", {})->counter.value, 0);
  for (const char* outcome : {"succeeded", "failed", "cancelled", "abandoned"}) {
    ASSERT_TRUE(Find(families, "dfv_trainers_ended_total", {{"outcome", outcome}})) << outcome;
  }
  metrics.SetBusySlots(2);
  families = metrics.Collect();
  EXPECT_EQ(Find(families, "dfv_worker_slots", {{"state", "free"}})->gauge.value, 1);
  EXPECT_EQ(Find(families, "dfv_worker_slots", {{"state", "busy"}})->gauge.value, 2);
  metrics.SetBusySlots(7);  // more runners than slots cannot be, but never a negative "free"
  families = metrics.Collect();
  EXPECT_EQ(Find(families, "dfv_worker_slots", {{"state", "free"}})->gauge.value, 0);
  EXPECT_EQ(JobSeries(families, "j-1"), 0);
}

TEST(WorkerMetrics, ReportsSetTheJobsGaugesHistogramAndCounters) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock));
  const v1::Assignment a = Assignment("j-000001", 1, 0);
  const AssignmentKey key = Key(a);
  // This test's own process stands in for the trainer: it has an RSS and
  // CPU time to read.
  metrics.TrainerStarted(a, getpid());
  metrics.TrainerReported(key, Started(0, 100));

  // A row as the trainer writes it: the model's metrics, then its own.
  const std::vector<std::string>& terms = jobspec::FindModel("vae")->metrics;
  std::map<std::string, double> row;
  for (size_t i = 0; i < terms.size(); ++i) row[terms[i]] = 0.5 + static_cast<double>(i);
  row["step_time_seconds"] = 0.02;
  row[protocol::kSamplesPerSecondValue] = 800;
  metrics.TrainerReported(key, Row(50, row));
  metrics.TrainerReported(key, Window(50, {0.003, 0.02, 0.2, 3.0}, 0.5, 0.25, 1000));
  metrics.TrainerReported(key, Window(100, {0.004}, 0.25, 0.5, 24));
  metrics.CheckpointWritten(key, 0.125, 4096);
  metrics.CheckpointWritten(key, 0.125, 4096);

  const auto families = metrics.Collect();
  const Labels job = {{"job_id", "j-000001"}, {"rank", "0"}};
  EXPECT_EQ(Find(families, "dfv_trainers_started_total", {})->counter.value, 1);
  EXPECT_EQ(Find(families, "dfv_job_step", job)->gauge.value, 50);
  EXPECT_EQ(Find(families, "dfv_job_total_steps", job)->gauge.value, 100);
  EXPECT_EQ(Find(families, "dfv_job_samples_per_second", job)->gauge.value, 800);
  for (size_t i = 0; i < terms.size(); ++i) {
    Labels with_term = job;
    with_term["term"] = terms[i];
    auto gauge = Find(families, "dfv_job_training_metric", with_term);
    ASSERT_TRUE(gauge) << terms[i];
    EXPECT_EQ(gauge->gauge.value, 0.5 + static_cast<double>(i)) << terms[i];
  }
  EXPECT_EQ(CountWith(families, "dfv_job_training_metric", "job_id", "j-000001"), static_cast<int>(terms.size()))
      << "only the catalogue's metrics are terms (not step_time_seconds or samples_per_second)";

  auto histogram = Find(families, "dfv_job_step_seconds", job);
  ASSERT_TRUE(histogram);
  EXPECT_EQ(histogram->histogram.sample_count, 5u);
  EXPECT_NEAR(histogram->histogram.sample_sum, 0.003 + 0.02 + 0.2 + 3.0 + 0.004, 1e-9);
  std::map<double, uint64_t> cumulative;
  for (const auto& bucket : histogram->histogram.bucket) cumulative[bucket.upper_bound] = bucket.cumulative_count;
  EXPECT_EQ(cumulative.at(0.005), 2u);
  EXPECT_EQ(cumulative.at(0.025), 3u);
  EXPECT_EQ(cumulative.at(0.25), 4u);
  EXPECT_EQ(cumulative.at(2.5), 4u);
  EXPECT_EQ(cumulative.at(5), 5u);
  EXPECT_EQ(cumulative.at(10), 5u);

  EXPECT_DOUBLE_EQ(Find(families, "dfv_job_data_wait_seconds_total", job)->counter.value, 0.75);
  EXPECT_DOUBLE_EQ(Find(families, "dfv_job_allreduce_seconds_total", job)->counter.value, 0.75);
  EXPECT_DOUBLE_EQ(Find(families, "dfv_job_allreduce_bytes_total", job)->counter.value, 1024);
  EXPECT_DOUBLE_EQ(Find(families, "dfv_job_checkpoint_write_seconds_total", job)->counter.value, 0.25);
  EXPECT_DOUBLE_EQ(Find(families, "dfv_job_checkpoint_written_bytes_total", job)->counter.value, 8192);
  auto rss = Find(families, "dfv_trainer_resident_memory_bytes", job);
  ASSERT_TRUE(rss);
  EXPECT_GT(rss->gauge.value, 1 << 20);
  auto cpu = Find(families, "dfv_trainer_cpu_seconds_total", job);
  ASSERT_TRUE(cpu);
  EXPECT_GE(cpu->counter.value, 0);

  // Progress moves the step; the text format serialises every family.
  v1::TrainerReport progress;
  progress.mutable_progress()->mutable_progress()->set_step(73);
  progress.mutable_progress()->mutable_progress()->set_total_steps(100);
  metrics.TrainerReported(key, progress);
  const auto after = metrics.Collect();
  EXPECT_EQ(Find(after, "dfv_job_step", job)->gauge.value, 73);
  const std::string text = prometheus::TextSerializer().Serialize(after);
  EXPECT_NE(text.find("dfv_job_step_seconds_bucket{job_id=\"j-000001\",rank=\"0\",le=\"0.005\"} 2"), std::string::npos)
      << text;
}

TEST(WorkerMetrics, AJobsSeriesGoAfterTheGracePeriodAndTheCountersStay) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock));
  const v1::Assignment a = Assignment("j-000002", 1, 1, "cycle_vae");
  metrics.TrainerStarted(a, getpid());
  std::map<std::string, double> row = {{protocol::kSamplesPerSecondValue, 100}};
  for (const std::string& term : jobspec::FindModel("cycle_vae")->metrics) row[term] = 1;
  metrics.TrainerReported(Key(a), Row(10, row));
  metrics.TrainerReported(Key(a), Window(10, {0.01}, 0, 0, 0));
  metrics.TrainerExited(Key(a));
  metrics.TrainerEnded(Key(a), TrainerOutcome::kFailed);
  const Labels job = {{"job_id", "j-000002"}, {"rank", "1"}};

  clock.Advance(absl::Seconds(59));
  auto families = metrics.Collect();
  EXPECT_EQ(JobSeries(families, "j-000002"), 10 + static_cast<int>(jobspec::FindModel("cycle_vae")->metrics.size()))
      << "every job family, each term, and the CPU counter (no RSS: the trainer has exited)";
  EXPECT_FALSE(Find(families, "dfv_trainer_resident_memory_bytes", job));
  EXPECT_GE(Find(families, "dfv_trainer_cpu_seconds_total", job)->counter.value, 0);
  EXPECT_EQ(Find(families, "dfv_job_step_seconds", job)->histogram.sample_count, 1u);

  clock.Advance(absl::Seconds(1));
  families = metrics.Collect();
  EXPECT_EQ(JobSeries(families, "j-000002"), 0);
  EXPECT_EQ(Find(families, "dfv_trainers_started_total", {})->counter.value, 1);
  EXPECT_EQ(Find(families, "dfv_trainers_ended_total", {{"outcome", "failed"}})->counter.value, 1);
  EXPECT_EQ(Find(families, "dfv_trainers_ended_total", {{"outcome", "succeeded"}})->counter.value, 0);

  // Reports after the removal (none should come) change nothing.
  metrics.TrainerReported(Key(a), Window(20, {0.01}, 0, 0, 0));
  EXPECT_EQ(JobSeries(metrics.Collect(), "j-000002"), 0);
}

TEST(WorkerMetrics, AnotherAttemptWithinTheGraceKeepsTheSeriesGoing) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock));
  const v1::Assignment first = Assignment("j-000003", 1, 0);
  metrics.TrainerStarted(first, getpid());
  metrics.TrainerReported(Key(first), Window(10, {0.01, 0.01}, 0, 0, 0));
  metrics.TrainerExited(Key(first));
  metrics.TrainerEnded(Key(first), TrainerOutcome::kAbandoned);
  clock.Advance(absl::Seconds(30));

  const v1::Assignment second = Assignment("j-000003", 2, 0);
  metrics.TrainerStarted(second, getpid());
  metrics.TrainerReported(Key(second), Window(20, {0.01}, 0, 0, 0));
  clock.Advance(absl::Seconds(600));  // the first attempt's grace is long over; the second still runs
  const Labels job = {{"job_id", "j-000003"}, {"rank", "0"}};
  auto families = metrics.Collect();
  EXPECT_EQ(Find(families, "dfv_job_step_seconds", job)->histogram.sample_count, 3u);
  EXPECT_TRUE(Find(families, "dfv_trainer_resident_memory_bytes", job));

  metrics.TrainerExited(Key(second));
  metrics.TrainerEnded(Key(second), TrainerOutcome::kSucceeded);
  clock.Advance(absl::Seconds(60));
  families = metrics.Collect();
  EXPECT_EQ(JobSeries(families, "j-000003"), 0);
  EXPECT_EQ(Find(families, "dfv_trainers_ended_total", {{"outcome", "abandoned"}})->counter.value, 1);
  EXPECT_EQ(Find(families, "dfv_trainers_ended_total", {{"outcome", "succeeded"}})->counter.value, 1);
}

TEST(WorkerMetrics, NoLossOrThroughputIsMadeUpBeforeTheFirstMetricsRow) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock));
  const v1::Assignment a = Assignment("j-000005", 1, 0);
  metrics.TrainerStarted(a, getpid());
  metrics.TrainerReported(Key(a), Started(0, 100));
  auto families = metrics.Collect();
  const Labels job = {{"job_id", "j-000005"}, {"rank", "0"}};
  EXPECT_EQ(Find(families, "dfv_job_total_steps", job)->gauge.value, 100);
  EXPECT_EQ(CountWith(families, "dfv_job_training_metric", "job_id", "j-000005"), 0);
  EXPECT_FALSE(Find(families, "dfv_job_samples_per_second", job));

  // A row that lacks a term adds the ones it has.
  metrics.TrainerReported(Key(a), Row(10, {{"loss", 2.0}, {protocol::kSamplesPerSecondValue, 32}}));
  families = metrics.Collect();
  EXPECT_EQ(CountWith(families, "dfv_job_training_metric", "job_id", "j-000005"), 1);
  Labels loss = job;
  loss["term"] = "loss";
  EXPECT_EQ(Find(families, "dfv_job_training_metric", loss)->gauge.value, 2.0);
  EXPECT_EQ(Find(families, "dfv_job_samples_per_second", job)->gauge.value, 32);
}

TEST(WorkerMetrics, AJobItCannotReadGetsNoTermsButEverythingElse) {
  FakeClock clock;
  WorkerMetrics metrics(Options(&clock));
  v1::Assignment a = Assignment("j-000004", 1, 0);
  a.set_spec_yaml("name: not-a-whole-job\n");
  metrics.TrainerStarted(a, getpid());
  metrics.TrainerReported(Key(a), Row(10, {{"loss", 1.5}, {protocol::kSamplesPerSecondValue, 64}}));
  const auto families = metrics.Collect();
  const Labels job = {{"job_id", "j-000004"}, {"rank", "0"}};
  EXPECT_EQ(CountWith(families, "dfv_job_training_metric", "job_id", "j-000004"), 0);
  EXPECT_EQ(Find(families, "dfv_job_samples_per_second", job)->gauge.value, 64);
  EXPECT_EQ(Find(families, "dfv_job_step", job)->gauge.value, 10);
}

}  // namespace
}  // namespace dfv::daemon
