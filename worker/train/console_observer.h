// Prints a run's reports for a person: on a terminal one live line redrawn
// in place (step/total, loss terms, samples/s, ETA), otherwise one plain line
// per metrics row; messages, errors and every artifact but grids on lines
// of their own.
#ifndef DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_
#define DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_

#include <cstdio>
#include <string>

#include "worker/train/observer.h"

namespace dfv::train {

// "step 1200/4685 (25.6%) epoch 1 | loss 0.0512 reconstruction 0.0123 ... | 1450 samples/s | ETA 2m31s"
std::string FormatProgressLine(const v1::TrainerProgress& progress);

class ConsoleObserver : public TrainingObserver {
 public:
  // Writes to `out` (not owned); `interactive` redraws one line in place.
  ConsoleObserver(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}
  ~ConsoleObserver() override;

  void OnReport(const v1::TrainerReport& report) override;

  // A line of its own (ends the live line first).
  void PrintLine(const std::string& text);

 private:
  void EndLiveLine();
  void ShowMetrics(const v1::MetricsRow& row);
  std::FILE* out_;
  bool interactive_;
  bool live_line_open_ = false;
  v1::TrainerProgress last_;
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_CONSOLE_OBSERVER_H_
