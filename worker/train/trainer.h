// The one training driver every model plugs into. It owns the loop (steps,
// epochs, max_steps), seeding, the data loader, metrics, sample grids,
// checkpoints, resuming and the final evaluation; the model owns what one
// iteration does (worker/models/model.h).
//
// Run folder layout (all paths relative to TrainerOptions::out_dir):
//   job.yaml                      the canonical, fully resolved job
//   metrics.csv                   one row per log window
//   grids/<grid>-step<N>.png      sample grids, every samples.every_steps and at the end
//   checkpoints/step-<N>.ckpt     every checkpoint.every_steps and at the end, keep_last kept
//                                 (none at the end of a run that trained no step)
//   report.json                   the evaluation at the end
#ifndef DFV_WORKER_TRAIN_TRAINER_H_
#define DFV_WORKER_TRAIN_TRAINER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cpu_cores.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/batch_loader.h"
#include "worker/data/image_set.h"
#include "worker/models/model.h"
#include "worker/train/observer.h"

namespace dfv::train {

struct TrainerOptions {
  // The validated job.
  jobspec::JobSpec spec;
  // Run folder; created if missing.
  std::string out_dir;
  // A checkpoint file, or a run folder whose newest valid checkpoint is used;
  // empty to start from scratch.
  std::string resume_from;
  // This process's rank and the number of ranks (1 for a local run).
  int rank = 0;
  int world_size = 1;
  // Averages gradients across ranks; null for a single process. Not owned.
  step::GradientSync* gradient_sync = nullptr;
  // This job's ranks on this host (this one included): with train.threads 0
  // they split the cores this process may use (common/cpu_cores.h).
  int ranks_on_host = 1;
  // Set when the worker daemon pinned this process to its own share of the
  // daemon's cores (e.g. "slot 2 of 2"): the cores this process may use are
  // then all its own, not divided among ranks_on_host. Empty: not pinned.
  std::string core_share;
  // Receives metrics, progress and artifacts; may be null. Not owned.
  TrainingObserver* observer = nullptr;
  // Set by another thread to stop the run after the current step; not owned.
  const std::atomic<bool>* cancel = nullptr;
  // When not empty, rank 0 writes a StepTrace (step_trace.h) of the first
  // trace_steps steps (> 0) to this file, as soon as they are done (or at
  // the end of a shorter run): for comparing with a reference implementation.
  std::string trace_path;
  int64_t trace_steps = 20;
};

// The outcome of a finished run.
struct RunSummary {
  int64_t steps = 0;
  double wall_seconds = 0;
  // This run's training steps (TrainStep alone) and the time the loop waited
  // for their batches: the loader starves the step when the second is a
  // noticeable share of the first.
  double step_seconds = 0;
  double data_wait_seconds = 0;
  models::Metrics final_metrics;  // the last log window's means
  std::string report_path;        // relative to out_dir
};

class Trainer {
 public:
  // Loads the data set, builds the model, and restores a checkpoint when
  // asked. INVALID_ARGUMENT / NOT_FOUND / DATA_LOSS name what was wrong (a
  // missing data file, a corrupt checkpoint, a checkpoint of another model);
  // INTERNAL when LibTorch fails while setting up. Never throws.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(TrainerOptions options);

  ~Trainer();

  // Trains to the end (or until cancelled: CANCELLED), writing the run folder
  // as described above. A run resumed at its last step (total_steps) trains
  // nothing: it writes the grids and the evaluation of the checkpoint it
  // resumed from, and no checkpoint (its model is that one). Never throws; LibTorch errors come back as INTERNAL
  // naming the step, a diverged loss as FAILED_PRECONDITION.
  absl::StatusOr<RunSummary> Run();

  int64_t total_steps() const { return total_steps_; }
  // The intra-op threads Create set (torch::set_num_threads) and why.
  const ThreadPlan& thread_plan() const { return thread_plan_; }
  int64_t start_step() const { return start_step_; }

 private:
  Trainer() = default;
  // Create's work; may throw what LibTorch throws.
  static absl::StatusOr<std::unique_ptr<Trainer>> Build(TrainerOptions options);
  absl::StatusOr<RunSummary> RunLoop();
  absl::Status WriteGrids(int64_t step);
  absl::Status WriteCheckpoint(int64_t step, int64_t epoch);
  absl::Status WriteReport(const RunSummary& summary);
  // Tells the observer, if there is one.
  void Report(const v1::TrainerReport& report);
  // `write_seconds`: a checkpoint's write time.
  void ReportArtifact(v1::ArtifactKind kind, const std::string& relative_path, int64_t step,
                      double write_seconds = 0);

  TrainerOptions options_;
  std::string job_yaml_;
  data::DatasetSplits data_;
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<data::BatchLoader> loader_;
  models::GridInputs grid_inputs_;
  int64_t total_steps_ = 0;
  int64_t start_step_ = 0;
  ThreadPlan thread_plan_;
  bool is_chief_ = true;  // rank 0 writes files
  torch::Device device_ = torch::kCPU;  // resources.device
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_TRAINER_H_
