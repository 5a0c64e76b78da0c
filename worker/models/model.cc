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

}  // namespace dfv::models
