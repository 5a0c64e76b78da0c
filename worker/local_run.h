// `dfv-trainer train`: one process trains a job file with no
// coordinator, printing progress and leaving a run folder. Useful on its own,
// for debugging a job and for benchmarks.
#ifndef DFV_WORKER_LOCAL_RUN_H_
#define DFV_WORKER_LOCAL_RUN_H_

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/train/trainer.h"

namespace dfv::worker {

struct LocalRunOptions {
  std::string job_file;                 // the job's YAML file
  std::vector<std::string> overrides;   // --set key=value
  std::string out_dir;                  // empty: a new folder under runs_root
  std::string runs_root = "runs";
  std::string resume_from;              // checkpoint file or run folder
  std::FILE* console = stderr;          // where progress goes
  bool interactive = false;             // redraw one progress line in place
  // When not empty, the data set must lie under one of these folders
  // (common/data_roots.h); empty: read it wherever it is.
  std::vector<std::string> data_roots;
  // When not empty: a StepTrace of the first trace_steps steps goes here
  // (TrainerOptions::trace_path).
  std::string trace_path;
  int64_t trace_steps = 20;
};

struct LocalRunResult {
  std::string out_dir;
  train::RunSummary summary;
};

// Validates the job, trains it and returns where the results are. A job file
// with errors returns INVALID_ARGUMENT listing every error before anything
// runs. With resume_from and no out_dir, results go to the resumed run's folder.
absl::StatusOr<LocalRunResult> RunLocal(const LocalRunOptions& options);

}  // namespace dfv::worker

#endif  // DFV_WORKER_LOCAL_RUN_H_
