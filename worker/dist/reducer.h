// GradientReducer: the data-parallel step::GradientSync. Gradients are
// summed across ranks with an all-reduce in buckets of about `bucket_bytes`,
// each launched as soon as backward has produced all of its gradients, so
// communication overlaps the rest of backward (as PyTorch's
// DistributedDataParallel does).
//
// Gradients live in the buckets: after its first reduction each parameter's
// gradient is an alias of its slice of the bucket's flat buffer (DDP's
// gradient_as_bucket_view), so backward accumulates straight into the buffer
// that is all-reduced in place, and the reducer copies nothing. The sum is
// the mean gradient because StepContext::Update divides each rank's loss by
// the world size before backward (the global batch's loss is the mean of the
// ranks' losses), which costs no pass over the gradients. A gradient that is
// not an alias (the first step, or gradients reset to undefined) is copied in
// once and the alias put in its place.
//
// How: every parameter gets a hook on its gradient accumulator, which runs
// after backward has accumulated its gradient. StepContext::Update calls
// BeforeBackward with the parameters of the optimiser about to step, which
// arms that optimiser's bucket plan (buckets in reverse parameter order, the
// order backward tends to produce them). A bucket is launched once all its
// parameters' hooks have run and every earlier bucket has been launched, so
// all ranks start the same collectives in the same order. Synchronize
// launches what is left (a parameter without a gradient contributes zeros)
// and waits. A bucket waits only for the parameters whose hooks ran the
// previous time, so a parameter backward no longer reaches does not hold back
// the buckets after it; such a parameter's gradient is kept out of the bucket
// (it might otherwise be written while its bucket is on the wire), and if the
// graph changes and it gets a gradient after its bucket left, that gradient is
// reduced on its own after backward. Models with several optimisers get one
// plan per optimiser; a gradient that backward produces for another
// optimiser's parameters is left alone.
//
// Requirements, as for DDP: one backward per Update, gradients zeroed before
// it (in place, to keep the aliases: StepContext::Update does), the same graph
// on every rank (a parameter has a gradient on all ranks or on none), float32
// parameters. Not thread-safe across Updates (one training thread).
#ifndef DFV_WORKER_DIST_REDUCER_H_
#define DFV_WORKER_DIST_REDUCER_H_

#include <torch/csrc/autograd/function.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/dist/communicator.h"
#include "worker/step/step_context.h"

namespace dfv::dist {

// Counts since construction.
struct ReducerStats {
  int64_t buckets = 0;               // all-reduces started for gradients
  int64_t launched_in_backward = 0;  // of those, started by a hook during backward
  int64_t late_gradients = 0;        // reduced on their own after their bucket left
  int64_t bytes = 0;                 // bytes of gradients all-reduced (buckets and late ones)
};

struct ReducerOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  // false: reduce only after backward has finished (for comparison).
  bool overlap = true;
};

class GradientReducer final : public step::GradientSync {
 public:
  // `communicator` must outlive the reducer.
  GradientReducer(Communicator& communicator, ReducerOptions options);
  ~GradientReducer() override;

  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // step::GradientSync. The communicator's error when a collective fails;
  // INVALID_ARGUMENT for a parameter that is not float32. Synchronize leaves
  // each defined gradient the sum over ranks.
  absl::Status BeforeBackward(const std::vector<torch::Tensor>& parameters) override;
  absl::Status Synchronize(const std::vector<torch::Tensor>& parameters) override;
  absl::Status AverageValues(std::vector<double>& values) override;
  absl::Status BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) override;
  double TakeBlockedSeconds() override;
  int64_t TakeReducedBytes() override;

  ReducerStats stats() const;

  // Buckets of the plan for `parameters` (for tests and the benchmark);
  // builds the plan if needed. Errors as BeforeBackward.
  absl::StatusOr<size_t> BucketCount(const std::vector<torch::Tensor>& parameters);

 private:
  struct Plan;

  absl::StatusOr<Plan*> PlanFor(const std::vector<torch::Tensor>& parameters);
  void Hook(const torch::Tensor& parameter);
  void OnGradientReady(const void* parameter);
  void LaunchReadyLocked(Plan& plan);
  void Launch(Plan& plan, size_t bucket, bool in_backward);
  absl::Status ReduceLate(Plan& plan);
  absl::Status Wait(std::vector<std::unique_ptr<Work>> works);

  Communicator& comm_;
  ReducerOptions options_;
  mutable std::mutex mu_;  // hooks may run on autograd's device threads
  std::map<std::vector<const void*>, std::unique_ptr<Plan>> plans_;
  Plan* armed_ = nullptr;
  // Gradient accumulators hooked so far (kept alive: a parameter's
  // accumulator, and the hook with it, would otherwise go with each graph),
  // with the key that removes the hook.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::unordered_set<const void*> hooked_;
  double blocked_seconds_ = 0;
  ReducerStats stats_;  // guarded by mu_
  int64_t bytes_taken_ = 0;  // stats_.bytes at the last TakeReducedBytes; guarded by mu_
};

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_REDUCER_H_
