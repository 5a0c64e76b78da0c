// The validated, fully resolved form of a job file. Every field holds a value
// (defaults filled in by the schema); code downstream of ParseJobSpec never
// re-checks ranges. See schema.h for how a JobSpec is produced.
#ifndef DFV_COMMON_JOBSPEC_JOB_SPEC_H_
#define DFV_COMMON_JOBSPEC_JOB_SPEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace dfv::jobspec {

// A value of a section whose fields depend on a choice: the model's
// (model_params, train.loss) or the data set kind's (dataset.params).
using ParamValue = std::variant<int64_t, double, bool, std::string, std::vector<double>>;

// Model- or data-set-specific settings, already validated against the
// model's or kind's schema (catalogue.cc, dataset_catalogue.cc), so lookups
// of declared names cannot fail. Asking for an undeclared name or the
// wrong type is a programming error and aborts.
class ParamMap {
 public:
  void Set(const std::string& name, ParamValue value) { values_[name] = std::move(value); }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  int64_t GetInt(const std::string& name) const;
  double GetDouble(const std::string& name) const;  // ints widen to double
  bool GetBool(const std::string& name) const;
  const std::string& GetString(const std::string& name) const;
  const std::vector<double>& GetDoubleList(const std::string& name) const;
  const std::map<std::string, ParamValue>& values() const { return values_; }
  bool operator==(const ParamMap& other) const { return values_ == other.values_; }

 private:
  std::map<std::string, ParamValue> values_;
};

struct DatasetSpec {
  std::string kind;          // a kind of dataset_catalogue.cc, e.g. fashion_mnist or sprites
  std::string path;          // the data set's folder; empty for a generated kind (sprites)
  int64_t image_size = 28;   // images are resized to image_size x image_size
  int64_t channels = 0;      // 1 or 3; 0 in a job file means "the data set's own"
  int64_t train_limit = 0;   // use only the first N training images (0 = all)
  int64_t test_limit = 0;    // use only the first N test images (0 = all)
  // The kind's own fields (written beside the ones above in the job file's
  // dataset section), exactly those its catalogue entry declares, e.g.
  // sprites: seed, sprites_train, sprites_test.
  ParamMap params;
};

struct TrainSpec {
  int64_t epochs = 1;
  int64_t max_steps = 0;       // stop after this many steps (0 = run all epochs)
  int64_t batch_size = 64;     // global batch, split across ranks
  double lr = 1e-3;
  std::vector<double> betas = {0.9, 0.999};
  uint64_t seed = 1;
  ParamMap loss;               // model-specific loss coefficients
  int64_t threads = 0;         // intra-op threads per rank (0 = the cores it may use / ranks on its host)
  int64_t log_every_steps = 50;  // metrics row cadence
};

struct ResourcesSpec {
  int64_t workers = 1;
  std::string device = "cpu";  // cpu | cuda
  int64_t gpus_per_worker = 0;
  int64_t bucket_mb = 25;                  // all-reduce bucket size (MiB) for workers > 1
  int64_t rendezvous_timeout_seconds = 60;  // all ranks must meet within this
};

struct CheckpointSpec {
  int64_t every_steps = 500;  // 0 = only at the end
  int64_t keep_last = 3;
};

struct SamplesSpec {
  int64_t every_steps = 250;        // 0 = only at the end
  std::vector<std::string> grids;   // subset of the model's grids
  int64_t upscale = 0;              // nearest-neighbour factor of grid PNGs (0 = to >= kAutoGridWidth px wide)
};

// What samples.upscale = 0 aims for: grids at least this many pixels wide.
inline constexpr int kAutoGridWidth = 512;

struct EvaluateSpec {
  std::vector<std::string> classifiers;  // mlp | linear_svm
  bool tsne = false;
  int64_t probe_train_images = 0;  // training images encoded for probes and predictors (0 = all)
  bool predictors = false;         // z -> s and s -> z regressors and regeneration errors
  bool swap = false;               // swap consistency, judged by a CNN trained on the real images
  bool factors = false;            // per-factor probes and MIG (data sets with ground-truth factors)
  int64_t factor_bins = 20;        // histogram bins of codes and factors (MIG, factor probes)
  int64_t judge_epochs = 2;        // training passes of the swap judge
};

// Whether the evaluation looks at the codes (probes, t-SNE, predictors,
// swaps, factors); without any of them a report holds only what every job's
// has (the reconstruction error).
inline bool EvaluatesCodes(const EvaluateSpec& evaluate) {
  return !evaluate.classifiers.empty() || evaluate.tsne || evaluate.predictors || evaluate.swap ||
         evaluate.factors;
}

struct JobSpec {
  std::string name;
  std::string model;
  DatasetSpec dataset;
  ParamMap model_params;
  TrainSpec train;
  ResourcesSpec resources;
  CheckpointSpec checkpoint;
  SamplesSpec samples;
  EvaluateSpec evaluate;
  int64_t priority = 0;
  int64_t max_restarts = 3;
};

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_JOB_SPEC_H_
