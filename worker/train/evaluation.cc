#include "worker/train/evaluation.h"

#include <numeric>

#include "common/status_macros.h"
#include "worker/data/tensor.h"

namespace dfv::train {
namespace {
constexpr int64_t kEvalBatch = 500;
}  // namespace

absl::StatusOr<nlohmann::json> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                        const jobspec::EvaluateSpec& spec, torch::Device device) {
  torch::NoGradGuard no_grad;
  const data::ImageSet& test = *data.test;
  nlohmann::json report;
  report["test_images"] = test.size;
  double squared_error = 0;
  int64_t elements = 0;
  bool reconstructs = true;
  for (int64_t begin = 0; begin < test.size && reconstructs; begin += kEvalBatch) {
    const int64_t end = std::min(test.size, begin + kEvalBatch);
    DFV_ASSIGN_OR_RETURN(torch::Tensor x, data::ImagesToTensor(test, data::IndexRange(begin, end)));
    x = x.to(device);
    torch::Tensor recon = model.Reconstruct(x);
    if (!recon.defined()) {
      reconstructs = false;
      break;
    }
    squared_error += (recon - x).pow(2).sum().item<double>();
    elements += x.numel();
  }
  if (reconstructs && elements > 0) report["reconstruction_mse"] = squared_error / elements;
  return report;
}

}  // namespace dfv::train
