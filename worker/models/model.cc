#include "worker/models/model.h"

namespace dfv::models {

void StepContext::Update(const torch::Tensor& loss, torch::optim::Optimizer& optimizer) {
  optimizer.zero_grad();
  loss.backward();
  if (sync_ != nullptr) {
    std::vector<torch::Tensor> params;
    for (const auto& group : optimizer.param_groups()) {
      for (const auto& p : group.params()) params.push_back(p);
    }
    sync_->Synchronize(params);
  }
  optimizer.step();
}

torch::optim::AdamOptions AdamFrom(const jobspec::TrainSpec& train) {
  return torch::optim::AdamOptions(train.lr).betas({train.betas[0], train.betas[1]});
}

std::vector<torch::Tensor> ConcatParameters(std::vector<torch::Tensor> a, const std::vector<torch::Tensor>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace dfv::models
