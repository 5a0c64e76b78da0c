// What a training run reports while it runs. The local entry point prints it
// (ConsoleObserver); the worker daemon forwards it to the coordinator.
// Callbacks run on the training thread, in step order, and must not block for
// long; an observer that needs I/O hands the work to its own thread.
#ifndef DFV_WORKER_TRAIN_OBSERVER_H_
#define DFV_WORKER_TRAIN_OBSERVER_H_

#include <cstdint>
#include <string>

#include "worker/models/model.h"

namespace dfv::train {

struct Progress {
  int64_t step = 0;          // steps completed
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double samples_per_second = 0;
  double eta_seconds = 0;
  models::Metrics metrics;   // mean over the steps since the previous report
};

enum class ArtifactKind { kGrid, kCheckpoint, kReport, kMetrics, kJobSpec };

const char* ArtifactKindName(ArtifactKind kind);

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // A metrics row: the mean of each metric over the last log window, plus
  // step_time_seconds, samples_per_second and, in distributed runs,
  // allreduce_seconds.
  virtual void OnMetrics(int64_t step, int64_t epoch, const models::Metrics& metrics) {}
  // At most about once a second, for a live progress line.
  virtual void OnProgress(const Progress& progress) {}
  // A file finished under the run folder (`relative_path` from it).
  virtual void OnArtifact(ArtifactKind kind, const std::string& relative_path, int64_t step) {}
  // Free-form notices ("resumed from step 500").
  virtual void OnMessage(const std::string& message) {}
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_OBSERVER_H_
