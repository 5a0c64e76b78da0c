#include "worker/daemon/metrics.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "common/jobspec/catalogue.h"
#include "common/jobspec/parse.h"
#include "common/metrics/process_collector.h"
#include "spdlog/spdlog.h"
#include "worker/protocol/trainer_report.h"

namespace dfv::daemon {
namespace {

constexpr TrainerOutcome kOutcomes[] = {TrainerOutcome::kSucceeded, TrainerOutcome::kFailed,
                                        TrainerOutcome::kCancelled, TrainerOutcome::kAbandoned};

// The model's metrics in the catalogue: the loss terms and accuracies the
// trainer reports. None when the job cannot be read (the daemon still runs
// it; the trainer will say what is wrong).
std::vector<std::string> ModelTerms(const v1::Assignment& assignment) {
  jobspec::ParseOptions options;
  options.source_name = "the assignment's job";
  absl::StatusOr<jobspec::JobSpec> spec = jobspec::ParseJobSpec(assignment.spec_yaml(), options);
  if (!spec.ok()) {
    spdlog::debug("{}: no loss-term series: {}", assignment.job_id(), spec.status().ToString());
    return {};
  }
  const jobspec::ModelInfo* model = jobspec::FindModel(spec->model);
  return model != nullptr ? model->metrics : std::vector<std::string>();
}

template <typename T>
prometheus::Family<T>& Build(prometheus::detail::Builder<T> builder, const char* name, const char* help,
                             prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

prometheus::ClientMetric Sample(const std::string& job, int32_t rank) {
  prometheus::ClientMetric metric;
  metric.label.push_back({"job_id", job});
  metric.label.push_back({"rank", std::to_string(rank)});
  return metric;
}

}  // namespace

const char* TrainerOutcomeName(TrainerOutcome outcome) {
  switch (outcome) {
    case TrainerOutcome::kSucceeded:
      return "succeeded";
    case TrainerOutcome::kFailed:
      return "failed";
    case TrainerOutcome::kCancelled:
      return "cancelled";
    case TrainerOutcome::kAbandoned:
      return "abandoned";
  }
  return "unknown";
}

const prometheus::Histogram::BucketBoundaries& StepSecondsBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *kBuckets;
}

WorkerMetrics::WorkerMetrics(WorkerMetricsOptions options)
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  prometheus::Registry& r = *registry_;
  slots_ = &Build(BuildGauge(), "dfv_worker_slots", "This worker's slots, by state (free, busy).", r);
  free_slots_ = &slots_->Add({{"state", "free"}});
  busy_slots_ = &slots_->Add({{"state", "busy"}});
  SetBusySlots(0);
  trainers_started_ =
      &Build(BuildCounter(), "dfv_trainers_started_total", "Trainer processes started.", r).Add({});
  auto& ended = Build(BuildCounter(), "dfv_trainers_ended_total", "Trainer processes that ended, by outcome.", r);
  for (TrainerOutcome outcome : kOutcomes) trainers_ended_[outcome] = &ended.Add({{"outcome", TrainerOutcomeName(outcome)}});
  step_ = &Build(BuildGauge(), "dfv_job_step", "Steps completed (latest progress or metrics report).", r);
  total_steps_ = &Build(BuildGauge(), "dfv_job_total_steps", "Steps of the run.", r);
  training_metric_ = &Build(BuildGauge(), "dfv_job_training_metric",
                            "The model's metrics (loss terms, accuracies) in the last metrics row, by term.", r);
  samples_per_second_ =
      &Build(BuildGauge(), "dfv_job_samples_per_second", "Global samples per second of the last log window.", r);
  step_seconds_ = &Build(prometheus::BuildHistogram(), "dfv_job_step_seconds", "Time of each training step.", r);
  allreduce_seconds_ = &Build(BuildCounter(), "dfv_job_allreduce_seconds_total",
                              "Time blocked on gradient all-reduce.", r);
  allreduce_bytes_ = &Build(BuildCounter(), "dfv_job_allreduce_bytes_total", "Bytes of gradients all-reduced.", r);
  data_wait_seconds_ = &Build(BuildCounter(), "dfv_job_data_wait_seconds_total",
                              "Time the step loop waited for the next batch.", r);
  checkpoint_seconds_ =
      &Build(BuildCounter(), "dfv_job_checkpoint_write_seconds_total", "Time writing checkpoints.", r);
  checkpoint_bytes_ =
      &Build(BuildCounter(), "dfv_job_checkpoint_written_bytes_total", "Bytes of checkpoints written.", r);
}

WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::SetBusySlots(int busy) {
  busy = std::clamp(busy, 0, options_.slots);
  busy_slots_->Set(busy);
  free_slots_->Set(options_.slots - busy);
}

WorkerMetrics::Series WorkerMetrics::AddSeries(const std::string& job, int32_t rank,
                                               const std::vector<std::string>& terms) {
  const prometheus::Labels labels = {{"job_id", job}, {"rank", std::to_string(rank)}};
  Series s;
  s.step = &step_->Add(labels);
  s.total_steps = &total_steps_->Add(labels);
  for (const std::string& term : terms) s.terms.emplace_back(term, nullptr);
  s.step_seconds = &step_seconds_->Add(labels, StepSecondsBuckets());
  s.allreduce_seconds = &allreduce_seconds_->Add(labels);
  s.allreduce_bytes = &allreduce_bytes_->Add(labels);
  s.data_wait_seconds = &data_wait_seconds_->Add(labels);
  s.checkpoint_seconds = &checkpoint_seconds_->Add(labels);
  s.checkpoint_bytes = &checkpoint_bytes_->Add(labels);
  return s;
}

void WorkerMetrics::SetAdding(prometheus::Family<prometheus::Gauge>& family, const SeriesKey& key,
                              const std::string& term, prometheus::Gauge*& gauge, double value) {
  if (gauge == nullptr) {
    prometheus::Labels labels = {{"job_id", key.first}, {"rank", std::to_string(key.second)}};
    if (!term.empty()) labels["term"] = term;
    gauge = &family.Add(labels);
  }
  gauge->Set(value);
}

void WorkerMetrics::RemoveSeries(const Series& s) const {
  step_->Remove(s.step);
  total_steps_->Remove(s.total_steps);
  if (s.samples_per_second != nullptr) samples_per_second_->Remove(s.samples_per_second);
  for (const auto& [term, gauge] : s.terms) {
    if (gauge != nullptr) training_metric_->Remove(gauge);
  }
  step_seconds_->Remove(s.step_seconds);
  allreduce_seconds_->Remove(s.allreduce_seconds);
  allreduce_bytes_->Remove(s.allreduce_bytes);
  data_wait_seconds_->Remove(s.data_wait_seconds);
  checkpoint_seconds_->Remove(s.checkpoint_seconds);
  checkpoint_bytes_->Remove(s.checkpoint_bytes);
}

void WorkerMetrics::ExpireLocked() const {
  const absl::Time now = options_.now();
  for (auto it = series_.begin(); it != series_.end();) {
    if (it->second.running.empty() && now - it->second.ended >= options_.job_grace) {
      RemoveSeries(it->second);
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
}

WorkerMetrics::Series* WorkerMetrics::Find(const AssignmentKey& key) {
  auto it = series_.find({key.job_id, key.rank});
  return it == series_.end() ? nullptr : &it->second;
}

void WorkerMetrics::ForgetProcess(Series& s, bool read_final) {
  if (s.pid == 0) return;
  if (read_final) {
    // The last reading: an exited but unreaped trainer still has its times.
    absl::StatusOr<metrics::ProcessStats> stats = metrics::ReadProcessStats(s.pid);
    if (stats.ok()) s.last_cpu_seconds = std::max(s.last_cpu_seconds, stats->cpu_seconds);
  }
  s.exited_cpu_seconds += s.last_cpu_seconds;
  s.last_cpu_seconds = 0;
  s.pid = 0;
}

void WorkerMetrics::TrainerStarted(const v1::Assignment& assignment, pid_t pid) {
  trainers_started_->Increment();
  absl::MutexLock lock(&mu_);
  ExpireLocked();
  const SeriesKey key{assignment.job_id(), assignment.rank()};
  auto it = series_.find(key);
  if (it == series_.end()) {
    it = series_.emplace(key, AddSeries(assignment.job_id(), assignment.rank(), ModelTerms(assignment))).first;
  }
  Series& s = it->second;
  // Another attempt's trainer for the same rank may still be winding down;
  // the newest one is the one measured from here on.
  ForgetProcess(s, /*read_final=*/true);
  s.running.insert(assignment.attempt());
  s.pid = pid;
  s.pid_attempt = assignment.attempt();
}

void WorkerMetrics::TrainerReported(const AssignmentKey& key, const v1::TrainerReport& report) {
  absl::MutexLock lock(&mu_);
  Series* s = Find(key);
  if (s == nullptr) return;
  const SeriesKey series_key{key.job_id, key.rank};
  switch (report.report_case()) {
    case v1::TrainerReport::kStarted:
      s->step->Set(static_cast<double>(report.started().step()));
      s->total_steps->Set(static_cast<double>(report.started().total_steps()));
      break;
    case v1::TrainerReport::kProgress:
      s->step->Set(static_cast<double>(report.progress().progress().step()));
      s->total_steps->Set(static_cast<double>(report.progress().progress().total_steps()));
      break;
    case v1::TrainerReport::kMetrics: {
      const v1::MetricsRow& row = report.metrics();
      s->step->Set(static_cast<double>(row.step()));
      for (const v1::MetricValue& value : row.values()) {
        if (value.name() == protocol::kSamplesPerSecondValue) {
          SetAdding(*samples_per_second_, series_key, "", s->samples_per_second, value.value());
          continue;
        }
        for (auto& [term, gauge] : s->terms) {
          if (term == value.name()) SetAdding(*training_metric_, series_key, term, gauge, value.value());
        }
      }
      break;
    }
    case v1::TrainerReport::kWindow: {
      const v1::TrainerWindow& window = report.window();
      for (double seconds : window.step_seconds()) s->step_seconds->Observe(seconds);
      s->data_wait_seconds->Increment(window.data_wait_seconds());
      s->allreduce_seconds->Increment(window.allreduce_seconds());
      s->allreduce_bytes->Increment(static_cast<double>(window.allreduce_bytes()));
      break;
    }
    default:
      break;  // no figures
  }
}

void WorkerMetrics::CheckpointWritten(const AssignmentKey& key, double write_seconds, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  Series* s = Find(key);
  if (s == nullptr) return;
  s->checkpoint_seconds->Increment(write_seconds);
  s->checkpoint_bytes->Increment(static_cast<double>(bytes));
}

void WorkerMetrics::TrainerExited(const AssignmentKey& key) {
  absl::MutexLock lock(&mu_);
  Series* s = Find(key);
  if (s != nullptr && s->pid_attempt == key.attempt) ForgetProcess(*s, /*read_final=*/true);
}

void WorkerMetrics::TrainerEnded(const AssignmentKey& key, TrainerOutcome outcome) {
  trainers_ended_.at(outcome)->Increment();
  absl::MutexLock lock(&mu_);
  Series* s = Find(key);
  if (s == nullptr || s->running.erase(key.attempt) == 0) return;
  if (s->pid_attempt == key.attempt) ForgetProcess(*s, /*read_final=*/false);
  if (s->running.empty()) s->ended = options_.now();
}

std::vector<prometheus::MetricFamily> WorkerMetrics::CollectTrainersLocked() const {
  prometheus::MetricFamily rss{"dfv_trainer_resident_memory_bytes", "The trainer process's resident memory.",
                               prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily cpu{"dfv_trainer_cpu_seconds_total", "The trainer processes' user and system CPU time.",
                               prometheus::MetricType::Counter, {}};
  for (auto& [key, s] : series_) {
    if (s.pid != 0) {
      absl::StatusOr<metrics::ProcessStats> stats = metrics::ReadProcessStats(s.pid);
      if (stats.ok()) {
        s.last_cpu_seconds = std::max(s.last_cpu_seconds, stats->cpu_seconds);
        prometheus::ClientMetric sample = Sample(key.first, key.second);
        sample.gauge.value = static_cast<double>(stats->resident_bytes);
        rss.metric.push_back(std::move(sample));
      }
    }
    prometheus::ClientMetric sample = Sample(key.first, key.second);
    sample.counter.value = s.exited_cpu_seconds + s.last_cpu_seconds;
    cpu.metric.push_back(std::move(sample));
  }
  std::vector<prometheus::MetricFamily> families;
  for (auto* family : {&rss, &cpu}) {
    if (!family->metric.empty()) families.push_back(std::move(*family));
  }
  return families;
}

std::vector<prometheus::MetricFamily> WorkerMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> trainers;
  {
    absl::MutexLock lock(&mu_);
    ExpireLocked();
    trainers = CollectTrainersLocked();
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  families.insert(families.end(), std::make_move_iterator(trainers.begin()), std::make_move_iterator(trainers.end()));
  return families;
}

}  // namespace dfv::daemon
