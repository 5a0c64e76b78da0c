// What a training run reports while it runs: v1::TrainerReport messages
// (proto/trainer.proto). The local entry point prints them (ConsoleObserver);
// the trainer process writes them to its worker daemon, which forwards them
// to the coordinator. Callbacks run on the training thread, in step order,
// and must not block for long; an observer that needs I/O hands the work to
// its own thread.
#ifndef DFV_WORKER_TRAIN_OBSERVER_H_
#define DFV_WORKER_TRAIN_OBSERVER_H_

#include "proto/trainer.pb.h"

namespace dfv::train {

// The Trainer emits metrics rows (the mean of each metric over the last log
// window, plus step_time_seconds, samples_per_second and, in distributed
// runs, allreduce_seconds), progress (at most about once a second), every
// file it finishes under its run folder, and free-form messages ("resumed
// from ... at step 500"). The trainer process adds started, rendezvous,
// finished and error around the run.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void OnReport(const v1::TrainerReport& report) = 0;
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_OBSERVER_H_
