#include "worker/train/evaluation.h"

#include <chrono>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "common/png.h"
#include "common/status_macros.h"
#include "worker/data/random.h"
#include "worker/data/tensor.h"
#include "worker/train/disentanglement.h"
#include "worker/train/image_judge.h"
#include "worker/train/latent_eval.h"

namespace dfv::train {
namespace {

constexpr int64_t kEvalBatch = 500;
// Test codes embedded by t-SNE (exact t-SNE is quadratic in this).
constexpr int64_t kTsnePoints = 2000;
// Training codes MIG is computed over (disentanglement_lib's mig num_train).
constexpr int64_t kMigSamples = 10000;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

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

// Replaces the posterior's log-variance (Model::kZLogVariance) among `codes`
// by one draw per image, z + exp(logvar / 2) * eps (kSampledZ), with eps from
// its own generator seeded by `seed`: the probes then also say what a code
// drawn as in training tells, not only its mean (a tiny mean can still be
// read by a probe that normalises its inputs, while the noise drowns it).
void ReplaceLogVarianceWithSample(std::map<std::string, torch::Tensor>& codes, uint64_t seed) {
  auto logvar = codes.find(models::Model::kZLogVariance);
  if (logvar == codes.end()) return;
  const torch::Tensor& z = codes.at("z");
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const torch::Tensor eps = at::randn(z.sizes(), generator, z.options());
  codes[kSampledZ] = z + torch::exp(0.5 * logvar->second) * eps;
  codes.erase(logvar);
}

// Mean squared difference per pixel between decode(s1, z1) and
// decode(s2, z2) (all [N, D] on the CPU), decoded in batches on `device`.
double DecodedMse(models::Model& model, const torch::Tensor& s1, const torch::Tensor& z1, const torch::Tensor& s2,
                  const torch::Tensor& z2, torch::Device device) {
  double sum = 0;
  int64_t elements = 0;
  for (int64_t begin = 0; begin < s1.size(0); begin += kEvalBatch) {
    const int64_t end = std::min(s1.size(0), begin + kEvalBatch);
    auto part = [&](const torch::Tensor& t) { return t.slice(0, begin, end).to(device); };
    const torch::Tensor a = model.Decode(part(s1), part(z1));
    const torch::Tensor b = model.Decode(part(s2), part(z2));
    sum += (a - b).pow(2).sum().item<double>();
    elements += a.numel();
  }
  return elements > 0 ? sum / static_cast<double>(elements) : 0.0;
}

// The factor columns that the class determines (constant within every
// class of `set`): the specified factors; the others are unspecified.
std::vector<bool> ClassDeterminedFactors(const data::ImageSet& set) {
  const int64_t k = set.NumFactors();
  std::vector<bool> determined(k, true);
  std::vector<std::vector<float>> first(set.num_classes);
  for (int64_t i = 0; i < set.size; ++i) {
    const float* row = &set.factors[i * k];
    std::vector<float>& seen = first[set.labels[i]];
    if (seen.empty()) {
      seen.assign(row, row + k);
      continue;
    }
    for (int64_t f = 0; f < k; ++f) determined[f] = determined[f] && seen[f] == row[f];
  }
  return determined;
}

// The factors of the training and test images as class ids per column:
// discretised together (same bin edges for both) and renumbered 0..k-1.
// Returns {train [N, K], test [M, K], distinct values per column}.
struct DiscreteFactors {
  torch::Tensor train, test;
  std::vector<int64_t> classes;
};
absl::StatusOr<DiscreteFactors> DiscretiseFactors(const data::ImageSet& train, const std::vector<int64_t>& train_idx,
                                                  const data::ImageSet& test, int64_t bins) {
  DFV_ASSIGN_OR_RETURN(torch::Tensor ftrain, data::FactorsToTensor(train, train_idx));
  DFV_ASSIGN_OR_RETURN(torch::Tensor ftest, data::FactorsToTensor(test, data::IndexRange(0, test.size)));
  DFV_ASSIGN_OR_RETURN(torch::Tensor bins_all, HistogramDiscretise(torch::cat({ftrain, ftest}), bins));
  DiscreteFactors out;
  std::vector<torch::Tensor> columns;
  for (int64_t k = 0; k < bins_all.size(1); ++k) {
    auto [values, inverse] = at::_unique(bins_all.select(1, k), /*sorted=*/true, /*return_inverse=*/true);
    out.classes.push_back(values.numel());
    columns.push_back(inverse);
  }
  const torch::Tensor all = torch::stack(columns, 1);
  out.train = all.slice(0, 0, ftrain.size(0));
  out.test = all.slice(0, ftrain.size(0));
  return out;
}

std::string ModelHasNoSplit(const std::string& model) {
  return absl::StrCat(kNotApplicable, ": ", model, " has no separate s and z codes");
}

}  // namespace

absl::StatusOr<EvaluationResult> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                          const jobspec::JobSpec& job, torch::Device device,
                                          const std::string& out_dir) {
  torch::NoGradGuard no_grad;
  const jobspec::EvaluateSpec& spec = job.evaluate;
  const uint64_t seed = job.train.seed;
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

  const bool wants_train_codes = !spec.classifiers.empty() || spec.predictors || spec.factors;
  if (!jobspec::EvaluatesCodes(spec)) return result;

  DFV_ASSIGN_OR_RETURN(auto test_codes, EncodeAll(model, test, all_test, device));
  if (test_codes.empty()) return result;  // no encoder: nothing to probe
  ReplaceLogVarianceWithSample(test_codes, data::MixSeed({seed, 0x7e57}));
  DFV_ASSIGN_OR_RETURN(torch::Tensor test_labels, data::LabelsToTensor(test, all_test));
  const bool split = test_codes.count("s") > 0 && test_codes.count("z") > 0 &&
                     model.Decode(test_codes["s"].slice(0, 0, 1).to(device),
                                  test_codes["z"].slice(0, 0, 1).to(device)).defined();

  std::vector<int64_t> train_idx;
  std::map<std::string, torch::Tensor> train_codes;
  if (wants_train_codes) {
    train_idx = data::SeededPermutation(train.size, seed);
    if (spec.probe_train_images > 0 && static_cast<int64_t>(train_idx.size()) > spec.probe_train_images) {
      train_idx.resize(spec.probe_train_images);
    }
    DFV_ASSIGN_OR_RETURN(train_codes, EncodeAll(model, train, train_idx, device));
    ReplaceLogVarianceWithSample(train_codes, data::MixSeed({seed, 0x7a1}));
  }

  if (!spec.classifiers.empty()) {
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

  if (spec.predictors) {
    if (!split) {
      report["predictors"] = ModelHasNoSplit(job.model);
    } else {
      RegressorOptions options;
      options.seed = seed;
      const torch::Tensor &s = test_codes["s"], &z = test_codes["z"];
      DFV_ASSIGN_OR_RETURN(CodePrediction z_to_s, PredictCode(train_codes["z"], train_codes["s"], z, s, options));
      DFV_ASSIGN_OR_RETURN(CodePrediction s_to_z, PredictCode(train_codes["s"], train_codes["z"], s, z, options));
      nlohmann::json predictors;
      predictors["z_to_s"] = CodePredictionToJson(z_to_s);
      predictors["z_to_s"]["regeneration_mse"] = DecodedMse(model, s, z, z_to_s.test_predictions, z, device);
      predictors["s_to_z"] = CodePredictionToJson(s_to_z);
      predictors["s_to_z"]["regeneration_mse"] = DecodedMse(model, s, z, s, s_to_z.test_predictions, device);
      report["predictors"] = predictors;
    }
  }

  const bool has_factors = train.NumFactors() > 0 && test.NumFactors() == train.NumFactors();
  const std::vector<bool> class_determined = has_factors ? ClassDeterminedFactors(train) : std::vector<bool>{};
  std::vector<std::string> s_factors, z_factors;
  std::vector<int64_t> z_factor_columns;
  for (size_t f = 0; f < class_determined.size(); ++f) {
    if (class_determined[f]) {
      s_factors.push_back(train.factor_names[f]);
    } else {
      z_factors.push_back(train.factor_names[f]);
      z_factor_columns.push_back(f);
    }
  }

  if (spec.swap) {
    if (!split) {
      report["swap"] = ModelHasNoSplit(job.model);
    } else {
      const auto start = std::chrono::steady_clock::now();
      JudgeOptions options;
      options.seed = seed;
      options.epochs = spec.judge_epochs;
      DFV_ASSIGN_OR_RETURN(std::unique_ptr<ImageJudge> judge,
                           ImageJudge::Train(train, z_factor_columns, options, device));
      DFV_ASSIGN_OR_RETURN(JudgeScores judge_scores, judge->Score(test));
      torch::Tensor factor_values;
      if (!z_factor_columns.empty()) {
        DFV_ASSIGN_OR_RETURN(torch::Tensor all, data::FactorsToTensor(test, all_test));
        factor_values = all.index_select(1, torch::tensor(z_factor_columns, torch::kLong));
      }
      const auto pairs = DifferentClassPairs(test_labels, test.size, data::MixSeed({seed, 0x5a9}));
      DFV_ASSIGN_OR_RETURN(
          SwapScores swap,
          SwapConsistency(
              test_codes["s"], test_codes["z"], test_labels, pairs,
              [&](const torch::Tensor& s, const torch::Tensor& z) { return model.Decode(s.to(device), z.to(device)); },
              [&](const torch::Tensor& images) { return judge->Judge(images); }, train.num_classes, factor_values));
      nlohmann::json j;
      j["pairs"] = swap.pairs;
      j["b_class_rate"] = swap.b_class_rate;
      j["a_class_rate"] = swap.a_class_rate;
      j["chance"] = swap.chance;
      j["judge"] = JudgeScoresToJson(judge_scores, z_factors);
      if (!swap.factor_kept_rates.empty()) {
        nlohmann::json kept = nlohmann::json::object();
        for (size_t f = 0; f < swap.factor_kept_rates.size(); ++f) kept[z_factors[f]] = swap.factor_kept_rates[f];
        j["z_factors_kept"] = kept;
        j["z_factor_chance"] = 0.5;
      }
      j["seconds"] = SecondsSince(start);
      report["swap"] = j;
    }
  }

  if (spec.factors) {
    if (!has_factors) {
      report["factors"] = absl::StrCat(kNotApplicable, ": ", job.dataset.kind, " has no ground-truth factors");
    } else if (!split) {
      report["factors"] = ModelHasNoSplit(job.model);
    } else {
      const auto start = std::chrono::steady_clock::now();
      DFV_ASSIGN_OR_RETURN(DiscreteFactors discrete, DiscretiseFactors(train, train_idx, test, spec.factor_bins));
      nlohmann::json j;
      j["bins"] = spec.factor_bins;
      j["s_factors"] = s_factors;
      j["z_factors"] = z_factors;
      ProbeOptions options;
      options.classifiers = {kMlpProbe};
      options.seed = seed;
      nlohmann::json probes;
      for (const char* code : {"s", "z"}) {
        for (int64_t f = 0; f < train.NumFactors(); ++f) {
          const std::string& factor = train.factor_names[f];
          if (discrete.classes[f] < 2) {
            probes[code][factor] = absl::StrCat(kNotApplicable, ": ", factor, " is constant");
            continue;
          }
          DFV_ASSIGN_OR_RETURN(ProbeReport probe,
                               ProbeLatent(train_codes[code], discrete.train.select(1, f), test_codes[code],
                                           discrete.test.select(1, f), discrete.classes[f], options));
          probes[code][factor] = {{"test_accuracy", probe.scores.at(kMlpProbe).test_accuracy},
                                  {"chance", {{"majority", probe.chance.majority}, {"uniform", probe.chance.uniform}}},
                                  {"classes", discrete.classes[f]}};
        }
      }
      j["probes"] = probes;
      const int64_t m = std::min<int64_t>(kMigSamples, static_cast<int64_t>(train_idx.size()));
      const torch::Tensor joint =
          torch::cat({train_codes["s"].slice(0, 0, m), train_codes["z"].slice(0, 0, m)}, 1);
      DFV_ASSIGN_OR_RETURN(MigResult mig, MutualInformationGap(joint, discrete.train.slice(0, 0, m), spec.factor_bins));
      j["mig"] = MigResultToJson(mig, train.factor_names, spec.factor_bins);
      j["mig"]["code"] = absl::StrCat("s (dimensions 0-", train_codes["s"].size(1) - 1, ") then z");
      j["seconds"] = SecondsSince(start);
      report["factors"] = j;
    }
  }

  if (spec.tsne) {
    const int64_t n = std::min<int64_t>(kTsnePoints, test.size);
    nlohmann::json plots = nlohmann::json::object();
    for (const auto& [name, codes] : test_codes) {
      if (name == kSampledZ) continue;  // the mean's plot shows the structure
      TsneOptions options;
      options.seed = seed;
      DFV_ASSIGN_OR_RETURN(torch::Tensor points, Tsne(codes.slice(0, 0, n), options));
      PlotLabels labels;
      labels.title = absl::StrCat("t-SNE of ", name, ": ", job.model, ", ", job.dataset.kind, ", ", n, " test images");
      labels.class_names = test.class_names;
      const std::string rel = "tsne-" + name + ".png";
      DFV_RETURN_IF_ERROR(WritePngFile((std::filesystem::path(out_dir) / rel).string(),
                                       ScatterPlot(points, test_labels.slice(0, 0, n), test.num_classes, 512, labels)));
      plots[name] = rel;
      result.files.push_back(rel);
    }
    report["tsne"] = plots;
    report["tsne_points"] = n;
  }
  return result;
}

}  // namespace dfv::train
