// StepTrace: what the first steps of a run did, for another implementation
// to replay and compare with (bench/reference/ replays it in Python): every
// module's parameters and buffers before the first traced step, then each
// traced step's batch and metrics.
//
// The file is one pickled dict written by torch::pickle_save, which Python's
// torch.load reads:
//   format      "dfv-step-trace-1"
//   job_yaml    the canonical job (train.seed, model_params, loss weights...)
//   train_size  training images (a model may size tables by it)
//   num_classes classes of the specified factor
//   total_steps the run's step count (a model may schedule by it)
//   state       {module name -> {parameter or buffer name -> tensor}}, the
//               names of Model::Modules() and their named_parameters /
//               named_buffers (Python's state_dict keys for the same layout)
//   steps       [{"step": global step, "batch": {field -> tensor} (images,
//               labels, indices and the defined partner fields of
//               data::Batch), "metrics": {name -> float}}]
// Batches are the loader's tensors (CPU); the noise a step draws is not
// stored: it is a function of (train.seed, step) (worker/step/step_context.h).
#ifndef DFV_WORKER_TRAIN_STEP_TRACE_H_
#define DFV_WORKER_TRAIN_STEP_TRACE_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "worker/data/batch_loader.h"
#include "worker/data/image_set.h"
#include "worker/models/model.h"

namespace dfv::train {

// Not thread-safe: the training thread builds and writes it. LibTorch may
// throw from the constructor and AddStep (the trainer's adapter catches).
class StepTrace {
 public:
  // Copies `model`'s current parameters and buffers; `steps` (> 0) steps are
  // traced. `train` is the training set the run reads.
  StepTrace(models::Model& model, const std::string& job_yaml, const data::ImageSet& train, int64_t total_steps,
            int64_t steps);

  // Records one step (CPU copies of the batch's defined tensors). Ignored
  // once Full().
  void AddStep(int64_t step, const data::Batch& batch, const models::Metrics& metrics);
  bool Full() const { return traced_ >= steps_; }
  int64_t traced() const { return traced_; }

  // Writes the file atomically. INTERNAL when pickling fails; the file
  // system's errors otherwise. Never throws.
  absl::Status Write(const std::string& path) const;

 private:
  int64_t steps_;
  int64_t traced_ = 0;
  c10::impl::GenericDict root_;
  c10::impl::GenericList step_list_;
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_STEP_TRACE_H_
