// Data-parallel equivalence: k steps on 2 ranks with batch B each must give
// the parameters 1 process gets on the concatenated 2B batch (to float
// tolerance), for cycle_vae (two optimisers) and mathieu (three optimisers
// and a discriminator gate fed by a cross-rank mean). Neither model has batch
// norm (their encoders use instance norm, per sample), so no per-rank
// statistics differ. Training noise comes from StepContext, drawn for the
// global batch, so the ranks' noise is the single process's noise.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/dist/dist_test_util.h"
#include "tests/train/test_jobs.h"
#include "worker/data/batch_loader.h"
#include "worker/data/dataset.h"
#include "worker/dist/reducer.h"
#include "worker/models/registry.h"

namespace dfv {
namespace {

constexpr int kSteps = 4;
constexpr int kRankBatch = 8;

std::unique_ptr<models::Model> Build(const jobspec::JobSpec& spec, const data::ImageSet& train) {
  torch::manual_seed(spec.train.seed);
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = train.channels;
  ctx.image_size = train.height;
  ctx.num_classes = train.num_classes;
  ctx.train_size = train.size;
  auto model = models::CreateModel(ctx);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<torch::Tensor> Parameters(models::Model& model) {
  std::vector<torch::Tensor> out;
  for (auto& [name, module] : model.Modules()) {
    for (const torch::Tensor& p : module->parameters()) out.push_back(p);
  }
  return out;
}

std::vector<torch::Tensor> State(models::Model& model) {
  std::vector<torch::Tensor> out = Parameters(model);
  for (auto& [name, module] : model.Modules()) {
    for (const torch::Tensor& b : module->buffers()) out.push_back(b);
  }
  return out;
}

double MaxAbsDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  return worst;
}

std::vector<torch::Tensor> Snapshot(models::Model& model) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : Parameters(model)) out.push_back(p.detach().clone());
  return out;
}

// Adam's first steps are lr * g / (|g| + eps): a gradient at rounding-noise
// level (mathieu's generator gradient through an untrained discriminator is
// ~1e-9 for some weights) becomes a full +-lr step whose sign the rounding
// picks, so two summation orders of the same mean gradient can end 2 lr
// apart. A larger eps keeps such noise small without changing the update of
// any real gradient much; the comparison then measures the reduction.
void RaiseAdamEpsilon(models::Model& model) {
  for (auto& [name, optimizer] : model.Optimizers()) {
    if (dynamic_cast<torch::optim::Adam*>(optimizer) == nullptr) continue;
    for (auto& group : optimizer->param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options()).eps(1e-4);
    }
  }
}

// The first `steps` global batches of `spec` (batch_size = the global batch),
// with the pairs `model` needs.
void GlobalBatches(const jobspec::JobSpec& spec, std::shared_ptr<const data::ImageSet> train,
                   const models::Model& model, std::vector<data::Batch>* batches, int steps = kSteps) {
  data::LoaderOptions options;
  options.batch_size = spec.train.batch_size;
  options.seed = spec.train.seed;
  options.same_class_pair = model.NeedsSameClassPairs();
  options.other_class = model.NeedsOtherClass();
  auto loader = data::BatchLoader::Create(std::move(train), options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  for (int t = 0; t < steps; ++t) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    batches->push_back(*batch);
  }
}

// A replica that starts off different: only the broadcast from rank 0 can
// make it equal again.
void PerturbSoTheBroadcastMatters(models::Model& model) {
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : Parameters(model)) p.add_(0.5);
}

// Rank `rank`'s rows of every tensor of a global batch.
data::Batch Shard(const data::Batch& global, int rank, int world) {
  data::Batch b = global;
  for (torch::Tensor* t : {&b.images, &b.labels, &b.indices, &b.same_images, &b.same_indices, &b.other_images,
                           &b.other_labels, &b.other_indices}) {
    if (!t->defined()) continue;
    const int64_t n = t->size(0) / world;
    *t = t->narrow(0, rank * n, n).clone();
  }
  return b;
}

// Rank `rank` of 2: starts from rank 0's state, then trains a step on its
// half of each global batch through `sync`.
void TrainRank(models::Model& model, step::GradientSync& sync, int rank, uint64_t seed,
               const std::vector<data::Batch>& batches) {
  ASSERT_TRUE(sync.BroadcastFromFirstRank(State(model)).ok());
  step::StepContext ctx(&sync, rank, 2);
  try {
    for (int t = 0; t < static_cast<int>(batches.size()); ++t) {
      ctx.BeginStep(t, seed);
      model.TrainStep(Shard(batches[t], rank, 2), ctx);
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rank " << rank << ": " << e.what();
  }
}

void ExpectTwoRanksMatchOneProcess(const std::string& model_name, double tolerance,
                                   const std::map<std::string, jobspec::ParamValue>& model_params = {},
                                   const std::map<std::string, jobspec::ParamValue>& loss = {},
                                   int steps = kSteps) {
  torch::set_num_threads(1);
  jobspec::JobSpec spec = testing::SmallSpritesJob(model_name, 28, 1);
  spec.train.batch_size = 2 * kRankBatch;
  for (const auto& [name, value] : model_params) spec.model_params.Set(name, value);
  for (const auto& [name, value] : loss) spec.train.loss.Set(name, value);
  auto splits = data::LoadDataset(spec.dataset);
  ASSERT_TRUE(splits.ok()) << splits.status();

  std::unique_ptr<models::Model> single = Build(spec, *splits->train);
  std::unique_ptr<models::Model> rank_models[2] = {Build(spec, *splits->train), Build(spec, *splits->train)};
  std::unique_ptr<models::Model> alone = Build(spec, *splits->train);
  ASSERT_TRUE(single && rank_models[0] && rank_models[1] && alone);
  for (models::Model* m : {single.get(), rank_models[0].get(), rank_models[1].get(), alone.get()}) {
    RaiseAdamEpsilon(*m);
  }
  PerturbSoTheBroadcastMatters(*rank_models[1]);

  std::vector<data::Batch> batches;
  ASSERT_NO_FATAL_FAILURE(GlobalBatches(spec, splits->train, *single, &batches, steps));

  // One process, global batch.
  {
    step::StepContext ctx(nullptr);
    for (int t = 0; t < steps; ++t) {
      ctx.BeginStep(t, spec.train.seed);
      single->TrainStep(batches[t], ctx);
    }
  }
  // Rank 0's half on its own, without averaging: how far apart "not
  // equivalent" is, so the tolerance below means something.
  {
    step::StepContext ctx(nullptr, 0, 2);
    for (int t = 0; t < steps; ++t) {
      ctx.BeginStep(t, spec.train.seed);
      alone->TrainStep(Shard(batches[t], 0, 2), ctx);
    }
  }
  // Two ranks, half the batch each, small buckets so there are several.
  std::vector<torch::Tensor> after[2];
  dist::ReducerStats stats[2];
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::ReducerOptions reducer_options;
    reducer_options.bucket_bytes = 64 << 10;
    dist::GradientReducer reducer(*group.communicator, reducer_options);
    models::Model& model = *rank_models[rank];
    TrainRank(model, reducer, rank, spec.train.seed, batches);
    after[rank] = Snapshot(model);
    stats[rank] = reducer.stats();
  });

  const std::vector<torch::Tensor> reference = Snapshot(*single);
  const double ranks_apart = MaxAbsDiff(after[0], after[1]);
  const double distributed_vs_single = MaxAbsDiff(after[0], reference);
  const double alone_vs_single = MaxAbsDiff(Snapshot(*alone), reference);
  ::testing::Test::RecordProperty("max_abs_diff_vs_single", std::to_string(distributed_vs_single));
  ::testing::Test::RecordProperty("max_abs_diff_one_rank_alone", std::to_string(alone_vs_single));
  std::printf("%s: max |2 ranks - 1 process| = %.3g, ranks apart = %.3g, one rank alone = %.3g; buckets %lld "
              "(%lld started during backward)\n",
              model_name.c_str(), distributed_vs_single, ranks_apart, alone_vs_single,
              static_cast<long long>(stats[0].buckets), static_cast<long long>(stats[0].launched_in_backward));
  EXPECT_EQ(ranks_apart, 0.0) << "the ranks' replicas drifted apart";
  EXPECT_LT(distributed_vs_single, tolerance);
  EXPECT_GT(alone_vs_single, 100 * tolerance) << "the check could not tell a wrong reduction apart";
  EXPECT_GT(stats[0].launched_in_backward, 0);
}

// Two optimisers (auto-encoder, reverse cycle) sharing the encoder. The
// reverse cycle's L1 of two nearly equal encodings has a sign that rounding
// can flip, and Adam turns a flipped sign into a step of about lr, so
// differences grow with steps by chance: with the stock transposed
// convolutions 1.5e-5 after 1 step and still after 4; with oneDNN's
// (worker/models/conv_transpose.h), which round the batch sum in another
// order, 1.0e-5 after 1 step, then 1.4e-4, 9.0e-4 and 1.3e-3 (one rank alone:
// 4.0e-3, 7.3e-3, 1.0e-2, 1.2e-2). So one step, where rounding is all there
// is to see; the ranks still must not drift apart at all.
TEST(DataParallelEquivalenceTest, CycleVaeTwoRanksMatchOneProcessOnTheConcatenatedBatch) {
  ExpectTwoRanksMatchOneProcess("cycle_vae", 3e-5, {}, {}, /*steps=*/1);
}

// One optimiser: exact to float rounding.
TEST(DataParallelEquivalenceTest, VaeTwoRanksMatchOneProcessOnTheConcatenatedBatch) {
  ExpectTwoRanksMatchOneProcess("vae", 1e-5);
}

// Three optimisers (auto-encoder, generator twice, discriminator) and the
// discriminator gate fed by a cross-rank mean. With the adversarial weight 0
// the generator steps on its KL term only. With it on, parameters cannot be
// compared after free-running steps: float32 rounding of the two summation
// orders is amplified until it flips signs in Adam's first discriminator step.
// Measured with no reducer at all (the two halves' gradients averaged in one
// process, g_steps_per_d_step 2, 1 step): gradient relative error 1e-5 after
// the auto-encoder update, 1.2e-5 and then 1.1e-3 after the two generator
// updates (Adam turns a gradient difference dg on a weight whose gradient is
// near eps into a step difference up to lr/eps * dg = 10 dg); fake images
// 5e-5 apart become discriminator pre-activations 5e-3 apart (instance norm
// over first-layer maps of variance ~1e-3), 11 LeakyReLU inputs change sign,
// the discriminator gradient is 0.9% off and 149 of its elements with
// |g| > 1e-4 change sign, so Adam's first step (about lr * sign(g)) puts them
// 2 lr = 2e-3 apart. The same run in float64 ends 6e-14 apart (4 steps: 8e-14),
// so the model code is batch-split equivalent and the drift is conditioning,
// not the reduction. The adversarial test below compares gradients instead.
TEST(DataParallelEquivalenceTest, MathieuTwoRanksMatchOneProcessOnTheConcatenatedBatch) {
  ExpectTwoRanksMatchOneProcess("mathieu", 1e-4, {}, {{"adversarial", 0.0}});
}

// Records the gradients of every Update of a single process (world size 1).
class RecordingSync : public step::GradientSync {
 public:
  absl::Status Synchronize(const std::vector<torch::Tensor>& parameters) override {
    std::vector<torch::Tensor> grads;
    for (const torch::Tensor& p : parameters) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    updates.push_back(std::move(grads));
    return absl::OkStatus();
  }
  absl::Status AverageValues(std::vector<double>& values) override { return absl::OkStatus(); }
  absl::Status BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) override { return absl::OkStatus(); }

  std::vector<std::vector<torch::Tensor>> updates;
};

// ||a - b|| / ||b||, with a zero b compared absolutely.
double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  const double norm = b.norm().item<double>();
  const double diff = (a - b).norm().item<double>();
  return norm > 0 ? diff / norm : diff;
}

// A rank's GradientSync for comparing gradients at the single process's
// parameters: every Update is reduced by the real reducer, the mean gradient
// is compared with the single process's gradient of the same Update (and so
// is this rank's own gradient before reduction, the "one rank alone"
// baseline), and then replaced by it, so the ranks follow the single
// process's trajectory exactly and no rounding difference is amplified.
class TeacherForcingSync : public step::GradientSync {
 public:
  TeacherForcingSync(dist::GradientReducer& reducer, const std::vector<std::vector<torch::Tensor>>& reference)
      : reducer_(reducer), reference_(reference) {}

  absl::Status BeforeBackward(const std::vector<torch::Tensor>& parameters) override {
    return reducer_.BeforeBackward(parameters);
  }
  absl::Status Synchronize(const std::vector<torch::Tensor>& parameters) override {
    // This rank's own gradient: backward ran on loss / 2 (its share of the
    // global loss), so twice what it left is the gradient of its own loss.
    std::vector<torch::Tensor> local;
    for (const torch::Tensor& p : parameters) local.push_back(p.grad().defined() ? 2 * p.grad() : torch::Tensor());
    if (absl::Status reduced = reducer_.Synchronize(parameters); !reduced.ok()) return reduced;
    if (updates_ >= reference_.size()) return absl::InternalError("more updates than the single process made");
    const std::vector<torch::Tensor>& ref = reference_[updates_++];
    if (ref.size() != parameters.size()) return absl::InternalError("a different optimiser than the single process's");
    double worst_reduced = 0, worst_local = 0;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const torch::Tensor& grad = parameters[i].grad();
      if (grad.defined() != ref[i].defined()) return absl::InternalError("gradient defined on one side only");
      if (!grad.defined()) continue;
      worst_reduced = std::max(worst_reduced, RelativeError(grad, ref[i]));
      worst_local = std::max(worst_local, RelativeError(local[i], ref[i]));
      parameters[i].mutable_grad().copy_(ref[i]);
    }
    worst_reduced_ = std::max(worst_reduced_, worst_reduced);
    least_local_ = std::min(least_local_, worst_local);
    return absl::OkStatus();
  }
  absl::Status AverageValues(std::vector<double>& values) override { return reducer_.AverageValues(values); }
  absl::Status BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) override {
    return reducer_.BroadcastFromFirstRank(std::move(tensors));
  }

  size_t updates() const { return updates_; }
  // Worst relative error of a reduced gradient tensor over all updates.
  double worst_reduced() const { return worst_reduced_; }
  // Over updates, the least of each update's worst relative error of this
  // rank's own (unreduced) gradient: every update alone is at least this far.
  double least_local() const { return least_local_; }

 private:
  dist::GradientReducer& reducer_;
  const std::vector<std::vector<torch::Tensor>>& reference_;
  size_t updates_ = 0;
  double worst_reduced_ = 0;
  double least_local_ = std::numeric_limits<double>::infinity();
};

// Mathieu with its default adversarial weight and g_steps_per_d_step 2: the
// reduced gradient of every Update (4 steps x auto-encoder, 2 generator and
// discriminator updates, the gate deciding from the cross-rank accuracy
// mean) equals the single process's gradient on the concatenated batch at
// the same parameters, to float32 summation-order rounding (measured: worst
// tensor 1.6e-5 relative, the 1-element bias of the decoder's last layer;
// 1e-5 for weights). A rank's own gradient is at least 100x further off at
// every update, so a missing or wrong reduction of any update fails.
TEST(DataParallelEquivalenceTest, MathieuAdversarialGradientsOfTwoRanksMatchOneProcessAtEveryUpdate) {
  constexpr double kTolerance = 1e-4;
  torch::set_num_threads(1);
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", 28, 1);
  spec.train.batch_size = 2 * kRankBatch;
  auto splits = data::LoadDataset(spec.dataset);
  ASSERT_TRUE(splits.ok()) << splits.status();

  std::unique_ptr<models::Model> single = Build(spec, *splits->train);
  std::unique_ptr<models::Model> rank_models[2] = {Build(spec, *splits->train), Build(spec, *splits->train)};
  ASSERT_TRUE(single && rank_models[0] && rank_models[1]);
  for (models::Model* m : {single.get(), rank_models[0].get(), rank_models[1].get()}) RaiseAdamEpsilon(*m);
  PerturbSoTheBroadcastMatters(*rank_models[1]);

  std::vector<data::Batch> batches;
  ASSERT_NO_FATAL_FAILURE(GlobalBatches(spec, splits->train, *single, &batches));

  RecordingSync recording;
  {
    step::StepContext ctx(&recording, 0, 1);
    for (int t = 0; t < kSteps; ++t) {
      ctx.BeginStep(t, spec.train.seed);
      single->TrainStep(batches[t], ctx);
    }
  }
  // Auto-encoder, 2 generator and 1 discriminator update per step (the
  // untrained discriminator stays below the gate's accuracy limit).
  ASSERT_EQ(recording.updates.size(), static_cast<size_t>(4 * kSteps));

  std::vector<torch::Tensor> after[2];
  size_t updates[2] = {0, 0};
  double worst_reduced[2] = {0, 0}, least_local[2] = {0, 0};
  dist::ReducerStats stats[2];
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::ReducerOptions reducer_options;
    reducer_options.bucket_bytes = 64 << 10;
    dist::GradientReducer reducer(*group.communicator, reducer_options);
    TeacherForcingSync sync(reducer, recording.updates);
    models::Model& model = *rank_models[rank];
    TrainRank(model, sync, rank, spec.train.seed, batches);
    after[rank] = Snapshot(model);
    updates[rank] = sync.updates();
    worst_reduced[rank] = sync.worst_reduced();
    least_local[rank] = sync.least_local();
    stats[rank] = reducer.stats();
  });

  const double worst = std::max(worst_reduced[0], worst_reduced[1]);
  const double alone = std::min(least_local[0], least_local[1]);
  ::testing::Test::RecordProperty("worst_relative_gradient_error", std::to_string(worst));
  ::testing::Test::RecordProperty("least_relative_gradient_error_one_rank_alone", std::to_string(alone));
  std::printf("mathieu (adversarial): worst relative error of a reduced gradient = %.3g over %zu updates, one rank "
              "alone >= %.3g at every update; buckets %lld (%lld started during backward)\n",
              worst, updates[0], alone, static_cast<long long>(stats[0].buckets),
              static_cast<long long>(stats[0].launched_in_backward));
  EXPECT_EQ(updates[0], recording.updates.size());
  EXPECT_EQ(updates[1], recording.updates.size());
  EXPECT_LT(worst, kTolerance);
  EXPECT_GT(alone, 100 * kTolerance) << "the check could not tell a missing reduction apart";
  // The gradients were compared at the single process's parameters.
  EXPECT_EQ(MaxAbsDiff(after[0], Snapshot(*single)), 0.0);
  EXPECT_EQ(MaxAbsDiff(after[1], Snapshot(*single)), 0.0);
  EXPECT_GT(stats[0].launched_in_backward, 0);
}

}  // namespace
}  // namespace dfv
