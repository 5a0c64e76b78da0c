// The worker daemon's Prometheus metrics (the worker's part of dfv's metric
// list): its slots, the trainer processes it started and
// how they ended, and per running assignment the job's figures, labelled
// `job_id` and `rank`: step, loss terms and accuracies, samples/s, a histogram
// of step times, all-reduce, data-loading and checkpoint totals, and the
// trainer process's RSS and CPU time. The trainer sends them on its report
// stream (proto/trainer.proto); each AssignmentRunner hands them over
// through the TrainerMetrics interface.
//
//   auto metrics = std::make_shared<WorkerMetrics>(WorkerMetricsOptions{...});
//   metrics_server->Register(metrics);   // WorkerMetrics is the Collectable
//   runner_options.metrics = metrics.get();
#ifndef DFV_WORKER_DAEMON_METRICS_H_
#define DFV_WORKER_DAEMON_METRICS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/assignment_key.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/dfv.pb.h"
#include "proto/trainer.pb.h"

namespace dfv::daemon {

// How a trainer process ended: dfv_trainers_ended_total's `outcome`.
enum class TrainerOutcome { kSucceeded, kFailed, kCancelled, kAbandoned };

// The label value of `outcome` ("succeeded", ...).
const char* TrainerOutcomeName(TrainerOutcome outcome);

// What an AssignmentRunner tells about its trainer process, in this order:
// TrainerStarted once, then TrainerReported / CheckpointWritten while it
// runs, TrainerExited once it has exited (before it is reaped), and
// TrainerEnded with the assignment's outcome. Implementations are
// thread-safe: every runner calls from its own thread.
class TrainerMetrics {
 public:
  virtual ~TrainerMetrics() = default;
  // The trainer process `pid` of `assignment` was started.
  virtual void TrainerStarted(const v1::Assignment& assignment, pid_t pid) = 0;
  // A report the trainer wrote, decoded (any type; the ones without
  // figures are ignored).
  virtual void TrainerReported(const AssignmentKey& key, const v1::TrainerReport& report) = 0;
  // The trainer wrote a checkpoint of `bytes` bytes in `write_seconds`.
  virtual void CheckpointWritten(const AssignmentKey& key, double write_seconds, int64_t bytes) = 0;
  // The trainer process has exited (or is being killed): from here on its
  // pid may name another process.
  virtual void TrainerExited(const AssignmentKey& key) = 0;
  // The assignment ended with `outcome`.
  virtual void TrainerEnded(const AssignmentKey& key, TrainerOutcome outcome) = 0;
};

struct WorkerMetricsOptions {
  // This worker's slots: dfv_worker_slots{state="free"} starts here.
  int slots = 1;
  // How long a job's series stay after its last trainer on this worker ended
  // (--metrics-job-grace).
  absl::Duration job_grace = absl::Seconds(60);
  // The clock that times the grace; tests inject a fake one.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// The families are registered once, at construction; a job's children are
// added once, when its first trainer on this worker starts (the loss terms
// and samples/s when their first value arrives), and removed
// `job_grace` after its last one ended (checked at every scrape and every
// start). The loss terms a job gets are its model's metrics in the model
// catalogue (common/jobspec/catalogue.h), read from the assignment's job;
// other values of the metrics rows are not terms. Thread-safe: one mutex
// guards the children, so a handle is never used after its removal.
class WorkerMetrics final : public prometheus::Collectable, public TrainerMetrics {
 public:
  explicit WorkerMetrics(WorkerMetricsOptions options);
  ~WorkerMetrics() override;

  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // Slots running an assignment now (clamped to 0..slots); the rest are free.
  void SetBusySlots(int busy);

  // TrainerMetrics.
  void TrainerStarted(const v1::Assignment& assignment, pid_t pid) override;
  void TrainerReported(const AssignmentKey& key, const v1::TrainerReport& report) override;
  void CheckpointWritten(const AssignmentKey& key, double write_seconds, int64_t bytes) override;
  void TrainerExited(const AssignmentKey& key) override;
  void TrainerEnded(const AssignmentKey& key, TrainerOutcome outcome) override;

  // Every family, with the trainers' RSS and CPU time read from /proc now.
  // First drops the children of jobs whose grace has passed.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // The children of one job's rank on this worker.
  struct Series {
    prometheus::Gauge* step = nullptr;
    prometheus::Gauge* total_steps = nullptr;
    // These are added when their first value arrives (a value before then
    // would be made up: a loss of 0, or a NaN that sets off the not-finite
    // alert); null until then.
    prometheus::Gauge* samples_per_second = nullptr;
    std::vector<std::pair<std::string, prometheus::Gauge*>> terms;  // the model's, in catalogue order
    prometheus::Histogram* step_seconds = nullptr;
    prometheus::Counter* allreduce_seconds = nullptr;
    prometheus::Counter* allreduce_bytes = nullptr;
    prometheus::Counter* data_wait_seconds = nullptr;
    prometheus::Counter* checkpoint_seconds = nullptr;
    prometheus::Counter* checkpoint_bytes = nullptr;
    std::set<int32_t> running;  // attempts whose trainer started and has not ended
    absl::Time ended;           // when `running` last became empty
    // The newest trainer process, while it runs (pid 0 once it exited).
    pid_t pid = 0;
    int32_t pid_attempt = 0;
    double exited_cpu_seconds = 0;  // CPU time of this series' exited trainers
    double last_cpu_seconds = 0;    // the latest reading of pid's
  };
  using SeriesKey = std::pair<std::string, int32_t>;  // job, rank

  Series* Find(const AssignmentKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Series AddSeries(const std::string& job, int32_t rank, const std::vector<std::string>& terms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets a gauge of `family` labelled with `key` (and `term`, when not
  // empty), adding it first when `gauge` is null.
  static void SetAdding(prometheus::Family<prometheus::Gauge>& family, const SeriesKey& key, const std::string& term,
                        prometheus::Gauge*& gauge, double value);
  void RemoveSeries(const Series& series) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Folds the running trainer's CPU time into exited_cpu_seconds.
  static void ForgetProcess(Series& series, bool read_final);
  std::vector<prometheus::MetricFamily> CollectTrainersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerMetricsOptions options_;
  const std::shared_ptr<prometheus::Registry> registry_;
  // Families: pointers into registry_, which owns them.
  prometheus::Family<prometheus::Gauge>* slots_;
  prometheus::Gauge* free_slots_;
  prometheus::Gauge* busy_slots_;
  prometheus::Counter* trainers_started_;
  std::map<TrainerOutcome, prometheus::Counter*> trainers_ended_;
  prometheus::Family<prometheus::Gauge>* step_;
  prometheus::Family<prometheus::Gauge>* total_steps_;
  prometheus::Family<prometheus::Gauge>* training_metric_;
  prometheus::Family<prometheus::Gauge>* samples_per_second_;
  prometheus::Family<prometheus::Histogram>* step_seconds_;
  prometheus::Family<prometheus::Counter>* allreduce_seconds_;
  prometheus::Family<prometheus::Counter>* allreduce_bytes_;
  prometheus::Family<prometheus::Counter>* data_wait_seconds_;
  prometheus::Family<prometheus::Counter>* checkpoint_seconds_;
  prometheus::Family<prometheus::Counter>* checkpoint_bytes_;

  mutable absl::Mutex mu_;
  // Mutable: Collect() (const in prometheus-cpp's interface) drops the
  // series whose grace has passed and records the trainers' readings.
  mutable std::map<SeriesKey, Series> series_ ABSL_GUARDED_BY(mu_);
};

// The step-time histogram's bucket bounds, in seconds: 5 ms .. 10 s.
const prometheus::Histogram::BucketBoundaries& StepSecondsBuckets();

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_METRICS_H_
