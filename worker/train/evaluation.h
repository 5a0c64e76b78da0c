// The evaluation at the end of a run (DESIGN.md, "What a job produces";
// issue 16): the test-set reconstruction error and, as the job's evaluate
// section asks, for models with an encoder:
//   - how well the class can be predicted from each latent code (MLP and
//     linear SVM probes), beside chance;
//   - predictors z -> s and s -> z and the regeneration error of decoding
//     with a predicted code (models with separate s and z);
//   - swap consistency, judged by a CNN trained on the real images;
//   - on data sets with ground-truth factors (sprites), how well s and z
//     predict each factor, and the mutual information gap;
//   - t-SNE plots with a title and a legend.
// Parts that do not apply to a model or data set say so in the report (a
// string starting "not applicable") instead of a number.
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

// The prefix of every report value that stands for a part that does not
// apply ("not applicable: lord has ..."); dfvctl report shows it as is.
inline constexpr char kNotApplicable[] = "not applicable";
// The code name of one draw from the posterior over z (see latent below).
inline constexpr char kSampledZ[] = "z_sampled";

struct EvaluationResult {
  // The report's "evaluation" object:
  //   test_images
  //   reconstruction_mse: mean squared error per pixel over the test set
  //     (absent for models that cannot reconstruct)
  //   latent: {"s": probe, "z": probe} when evaluate.classifiers is set, each
  //     probe as ProbeReportToJson (accuracy and macro-F1, train and test,
  //     and the chance levels of the test labels); z is the posterior's mean,
  //     and models with a posterior over z also get kSampledZ: the probes
  //     on one draw z = mean + exp(logvar / 2) * eps per image
  //   predictors (evaluate.predictors): {"z_to_s": p, "s_to_z": p}, each p as
  //     CodePredictionToJson plus "regeneration_mse" (per pixel, between
  //     decode(s, z) and the decoding with the predicted code)
  //   swap (evaluate.swap): {"pairs", "b_class_rate", "a_class_rate",
  //     "chance", "judge": JudgeScoresToJson, and on data sets with factors
  //     "z_factors_kept": {factor: rate}, "z_factor_chance": 0.5}
  //   factors (evaluate.factors): {"bins", "s_factors", "z_factors",
  //     "probes": {"s": {factor: {"test_accuracy", "chance"}}, "z": ...},
  //     "mig": MigResultToJson over the joint code [s, z]}
  //   tsne: {"s": "tsne-s.png", ...} when evaluate.tsne is set, tsne_points
  // predictors, swap and factors are a kNotApplicable string when the model
  // (no separate s and z) or the data set (no factors) cannot have them.
  nlohmann::json report;
  // Files written under the run folder (relative paths).
  std::vector<std::string> files;
};

// Runs the evaluation `job.evaluate` asks for. `out_dir` receives the t-SNE
// plots. Reseeds the global torch generator from job.train.seed (the probes
// do), so call it after training only. Model code may throw; the caller
// catches.
absl::StatusOr<EvaluationResult> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                          const jobspec::JobSpec& job, torch::Device device,
                                          const std::string& out_dir);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_EVALUATION_H_
