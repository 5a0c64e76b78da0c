#include "worker/train/evaluation.h"

#include <filesystem>

#include "common/png.h"
#include "common/status_macros.h"
#include "worker/data/random.h"
#include "worker/data/tensor.h"
#include "worker/train/latent_eval.h"

namespace dfv::train {
namespace {

constexpr int64_t kEvalBatch = 500;
// Training images encoded for the latent probes (a seeded sample).
constexpr int64_t kProbeTrainImages = 10000;
// Test codes embedded by t-SNE (exact t-SNE is quadratic in this).
constexpr int64_t kTsnePoints = 2000;

// Runs `fn` over `indices` of `set` in batches; `fn` gets each image batch.
template <typename Fn>
absl::Status ForEachBatch(const data::ImageSet& set, const std::vector<int64_t>& indices,
                          torch::Device device, Fn fn) {
  for (size_t begin = 0; begin < indices.size(); begin += kEvalBatch) {
    const size_t end = std::min(indices.size(), begin + kEvalBatch);
    std::vector<int64_t> chunk(indices.begin() + begin, indices.begin() + end);
    DFV_ASSIGN_OR_RETURN(torch::Tensor x, data::ImagesToTensor(set, chunk));
    fn(x.to(device));
  }
  return absl::OkStatus();
}

// The model's latent codes of `indices`, one [N, D] tensor per code name.
absl::StatusOr<std::map<std::string, torch::Tensor>> EncodeAll(models::Model& model, const data::ImageSet& set,
                                                               const std::vector<int64_t>& indices,
                                                               torch::Device device) {
  std::map<std::string, std::vector<torch::Tensor>> parts;
  DFV_RETURN_IF_ERROR(ForEachBatch(set, indices, device, [&](const torch::Tensor& x) {
    for (auto& [name, code] : model.Encode(x)) parts[name].push_back(code.to(torch::kCPU));
  }));
  std::map<std::string, torch::Tensor> codes;
  for (auto& [name, list] : parts) codes[name] = torch::cat(list, 0);
  return codes;
}

}  // namespace

absl::StatusOr<EvaluationResult> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                          const jobspec::EvaluateSpec& spec, uint64_t seed,
                                          torch::Device device, const std::string& out_dir) {
  torch::NoGradGuard no_grad;
  const data::ImageSet& test = *data.test;
  const data::ImageSet& train = *data.train;
  EvaluationResult result;
  nlohmann::json& report = result.report;
  report["test_images"] = test.size;

  const std::vector<int64_t> all_test = data::IndexRange(0, test.size);
  double squared_error = 0;
  int64_t elements = 0;
  bool reconstructs = true;
  DFV_RETURN_IF_ERROR(ForEachBatch(test, all_test, device, [&](const torch::Tensor& x) {
    if (!reconstructs) return;
    torch::Tensor recon = model.Reconstruct(x);
    if (!recon.defined()) {
      reconstructs = false;
      return;
    }
    squared_error += (recon - x).pow(2).sum().item<double>();
    elements += x.numel();
  }));
  if (reconstructs && elements > 0) report["reconstruction_mse"] = squared_error / elements;

  if (spec.classifiers.empty() && !spec.tsne) return result;

  DFV_ASSIGN_OR_RETURN(auto test_codes, EncodeAll(model, test, all_test, device));
  if (test_codes.empty()) return result;  // no encoder: nothing to probe
  DFV_ASSIGN_OR_RETURN(torch::Tensor test_labels, data::LabelsToTensor(test, all_test));

  if (!spec.classifiers.empty()) {
    std::vector<int64_t> train_idx = data::SeededPermutation(train.size, seed);
    if (static_cast<int64_t>(train_idx.size()) > kProbeTrainImages) train_idx.resize(kProbeTrainImages);
    DFV_ASSIGN_OR_RETURN(auto train_codes, EncodeAll(model, train, train_idx, device));
    DFV_ASSIGN_OR_RETURN(torch::Tensor train_labels, data::LabelsToTensor(train, train_idx));
    ProbeOptions options;
    options.classifiers = spec.classifiers;
    options.seed = seed;
    nlohmann::json latent = nlohmann::json::object();
    for (const auto& [name, codes] : train_codes) {
      DFV_ASSIGN_OR_RETURN(ProbeReport probe, ProbeLatent(codes, train_labels, test_codes[name], test_labels,
                                                          train.num_classes, options));
      latent[name] = ProbeReportToJson(probe);
    }
    report["latent"] = latent;
  }

  if (spec.tsne) {
    const int64_t n = std::min<int64_t>(kTsnePoints, test.size);
    nlohmann::json plots = nlohmann::json::object();
    for (const auto& [name, codes] : test_codes) {
      TsneOptions options;
      options.seed = seed;
      DFV_ASSIGN_OR_RETURN(torch::Tensor points, Tsne(codes.slice(0, 0, n), options));
      const std::string rel = "tsne-" + name + ".png";
      DFV_RETURN_IF_ERROR(WritePngFile((std::filesystem::path(out_dir) / rel).string(),
                                       ScatterPlot(points, test_labels.slice(0, 0, n), test.num_classes)));
      plots[name] = rel;
      result.files.push_back(rel);
    }
    report["tsne"] = plots;
    report["tsne_points"] = n;
  }
  return result;
}

}  // namespace dfv::train
