#include "worker/step/step_context.h"

#include <ATen/CPUGeneratorImpl.h>

namespace dfv::step {
namespace {

// splitmix64 finaliser: decorrelates the per-step seeds.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Inside a step, a failed collective travels as the exception model code
// already uses for failures.
void ThrowIfError(absl::Status status) {
  if (!status.ok()) throw CollectiveError(std::move(status));
}

// Backward into `trained` only. A plain backward also fills the gradients
// of every other parameter the loss depends on (the decoder when the reverse
// cycle updates only the encoder) and the input gradients that lead there,
// all thrown away at the next zero_grad; with `inputs`, the engine runs only
// the nodes on a path to `trained`. Gradients of `trained` are the same.
void BackwardInto(const torch::Tensor& loss, const std::vector<torch::Tensor>& trained) {
  if (trained.empty()) {
    loss.backward();  // LibTorch reads an empty `inputs` as every leaf
    return;
  }
  loss.backward(/*gradient=*/{}, /*retain_graph=*/c10::nullopt, /*create_graph=*/false, trained);
}

}  // namespace

StepContext::StepContext(GradientSync* sync, int rank, int world_size)
    : sync_(sync), rank_(rank), world_size_(world_size), generator_(at::detail::createCPUGenerator(0)) {}

void StepContext::Update(const torch::Tensor& loss, torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> params, trained;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      params.push_back(p);
      if (p.requires_grad()) trained.push_back(p);  // a frozen one cannot take a gradient
    }
  }
  if (sync_ == nullptr) {
    optimizer.zero_grad();
    BackwardInto(loss, trained);
    optimizer.step();
    return;
  }
  {
    // In place, not set to none: the reducer's gradients share its buckets.
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
  }
  ThrowIfError(sync_->BeforeBackward(params));
  // This rank's share of the global batch's loss (the mean of the ranks'
  // losses), so that the sum Synchronize makes is the global mean gradient.
  BackwardInto(world_size_ > 1 ? loss / world_size_ : loss, trained);
  ThrowIfError(sync_->Synchronize(params));
  optimizer.step();
}

void StepContext::BeginStep(int64_t global_step, uint64_t seed) {
  step = global_step;
  generator_.set_current_seed(Mix(seed ^ Mix(static_cast<uint64_t>(global_step))));
}

torch::Tensor StepContext::Normal(int64_t n, const std::vector<int64_t>& item_shape, torch::Device device) {
  std::vector<int64_t> shape{n * world_size_};
  shape.insert(shape.end(), item_shape.begin(), item_shape.end());
  return torch::randn(shape, generator_, torch::kFloat32).narrow(0, rank_ * n, n).to(device);
}

torch::Tensor StepContext::NormalLike(const torch::Tensor& like) {
  const std::vector<int64_t> item(like.sizes().begin() + 1, like.sizes().end());
  return Normal(like.size(0), item, like.device()).to(like.dtype());
}

torch::Tensor StepContext::RandInt(int64_t high, int64_t n, torch::Device device) {
  return torch::randint(high, {n * world_size_}, generator_, torch::kInt64).narrow(0, rank_ * n, n).to(device);
}

std::vector<double> StepContext::MeanAcrossRanks(std::vector<double> values) {
  if (sync_ != nullptr) ThrowIfError(sync_->AverageValues(values));
  return values;
}

}  // namespace dfv::step
