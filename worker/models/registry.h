// The model catalogue: maps a job's `model` name to the code that builds it.
// Adding a model = one new file pair, one line in registry.cc, and its entry
// in the job schema's catalogue (common/jobspec/catalogue.cc).
#ifndef DFV_WORKER_MODELS_REGISTRY_H_
#define DFV_WORKER_MODELS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model.h"

namespace dfv::models {

// Builds the model named by context.spec->model. INVALID_ARGUMENT for an
// unknown name; INTERNAL when LibTorch fails while building it.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelContext& context);

// Names of every registered model.
std::vector<std::string> RegisteredModels();

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_REGISTRY_H_
