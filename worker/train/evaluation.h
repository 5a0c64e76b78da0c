// The evaluation at the end of a run: the test-set reconstruction error, and
// for models with an encoder, how well the class can be predicted from each
// latent code (DESIGN.md, "What a job produces").
#ifndef DFV_WORKER_TRAIN_EVALUATION_H_
#define DFV_WORKER_TRAIN_EVALUATION_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

#include "common/jobspec/job_spec.h"
#include "worker/data/image_set.h"
#include "worker/models/model.h"

namespace dfv::train {

// Runs the evaluation on `data` and returns the report's "evaluation" object:
//   test_images, reconstruction_mse (mean squared error per pixel over the
//   test set; absent for models that cannot reconstruct).
// Model code may throw; the caller catches.
absl::StatusOr<nlohmann::json> Evaluate(models::Model& model, const data::DatasetSplits& data,
                                        const jobspec::EvaluateSpec& spec, torch::Device device);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_EVALUATION_H_
