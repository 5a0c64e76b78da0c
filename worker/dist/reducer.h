// GradientReducer: the data-parallel models::GradientSync. Gradients are
// averaged across ranks with an all-reduce in buckets of about
// `bucket_bytes`, each launched as soon as backward has produced all of its
// gradients, so communication overlaps the rest of backward (as PyTorch's
// DistributedDataParallel does).
//
// How: every parameter gets a gradient hook once. StepContext::Update calls
// BeforeBackward with the parameters of the optimiser about to step, which
// arms that optimiser's bucket plan (buckets in reverse parameter order, the
// order backward tends to produce them). During backward each hook copies its
// gradient into the bucket's flat buffer; a complete bucket is launched once
// every earlier bucket has been, so all ranks start the same collectives in
// the same order. Synchronize launches what is left (a parameter without a
// gradient contributes zeros), waits, divides by the world size and writes
// the mean back into each defined gradient. A bucket waits only for the
// parameters that had a gradient the previous time (unused ones contribute
// zeros), so an unused parameter does not hold back the buckets after it;
// if the graph changes and a gradient comes for a bucket already started,
// that step is reduced once more after backward. Models with several optimisers
// get one plan per optimiser; a gradient that backward produces for another
// optimiser's parameters is left alone.
//
// Requirements, as for DDP: one backward per Update, the same graph on every
// rank (a parameter has a gradient on all ranks or on none), float32
// parameters. Not thread-safe across Updates (one training thread).
#ifndef DFV_WORKER_DIST_REDUCER_H_
#define DFV_WORKER_DIST_REDUCER_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "worker/dist/communicator.h"
#include "worker/models/model.h"

namespace dfv::dist {

// Counts since construction.
struct ReducerStats {
  int64_t buckets = 0;               // all-reduces started for gradients
  int64_t launched_in_backward = 0;  // of those, started by a hook during backward
};

struct ReducerOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  // false: reduce only after backward has finished (for comparison).
  bool overlap = true;
};

class GradientReducer final : public models::GradientSync {
 public:
  // `communicator` must outlive the reducer.
  GradientReducer(Communicator& communicator, ReducerOptions options);
  ~GradientReducer() override;

  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // models::GradientSync. Throw models::CollectiveError on failure.
  void BeforeBackward(const std::vector<torch::Tensor>& parameters) override;
  void Synchronize(const std::vector<torch::Tensor>& parameters) override;
  void AverageValues(std::vector<double>& values) override;
  void BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) override;
  double TakeBlockedSeconds() override;

  ReducerStats stats() const;

  // Buckets of the plan for `parameters` (for tests and the benchmark);
  // builds the plan if needed.
  size_t BucketCount(const std::vector<torch::Tensor>& parameters);

 private:
  struct Plan;

  Plan& PlanFor(const std::vector<torch::Tensor>& parameters);
  void OnGradient(const void* parameter, const torch::Tensor& grad);
  void LaunchReadyLocked(Plan& plan);
  void Launch(Plan& plan, size_t bucket, bool in_backward);
  static void FillFromGradient(Plan& plan, size_t parameter);
  void WaitAll(Plan& plan);

  Communicator& comm_;
  ReducerOptions options_;
  mutable std::mutex mu_;  // hooks may run on autograd's device threads
  std::map<std::vector<const void*>, std::unique_ptr<Plan>> plans_;
  Plan* armed_ = nullptr;
  // Parameters hooked so far, with the hook handle to remove.
  std::vector<std::pair<torch::Tensor, unsigned>> hooks_;
  std::unordered_set<const void*> hooked_;
  double blocked_seconds_ = 0;
  ReducerStats stats_;  // guarded by mu_
};

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_REDUCER_H_
