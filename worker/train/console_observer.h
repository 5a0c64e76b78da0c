// Prints a run's progress for a person: on a terminal one live line redrawn
// in place (step/total, loss terms, samples/s, ETA), otherwise one plain line
// per metrics row.
#ifndef DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_
#define DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_

#include <cstdio>
#include <string>

#include "worker/train/observer.h"

namespace dfv::train {

// "step 1200/4685 (25.6%) epoch 1 | loss 0.0512 reconstruction 0.0123 ... | 1450 samples/s | ETA 2m31s"
std::string FormatProgressLine(const Progress& progress);

// "2m31s", "1h02m", "45s".
std::string FormatDuration(double seconds);

class ConsoleObserver : public TrainingObserver {
 public:
  // Writes to `out` (not owned); `interactive` redraws one line in place.
  ConsoleObserver(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}
  ~ConsoleObserver() override;

  void OnMetrics(int64_t step, int64_t epoch, const models::Metrics& metrics) override;
  void OnProgress(const Progress& progress) override;
  void OnArtifact(ArtifactKind kind, const std::string& relative_path, int64_t step) override;
  void OnMessage(const std::string& message) override;

 private:
  void EndLiveLine();
  std::FILE* out_;
  bool interactive_;
  bool live_line_open_ = false;
  Progress last_;
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_
