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
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/batch_loader.h"

namespace dfv::models {

// Named scalar results of one iteration (loss terms, accuracies), in the
// order a model wants them shown.
using Metrics = std::vector<std::pair<std::string, double>>;

// Everything a training step needs from the other ranks. The single-process
// trainer has none; the distributed trainer plugs its all-reduce in here
// (worker/dist/reducer.h). Methods throw CollectiveError when a collective
// fails (a peer died, a timeout); the driver turns that into its status.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Called just before backward with the parameters one optimiser owns, so
  // gradients can be reduced while backward is still producing the rest.
  virtual void BeforeBackward(const std::vector<torch::Tensor>& parameters) {}
  // Called between backward and step with the same parameters: on return
  // every defined gradient among them is the sum over all ranks. Update
  // divides each rank's loss by the world size before backward, so that sum
  // is the mean gradient of the global batch. Gradients are zeroed in place
  // before backward (an implementation may keep them in its own buffers).
  virtual void Synchronize(const std::vector<torch::Tensor>& parameters) = 0;
  // Replaces each value by its mean over all ranks.
  virtual void AverageValues(std::vector<double>& values) = 0;
  // Copies rank 0's values of `tensors` into every rank's tensors in place
  // (parameters and buffers, once before training).
  virtual void BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) = 0;
  // Seconds this rank spent blocked on gradient all-reduces since the last
  // call (communication backward did not hide).
  virtual double TakeBlockedSeconds() { return 0; }
};

// A failed collective, thrown through model code (which is LibTorch code and
// throws anyway) and caught by the driver, which returns `status`.
class CollectiveError : public std::runtime_error {
 public:
  explicit CollectiveError(absl::Status status)
      : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// What a model uses to apply an update and to draw its training noise;
// passed to every TrainStep.
class StepContext {
 public:
  // `rank` of `world_size` ranks, each holding `n` items of a global batch of
  // n * world_size; a single process is rank 0 of 1.
  explicit StepContext(GradientSync* sync, int rank = 0, int world_size = 1);

  // The one way a model updates parameters: zero `optimizer`'s gradients, run
  // backward on `loss` (divided by the world size: this rank's share of the
  // global batch's loss), sum those gradients across ranks, step.
  void Update(const torch::Tensor& loss, torch::optim::Optimizer& optimizer);

  // Called by the driver before each step: sets `step` and reseeds the noise
  // generator from (seed, step), identically on every rank.
  void BeginStep(int64_t global_step, uint64_t seed);

  // Training noise for this rank's `n` items: this rank's rows of one draw
  // for the whole global batch, made identically on every rank. So what a
  // step draws does not depend on how many ranks share its batch, and N ranks
  // train exactly as one process on the concatenated batch would.
  // N(0, 1) of shape [n, item_shape...].
  torch::Tensor Normal(int64_t n, const std::vector<int64_t>& item_shape, torch::Device device);
  // N(0, 1) shaped like `like` (whose first dimension is the items).
  torch::Tensor NormalLike(const torch::Tensor& like);
  // Uniform integers in [0, high), one per item: [n] int64.
  torch::Tensor RandInt(int64_t high, int64_t n, torch::Device device);

  // Means of `values` over all ranks (the values themselves in one process).
  std::vector<double> MeanAcrossRanks(std::vector<double> values);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Global step of the iteration being run (0-based).
  int64_t step = 0;

 private:
  GradientSync* sync_;
  int rank_;
  int world_size_;
  torch::Generator generator_;
};

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
  // (specified) and/or "z" (unspecified), each [N, D]. Empty when the model
  // has no encoder. Called in eval mode under NoGrad.
  virtual std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) { return {}; }
};

// Builds the model `context.spec->model`. INVALID_ARGUMENT for a name the
// catalogue does not know (the job schema rejects those first).
using ModelFactory = std::function<std::unique_ptr<Model>(const ModelContext&)>;

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_MODEL_H_
