// What one training step needs from the other ranks, and how a model uses it.
//
// GradientSync is the collective seam: the single-process trainer has none;
// the distributed trainer plugs its bucketed all-reduce in here
// (worker/dist/reducer.h). Its methods return a Status, so a caller outside
// model code (the trainer's broadcast and its metric averaging) handles a
// failed collective like any other error.
//
// StepContext is what a model's TrainStep gets. Model code is LibTorch code,
// which reports failures by throwing; so inside a step a failed collective
// becomes a CollectiveError thrown from StepContext, and the driver's one
// adapter around TrainStep (worker/train/trainer.cc) turns it back into its
// Status. Nothing else throws CollectiveError.
#ifndef DFV_WORKER_STEP_STEP_CONTEXT_H_
#define DFV_WORKER_STEP_STEP_CONTEXT_H_

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace dfv::step {

// Errors: UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED when a peer died or a
// collective timed out (the job is retried), INVALID_ARGUMENT for what the
// sync cannot reduce. Called from the training thread only.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Called just before backward with the parameters one optimiser owns, so
  // gradients can be reduced while backward is still producing the rest.
  virtual absl::Status BeforeBackward(const std::vector<torch::Tensor>& parameters) { return absl::OkStatus(); }
  // Called between backward and step with the same parameters: on success
  // every defined gradient among them is the sum over all ranks.
  // StepContext::Update divides each rank's loss by the world size before
  // backward, so that sum is the mean gradient of the global batch. Gradients
  // are zeroed in place before backward (an implementation may keep them in
  // its own buffers).
  virtual absl::Status Synchronize(const std::vector<torch::Tensor>& parameters) = 0;
  // Replaces each value by its mean over all ranks.
  virtual absl::Status AverageValues(std::vector<double>& values) = 0;
  // Copies rank 0's values of `tensors` into every rank's tensors in place
  // (parameters and buffers, once before training).
  virtual absl::Status BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) = 0;
  // Seconds this rank spent blocked on gradient all-reduces since the last
  // call (communication backward did not hide).
  virtual double TakeBlockedSeconds() { return 0; }
  // Bytes of gradients this rank all-reduced since the last call.
  virtual int64_t TakeReducedBytes() { return 0; }
};

// A collective that failed inside a training step; `status` is the
// GradientSync's error.
class CollectiveError : public std::runtime_error {
 public:
  explicit CollectiveError(absl::Status status)
      : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// What a model uses to apply an update and to draw its training noise;
// passed to every TrainStep.
class StepContext {
 public:
  // `rank` of `world_size` ranks, each holding `n` items of a global batch of
  // n * world_size; a single process is rank 0 of 1 with no sync. `sync` is
  // not owned and must outlive the context.
  explicit StepContext(GradientSync* sync, int rank = 0, int world_size = 1);

  // The one way a model updates parameters: zero `optimizer`'s gradients, run
  // backward on `loss` (divided by the world size: this rank's share of the
  // global batch's loss), sum those gradients across ranks, step. Throws
  // CollectiveError when the sync fails (and whatever LibTorch throws).
  void Update(const torch::Tensor& loss, torch::optim::Optimizer& optimizer);

  // Called by the driver before each step: sets `step` and reseeds the noise
  // generator from (seed, step), identically on every rank.
  void BeginStep(int64_t global_step, uint64_t seed);

  // Training noise for this rank's `n` items: this rank's rows of one draw
  // for the whole global batch, made identically on every rank. So what a
  // step draws does not depend on how many ranks share its batch, and N ranks
  // train exactly as one process on the concatenated batch would.
  // N(0, 1) of shape [n, item_shape...].
  torch::Tensor Normal(int64_t n, const std::vector<int64_t>& item_shape, torch::Device device);
  // N(0, 1) shaped like `like` (whose first dimension is the items).
  torch::Tensor NormalLike(const torch::Tensor& like);
  // Uniform integers in [0, high), one per item: [n] int64.
  torch::Tensor RandInt(int64_t high, int64_t n, torch::Device device);

  // Means of `values` over all ranks (the values themselves in one process).
  // Throws CollectiveError when the sync fails.
  std::vector<double> MeanAcrossRanks(std::vector<double> values);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Global step of the iteration being run (0-based).
  int64_t step = 0;

 private:
  GradientSync* sync_;
  int rank_;
  int world_size_;
  torch::Generator generator_;
};

}  // namespace dfv::step

#endif  // DFV_WORKER_STEP_STEP_CONTEXT_H_
