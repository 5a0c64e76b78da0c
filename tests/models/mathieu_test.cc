// `mathieu`: shapes at 28x28 grey and 64x64 colour, loss falling through the
// real driver, checkpoint round trip, grids as PNG, and the two stabilising
// tricks of seed 004 (the discriminator's accuracy gate and the G:D ratio).
#include "worker/models/mathieu.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/models/grid_check.h"
#include "tests/train/test_jobs.h"
#include "worker/data/batch_loader.h"
#include "worker/data/dataset.h"
#include "worker/models/registry.h"
#include "worker/train/checkpoint.h"
#include "worker/train/trainer.h"

namespace dfv {
namespace {

// A mathieu model for `spec` (a small sprites job).
std::unique_ptr<models::Model> Build(const jobspec::JobSpec& spec, int channels, int size, int classes = 30) {
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = channels;
  ctx.image_size = size;
  ctx.num_classes = classes;
  ctx.train_size = 512;
  auto model = models::CreateModel(ctx);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

models::MathieuControls& Controls(models::Model& model) {
  auto* controls = dynamic_cast<models::MathieuControls*>(&model);
  EXPECT_NE(controls, nullptr);
  return *controls;
}

// Batches of the spec's sprites training set with the pairs mathieu needs.
std::unique_ptr<data::BatchLoader> SpritesLoader(const jobspec::JobSpec& spec) {
  auto splits = data::LoadDataset(spec.dataset);
  EXPECT_TRUE(splits.ok()) << splits.status();
  data::LoaderOptions options;
  options.batch_size = spec.train.batch_size;
  options.seed = spec.train.seed;
  options.same_class_pair = true;
  options.other_class = true;
  auto loader = data::BatchLoader::Create(splits->train, options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return std::move(*loader);
}

std::map<std::string, double> AsMap(const models::Metrics& metrics) {
  std::map<std::string, double> out;
  for (const auto& [name, value] : metrics) out[name] = value;
  return out;
}

std::vector<torch::Tensor> Parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> copies;
  for (const auto& p : module.parameters()) copies.push_back(p.detach().clone());
  return copies;
}

torch::nn::Module& ModuleNamed(models::Model& model, const std::string& name) {
  for (auto& [n, module] : model.Modules()) {
    if (n == name) return *module;
  }
  ADD_FAILURE() << "no module " << name;
  std::abort();
}

bool SameTensors(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

class MathieuShapesTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(MathieuShapesTest, TrainStepEncodeReconstructAndGridsHaveTheRightShapes) {
  const auto [size, channels] = GetParam();
  torch::manual_seed(0);
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", size, channels);
  auto model = Build(spec, channels, size);
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->NeedsSameClassPairs());
  EXPECT_TRUE(model->NeedsOtherClass());

  data::Batch batch;
  batch.images = torch::rand({8, channels, size, size});
  batch.labels = torch::arange(8) % 4;
  batch.indices = torch::arange(8);
  batch.same_images = torch::rand({8, channels, size, size});
  batch.other_images = torch::rand({8, channels, size, size});
  batch.other_labels = (torch::arange(8) + 1) % 4;
  step::StepContext step(nullptr);
  auto metrics = AsMap(model->TrainStep(batch, step));
  for (const char* name : {"reconstruction", "kl", "g_loss", "d_loss", "d_acc", "d_updates", "g_updates"}) {
    ASSERT_TRUE(metrics.count(name)) << name;
    EXPECT_TRUE(std::isfinite(metrics[name])) << name;
  }
  EXPECT_EQ(metrics["g_updates"], 2.0);
  EXPECT_EQ(metrics["d_updates"], 1.0);  // previous accuracy starts at 0
  EXPECT_GE(metrics["d_acc"], 0.0);
  EXPECT_LE(metrics["d_acc"], 1.0);

  torch::NoGradGuard no_grad;
  for (auto& [name, module] : model->Modules()) module->eval();
  torch::Tensor recon = model->Reconstruct(batch.images);
  EXPECT_EQ(recon.sizes(), batch.images.sizes());
  EXPECT_GE(recon.min().item<float>(), 0.0f);
  EXPECT_LE(recon.max().item<float>(), 1.0f);
  auto codes = model->Encode(batch.images);
  ASSERT_TRUE(codes.count("s") && codes.count("z"));
  EXPECT_EQ(codes["s"].sizes(), (std::vector<int64_t>{8, spec.model_params.GetInt("class_dim")}));
  EXPECT_EQ(codes["z"].sizes(), (std::vector<int64_t>{8, spec.model_params.GetInt("style_dim")}));

  // Every promised grid, encoded and decoded as PNG, at its size.
  testing::ExpectGridsAtTheirSizes(*model, spec.samples.grids,
                                   {{"reconstruction", {2, 16}}, {"swap", {9, 9}}, {"interpolation", {8, 8}}},
                                   channels, size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, MathieuShapesTest, ::testing::Values(std::pair{28, 1}, std::pair{64, 3}),
                         testing::SizeAndChannelsName);

TEST(MathieuTest, ReconstructionFallsThroughTheDriverWithAFixedSeed) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", 28, 3, 80);
  spec.train.lr = 1e-3;
  spec.samples.every_steps = 0;
  spec.checkpoint.every_steps = 0;
  const std::string out = testing::FreshDir("mathieu_loss_falls");
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = out;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  ASSERT_TRUE(summary.ok()) << summary.status();

  auto metrics = testing::ReadMetricsCsv(out + "/metrics.csv");
  const auto& rec = metrics["reconstruction"];
  ASSERT_EQ(rec.size(), 8u);
  EXPECT_LT(rec.back(), 0.6 * rec.front()) << "reconstruction " << rec.front() << " -> " << rec.back();
  for (const char* column : {"kl", "g_loss", "d_loss", "d_acc", "d_updates", "g_updates"}) {
    EXPECT_EQ(metrics[column].size(), 8u) << column;
  }
  for (const std::string& grid : spec.samples.grids) {
    EXPECT_TRUE(std::filesystem::exists(out + "/grids/" + grid + "-step00000080.png")) << grid;
  }
  EXPECT_TRUE(std::filesystem::exists(out + "/report.json"));
}

TEST(MathieuTest, CheckpointRoundTripGivesIdenticalOutputsAndGateState) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", 28, 3);
  torch::manual_seed(1);
  auto trained = Build(spec, 3, 28);
  auto loader = SpritesLoader(spec);
  step::StepContext step(nullptr);
  for (int i = 0; i < 5; ++i) {
    step.step = i;
    trained->TrainStep(*loader->Next(), step);
  }
  const std::string path = testing::FreshDir("mathieu_ckpt") + "/m.ckpt";
  ASSERT_TRUE(train::SaveCheckpoint(path, *trained, {5, 0}, "job").ok());

  torch::manual_seed(2);  // different initial weights
  auto fresh = Build(spec, 3, 28);
  auto loaded = train::LoadCheckpoint(path, *fresh);
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  EXPECT_EQ(Controls(*fresh).PreviousAccuracy(), Controls(*trained).PreviousAccuracy());
  EXPECT_EQ(Controls(*fresh).Counts().discriminator, Controls(*trained).Counts().discriminator);
  EXPECT_EQ(Controls(*fresh).Counts().generator, 10);
  EXPECT_EQ(Controls(*fresh).Counts().iterations, 5);

  torch::NoGradGuard no_grad;
  for (auto* m : {trained.get(), fresh.get()}) {
    for (auto& [name, module] : m->Modules()) module->eval();
  }
  torch::Tensor x = loader->Next()->images;
  EXPECT_TRUE(torch::equal(trained->Reconstruct(x), fresh->Reconstruct(x)));
  auto a = trained->Encode(x), b = fresh->Encode(x);
  EXPECT_TRUE(torch::equal(a["s"], b["s"]));
  EXPECT_TRUE(torch::equal(a["z"], b["z"]));
  EXPECT_TRUE(SameTensors(Parameters(ModuleNamed(*trained, "discriminator")),
                          Parameters(ModuleNamed(*fresh, "discriminator"))));
}

// Runs `steps` iterations, forcing the previous accuracy before each when
// `forced` >= 0, and returns the counts.
models::MathieuControls::UpdateCounts RunForced(models::Model& model, data::BatchLoader& loader, int steps,
                                                double forced) {
  step::StepContext step(nullptr);
  for (int i = 0; i < steps; ++i) {
    if (forced >= 0) Controls(model).SetPreviousAccuracy(forced);
    step.step = i;
    model.TrainStep(*loader.Next(), step);
  }
  return Controls(model).Counts();
}

TEST(MathieuTest, DiscriminatorTrainsOnlyWhileItsPreviousAccuracyIsBelowTheLimit) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", 28, 1);
  auto loader = SpritesLoader(spec);
  constexpr int kSteps = 6;

  // Forced above the limit (0.8): the discriminator never steps and its
  // weights stay put, while the generator still steps twice per iteration.
  torch::manual_seed(3);
  auto above = Build(spec, 1, 28);
  const auto d_before = Parameters(ModuleNamed(*above, "discriminator"));
  const auto e_before = Parameters(ModuleNamed(*above, "encoder"));
  auto counts = RunForced(*above, *loader, kSteps, 0.9);
  EXPECT_EQ(counts.iterations, kSteps);
  EXPECT_EQ(counts.discriminator, 0);
  EXPECT_EQ(counts.generator, 2 * kSteps);
  EXPECT_EQ(counts.auto_encoder, kSteps);
  EXPECT_TRUE(SameTensors(d_before, Parameters(ModuleNamed(*above, "discriminator"))));
  EXPECT_FALSE(SameTensors(e_before, Parameters(ModuleNamed(*above, "encoder"))));

  // Exactly at the limit is not below it.
  torch::manual_seed(3);
  auto at_limit = Build(spec, 1, 28);
  EXPECT_EQ(RunForced(*at_limit, *loader, kSteps, 0.8).discriminator, 0);

  // Forced below: one discriminator update per iteration, two generator
  // updates per discriminator update.
  torch::manual_seed(3);
  auto below = Build(spec, 1, 28);
  counts = RunForced(*below, *loader, kSteps, 0.5);
  EXPECT_EQ(counts.discriminator, kSteps);
  EXPECT_EQ(counts.generator, 2 * kSteps);
  EXPECT_FALSE(SameTensors(d_before, Parameters(ModuleNamed(*below, "discriminator"))));
}

TEST(MathieuTest, GateFollowsTheMeasuredAccuracyAndTheSettingsChangeIt) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("mathieu", 28, 1);
  auto loader = SpritesLoader(spec);
  step::StepContext step(nullptr);

  // Unforced: after each iteration the previous accuracy is the accuracy the
  // iteration reported, and the next iteration's update follows from it.
  torch::manual_seed(4);
  auto model = Build(spec, 1, 28);
  for (int i = 0; i < 8; ++i) {
    const double previous = Controls(*model).PreviousAccuracy();
    step.step = i;
    auto metrics = AsMap(model->TrainStep(*loader->Next(), step));
    EXPECT_EQ(metrics["d_updates"], previous < 0.8 ? 1.0 : 0.0) << "iteration " << i;
    EXPECT_NEAR(Controls(*model).PreviousAccuracy(), metrics["d_acc"], 1e-6);
  }

  // A 3:1 ratio and a lower limit.
  jobspec::JobSpec ratio = testing::ParseOrDie(R"(
name: ratio
model: mathieu
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 512, sprites_test: 64, seed: 3}
model_params: {g_steps_per_d_step: 3, d_accuracy_limit: 0.3}
train: {max_steps: 10, batch_size: 16, seed: 5, threads: 1}
)");
  torch::manual_seed(4);
  auto three = Build(ratio, 1, 28);
  auto counts = RunForced(*three, *loader, 4, 0.4);
  EXPECT_EQ(counts.generator, 12);
  EXPECT_EQ(counts.discriminator, 0);  // 0.4 is above the 0.3 limit
  counts = RunForced(*three, *loader, 4, 0.2);
  EXPECT_EQ(counts.discriminator, 4);

  // With the gate off the discriminator trains whatever its accuracy.
  jobspec::JobSpec ungated = testing::ParseOrDie(R"(
name: ungated
model: mathieu
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 512, sprites_test: 64, seed: 3}
model_params: {d_accuracy_gate: false}
train: {max_steps: 10, batch_size: 16, seed: 5, threads: 1}
)");
  torch::manual_seed(4);
  auto free_running = Build(ungated, 1, 28);
  EXPECT_EQ(RunForced(*free_running, *loader, 4, 1.0).discriminator, 4);
}

}  // namespace
}  // namespace dfv
