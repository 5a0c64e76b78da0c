// The evaluation at the end of a run: the test-set reconstruction error, and
// for models with an encoder, how well the class can be predicted from each
// latent code, with t-SNE plots (DESIGN.md, "What a job produces").
#ifndef DFV_WORKER_TRAIN_EVALUATION_H_
#define DFV_WORKER_TRAIN_EVALUATION_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/image_set.h"
#include "worker/models/model.h"

namespace dfv::train {

struct EvaluationResult {
  // The report's "evaluation" object:
  //   test_images
  //   reconstruction_mse: mean squared error per pixel over the test set
  //     (absent for models that cannot reconstruct)
  //   latent: {"s": probe, "z": probe} when evaluate.classifiers is set, each
  //     probe as ProbeReportToJson (accuracy and macro-F1, train and test)
  //   tsne: {"s": "tsne-s.png", ...} when evaluate.tsne is set
  nlohmann::json report;
  // Files written under the run folder (relative paths).
  std::vector<std::string> files;
};

// Runs the evaluation. `out_dir` receives the t-SNE plots. Reseeds the global
// torch generator (the latent probes do), so call it after training only.
// Model code may throw; the caller catches.
absl::StatusOr<EvaluationResult> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                          const jobspec::EvaluateSpec& spec, uint64_t seed,
                                          torch::Device device, const std::string& out_dir);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_EVALUATION_H_
