// The model interface every catalogue entry implements, and what the training
// driver hands a model. A model owns its modules, its optimisers, the updates
// of one iteration, its grids and the tensors that reconstruct test images;
// the driver (worker/train) owns everything else: steps, epochs, seeding,
// metrics, grids on disk, checkpoints and evaluation.
//
// Models are LibTorch code and may throw c10::Error / std::exception from any
// method; the driver is the adapter that catches and turns that into a Status.
#ifndef DFV_WORKER_MODELS_MODEL_H_
#define DFV_WORKER_MODELS_MODEL_H_

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/jobspec/catalogue.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/batch_loader.h"
#include "worker/step/step_context.h"

namespace dfv::models {

// Named scalar results of one iteration (loss terms, accuracies), in the
// order a model wants them shown.
using Metrics = std::vector<std::pair<std::string, double>>;

// What every TrainStep gets (worker/step/step_context.h): updates, training
// noise, means across ranks.
using step::StepContext;

// Adam with the job's train.lr and train.betas: the optimiser most models use.
torch::optim::AdamOptions AdamFrom(const jobspec::TrainSpec& train);

// `a` followed by `b`: one optimiser over several modules' parameters.
std::vector<torch::Tensor> ConcatParameters(std::vector<torch::Tensor> a, const std::vector<torch::Tensor>& b);

// What the driver knows when it builds a model.
struct ModelContext {
  const jobspec::JobSpec* spec = nullptr;
  int64_t channels = 1;      // image channels after the data set's conversion
  int64_t image_size = 28;   // images are image_size x image_size
  int64_t num_classes = 10;  // classes of the specified factor
  int64_t train_size = 0;    // training images (per-sample codes need it)
  torch::Device device = torch::kCPU;
};

// The catalogue entry of context.spec->model (common/jobspec/catalogue.h):
// its grids and the metrics it reports. The job schema accepts only
// catalogued models; throws (c10::Error) for another name.
const jobspec::ModelInfo& CatalogueEntry(const ModelContext& context);

// Inputs the driver gives RenderGrid: a fixed set of test images (the same at
// every call, so grids are comparable across steps) and a seeded generator
// for any noise a grid draws.
struct GridInputs {
  torch::Tensor images;  // [N, C, H, W] in [0, 1], N >= 32, classes mixed
  torch::Tensor labels;  // [N] int64
  uint64_t noise_seed = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  // The batch fields TrainStep reads beyond images and labels.
  virtual bool NeedsSameClassPairs() const { return false; }
  virtual bool NeedsOtherClass() const { return false; }

  // One training iteration. Returns the metrics to log for it.
  virtual Metrics TrainStep(const data::Batch& batch, StepContext& ctx) = 0;

  // Every module and optimiser, named; the driver derives checkpoints,
  // train/eval mode, parameter broadcast and counts from these.
  virtual std::vector<std::pair<std::string, torch::nn::Module*>> Modules() = 0;
  virtual std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() = 0;

  // Renders grid `name` (one of the model's grids in the catalogue) as an
  // image [C, H, W] with values in [0, 1]. Called in eval mode under NoGrad.
  virtual torch::Tensor RenderGrid(const std::string& name, const GridInputs& inputs) = 0;

  // Reconstructions of `images` ([N, C, H, W] in [0, 1]) for the test-set
  // reconstruction error; models that cannot reconstruct return an undefined
  // tensor. Called in eval mode under NoGrad.
  virtual torch::Tensor Reconstruct(const torch::Tensor& images) { return {}; }

  // The latent codes of `images` for the evaluation's classifiers: "s"
  // (specified) and/or "z" (unspecified), each [N, D]; z is the posterior's
  // mean where the model has a posterior, whose log-variance then comes as
  // kZLogVariance (not probed itself: the evaluation draws a sampled z from
  // it). Empty when the model has no encoder. Called in eval mode under
  // NoGrad.
  virtual std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) { return {}; }
  static constexpr char kZLogVariance[] = "z_logvar";

  // Images [N, C, H, W] in [0, 1] decoded from a specified code `s` and an
  // unspecified code `z` as Encode gives them ([N, Ds] and [N, Dz]); the
  // evaluation's regeneration errors and swaps use it. Models without both
  // codes return an undefined tensor. Called in eval mode under NoGrad.
  virtual torch::Tensor Decode(const torch::Tensor& s, const torch::Tensor& z) { return {}; }
};

// Builds the model `context.spec->model`. INVALID_ARGUMENT for a name the
// catalogue does not know (the job schema rejects those first).
using ModelFactory = std::function<std::unique_ptr<Model>(const ModelContext&)>;

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_MODEL_H_
