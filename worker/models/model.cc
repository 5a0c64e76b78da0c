#include "worker/models/model.h"

namespace dfv::models {

torch::optim::AdamOptions AdamFrom(const jobspec::TrainSpec& train) {
  return torch::optim::AdamOptions(train.lr).betas({train.betas[0], train.betas[1]});
}

std::vector<torch::Tensor> ConcatParameters(std::vector<torch::Tensor> a, const std::vector<torch::Tensor>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const jobspec::ModelInfo& CatalogueEntry(const ModelContext& context) {
  const jobspec::ModelInfo* info = jobspec::FindModel(context.spec->model);
  TORCH_CHECK(info != nullptr, "model '", context.spec->model, "' is not in the catalogue");
  return *info;
}

}  // namespace dfv::models
