// The model catalogue of the job file: for each model the job schema accepts,
// the schema of its `model_params` and `train.loss` sections, its defaults for
// some `train` fields, and the sample grids it can draw. Data only (no
// LibTorch), so the coordinator can validate jobs without linking models.
//
// Adding a model = one entry in catalogue.cc (plus its code under
// worker/models/, registered in worker/models/registry.cc);
// tests/models/catalogue_test fails until the registry, the grids and the
// metrics agree with the entry.
#ifndef DFV_COMMON_JOBSPEC_CATALOGUE_H_
#define DFV_COMMON_JOBSPEC_CATALOGUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/jobspec/schema.h"

namespace dfv::jobspec {

// The names of the sample grids: one home for the catalogue (which grids a
// model draws) and the models (which grid RenderGrid is asked for).
namespace grid {
inline constexpr char kReconstruction[] = "reconstruction";
inline constexpr char kRandom[] = "random";
inline constexpr char kSwap[] = "swap";
inline constexpr char kInterpolation[] = "interpolation";
inline constexpr char kPairs[] = "pairs";
inline constexpr char kCategorical[] = "categorical";
inline constexpr char kRandomClass[] = "random_class";
inline constexpr char kNoise[] = "noise";
}  // namespace grid

// Per-model defaults for general `train` fields.
struct TrainDefaults {
  double lr = 1e-3;
  std::vector<double> betas = {0.9, 0.999};
  int64_t batch_size = 64;
};

struct ModelInfo {
  std::string name;                 // the job file's `model` value
  std::string source;               // where the model comes from, e.g. "seed 001"
  std::string summary;              // one line for the documentation
  std::vector<FieldSchema> params;  // the fields of `model_params`
  std::vector<FieldSchema> loss;    // the fields of `train.loss` (coefficients)
  TrainDefaults train;              // defaults for train.lr, train.betas, train.batch_size
  std::vector<std::string> grids;   // allowed `samples.grids`; all of them by default
  // The metrics the model's TrainStep reports, in its order (the trainer
  // adds step_time_seconds, samples_per_second and, with several ranks, the
  // all-reduce figures). tests/models/catalogue_test checks them.
  std::vector<std::string> metrics;
};

// Every model, in documentation order. Built once; thread-safe.
const std::vector<ModelInfo>& ModelCatalogue();

// The entry for `name`, or nullptr when there is no such model.
const ModelInfo* FindModel(std::string_view name);

// The names of every model, in catalogue order.
std::vector<std::string> ModelNames();

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_CATALOGUE_H_
