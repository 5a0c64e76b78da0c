// `lord`: shapes at 28x28 grey and 64x64 colour in both stages, loss falling
// and the stage switch through the real driver, checkpoint round trip, grids
// as PNG, loss kinds, the cosine schedule, and seed 003's observation on the
// content noise.
#include "worker/models/lord.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "tests/models/grid_check.h"
#include "tests/train/test_jobs.h"
#include "worker/data/batch_loader.h"
#include "worker/data/dataset.h"
#include "worker/models/registry.h"
#include "worker/train/checkpoint.h"
#include "worker/train/trainer.h"

namespace dfv {
namespace {

constexpr int kTrainSize = 512;  // SmallSpritesJob's training images

std::unique_ptr<models::Model> Build(const jobspec::JobSpec& spec, int channels, int size) {
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = channels;
  ctx.image_size = size;
  ctx.num_classes = 30;
  ctx.train_size = kTrainSize;
  auto model = models::CreateModel(ctx);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

models::LordControls& Controls(models::Model& model) {
  auto* controls = dynamic_cast<models::LordControls*>(&model);
  EXPECT_NE(controls, nullptr);
  return *controls;
}

// A small sprites job for lord with extra model_params (a YAML flow body).
jobspec::JobSpec LordJob(int size, int channels, int max_steps, const std::string& params) {
  return testing::ParseOrDie(absl::StrFormat(R"(
name: test-lord
model: lord
dataset: {kind: sprites, image_size: %d, channels: %d, sprites_train: 512, sprites_test: 64, seed: 3}
model_params: {%s}
train: {epochs: 100, max_steps: %d, batch_size: 16, seed: 5, threads: 1, log_every_steps: 10}
checkpoint: {every_steps: 0}
samples: {every_steps: 0}
)",
                                             size, channels, params, max_steps));
}

std::shared_ptr<const data::ImageSet> TrainSet(const jobspec::JobSpec& spec) {
  auto splits = data::LoadDataset(spec.dataset);
  EXPECT_TRUE(splits.ok()) << splits.status();
  return splits->train;
}

std::unique_ptr<data::BatchLoader> Loader(std::shared_ptr<const data::ImageSet> set, const jobspec::JobSpec& spec) {
  data::LoaderOptions options;
  options.batch_size = spec.train.batch_size;
  options.seed = spec.train.seed;
  auto loader = data::BatchLoader::Create(std::move(set), options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return std::move(*loader);
}

std::map<std::string, double> AsMap(const models::Metrics& metrics) {
  std::map<std::string, double> out;
  for (const auto& [name, value] : metrics) out[name] = value;
  return out;
}

void EvalMode(models::Model& model) {
  for (auto& [name, module] : model.Modules()) module->eval();
}

class LordShapesTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(LordShapesTest, BothStagesEncodeReconstructAndGridsHaveTheRightShapes) {
  const auto [size, channels] = GetParam();
  torch::manual_seed(0);
  jobspec::JobSpec spec = LordJob(size, channels, 40, "content_dim: 12, class_dim: 10");
  auto model = Build(spec, channels, size);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(Controls(*model).AmortizationStartStep(), 32);  // 40 - 0.2 * 40

  data::Batch batch;
  batch.images = torch::rand({8, channels, size, size});
  batch.labels = torch::arange(8) % 4;
  batch.indices = torch::arange(8) * 7;
  step::StepContext step(nullptr);
  for (int64_t s : {int64_t{0}, Controls(*model).AmortizationStartStep()}) {
    step.step = s;
    if (s > 0) batch.indices += 100;  // other training images in the second batch
    auto metrics = AsMap(model->TrainStep(batch, step));
    for (const char* name : {"loss", "reconstruction", "content_l2", "code_regression", "stage", "lr"}) {
      ASSERT_TRUE(metrics.count(name)) << name;
      EXPECT_TRUE(std::isfinite(metrics[name])) << name;
    }
    EXPECT_EQ(metrics["stage"], s == 0 ? 1.0 : 2.0);
    if (s > 0) {
      EXPECT_GT(metrics["code_regression"], 0.0);
    }
  }

  torch::NoGradGuard no_grad;
  EvalMode(*model);
  torch::Tensor recon = model->Reconstruct(batch.images);
  EXPECT_EQ(recon.sizes(), batch.images.sizes());
  EXPECT_GE(recon.min().item<float>(), 0.0f);
  EXPECT_LE(recon.max().item<float>(), 1.0f);
  auto codes = model->Encode(batch.images);
  ASSERT_TRUE(codes.count("s") && codes.count("z"));
  EXPECT_EQ(codes["s"].sizes(), (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(codes["z"].sizes(), (std::vector<int64_t>{8, 12}));
  EXPECT_EQ(Controls(*model).DecodeLearnedCodes(batch.indices, batch.labels, 0.0).sizes(), batch.images.sizes());

  // Every promised grid, encoded and decoded as PNG, at its size. The
  // learned-code grids show the first 16 training images trained on.
  testing::ExpectGridsAtTheirSizes(
      *model, spec.samples.grids,
      {{"reconstruction", {2, 16}}, {"random_class", {9, 9}}, {"noise", {6, 16}}, {"swap", {9, 9}}}, channels, size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, LordShapesTest, ::testing::Values(std::pair{28, 1}, std::pair{64, 3}),
                         testing::SizeAndChannelsName);

TEST(LordTest, LossFallsAndStageTwoFollowsThroughTheDriver) {
  jobspec::JobSpec spec = LordJob(28, 3, 100, "encoder_fraction: 0.3");
  spec.samples.every_steps = 50;
  const std::string out = testing::FreshDir("lord_driver");
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = out;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  ASSERT_TRUE(summary.ok()) << summary.status();

  auto metrics = testing::ReadMetricsCsv(out + "/metrics.csv");
  EXPECT_EQ(metrics["stage"], (std::vector<double>{1, 1, 1, 1, 1, 1, 1, 2, 2, 2}));
  const auto& rec = metrics["reconstruction"];
  ASSERT_EQ(rec.size(), 10u);
  EXPECT_LT(rec[6], 0.7 * rec[0]) << "stage-1 reconstruction " << rec[0] << " -> " << rec[6];
  const auto& regression = metrics["code_regression"];
  EXPECT_LT(regression[9], regression[7]) << "code regression " << regression[7] << " -> " << regression[9];
  for (const std::string& grid : spec.samples.grids) {
    for (const char* step : {"00000050", "00000100"}) {
      EXPECT_TRUE(std::filesystem::exists(out + "/grids/" + grid + "-step" + step + ".png")) << grid;
    }
  }
  auto report = ReadFileToString(out + "/report.json");
  ASSERT_TRUE(report.ok());
  EXPECT_NE(report->find("reconstruction_mse"), std::string::npos);
}

TEST(LordTest, CheckpointRoundTripGivesIdenticalOutputs) {
  jobspec::JobSpec spec = LordJob(28, 3, 20, "encoder_fraction: 0.5");
  auto set = TrainSet(spec);
  auto loader = Loader(set, spec);
  torch::manual_seed(1);
  auto trained = Build(spec, 3, 28);
  step::StepContext step(nullptr);
  for (int i = 0; i < 14; ++i) {  // into stage 2 (from step 10)
    step.step = i;
    trained->TrainStep(*loader->Next(), step);
  }
  const std::string path = testing::FreshDir("lord_ckpt") + "/l.ckpt";
  ASSERT_TRUE(train::SaveCheckpoint(path, *trained, {14, 0}, "job").ok());
  torch::manual_seed(2);
  auto fresh = Build(spec, 3, 28);
  auto loaded = train::LoadCheckpoint(path, *fresh);
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  torch::NoGradGuard no_grad;
  EvalMode(*trained);
  EvalMode(*fresh);
  data::Batch b = *loader->Next();
  EXPECT_TRUE(torch::equal(Controls(*trained).DecodeLearnedCodes(b.indices, b.labels, 0),
                           Controls(*fresh).DecodeLearnedCodes(b.indices, b.labels, 0)));
  EXPECT_TRUE(torch::equal(trained->Reconstruct(b.images), fresh->Reconstruct(b.images)));
  auto ca = trained->Encode(b.images), cb = fresh->Encode(b.images);
  EXPECT_TRUE(torch::equal(ca["s"], cb["s"]));
  EXPECT_TRUE(torch::equal(ca["z"], cb["z"]));
  models::GridInputs in;
  in.images = b.images.repeat({2, 1, 1, 1});
  in.labels = b.labels.repeat({2});
  in.noise_seed = 3;
  for (const std::string& grid : spec.samples.grids) {
    EXPECT_TRUE(torch::equal(trained->RenderGrid(grid, in), fresh->RenderGrid(grid, in))) << grid;
  }
}

TEST(LordTest, LossKindsAreL1L2AndTheirSum) {
  data::Batch batch;
  batch.images = torch::rand({8, 1, 28, 28});
  batch.labels = torch::arange(8) % 3;
  batch.indices = torch::arange(8);
  std::map<std::string, double> first_loss;
  for (const std::string kind : {"l1", "l2", "l1+l2"}) {
    jobspec::JobSpec spec = LordJob(28, 1, 40, "reconstruction_loss: " + kind);
    torch::manual_seed(7);  // same weights, codes and noise for every kind
    auto model = Build(spec, 1, 28);
    step::StepContext step(nullptr);
    first_loss[kind] = AsMap(model->TrainStep(batch, step))["reconstruction"];
  }
  EXPECT_GT(first_loss["l1"], first_loss["l2"]);  // errors below 1 per pixel
  EXPECT_NEAR(first_loss["l1+l2"], first_loss["l1"] + first_loss["l2"], 1e-5);
}

TEST(LordTest, CosineScheduleDecaysEachStageToMinLr) {
  jobspec::JobSpec spec = LordJob(28, 1, 20,
                                  "lr_schedule: cosine, min_lr: 1.0e-5, embedding_lr_scale: 10, "
                                  "encoder_lr: 2.0e-4, encoder_fraction: 0.5");
  spec.train.lr = 3e-4;
  auto model = Build(spec, 1, 28);
  data::Batch batch;
  batch.images = torch::rand({4, 1, 28, 28});
  batch.labels = torch::arange(4);
  batch.indices = torch::arange(4);
  step::StepContext step(nullptr);
  std::vector<double> lr;
  for (int i = 0; i < 20; ++i) {
    step.step = i;
    lr.push_back(AsMap(model->TrainStep(batch, step))["lr"]);
  }
  EXPECT_DOUBLE_EQ(lr[0], 3e-4);
  for (int i = 1; i < 10; ++i) EXPECT_LT(lr[i], lr[i - 1]) << i;
  EXPECT_NEAR(lr[9], 1e-5 + (3e-4 - 1e-5) * 0.5 * (1 + std::cos(M_PI * 9 / 10)), 1e-12);
  EXPECT_DOUBLE_EQ(lr[10], 2e-4);  // stage 2 restarts from encoder_lr
  for (int i = 11; i < 20; ++i) EXPECT_LT(lr[i], lr[i - 1]) << i;

  // The embeddings' group starts at ten times the generator's rate and
  // follows its own cosine (last set at step 9).
  auto* latent = model->Optimizers()[0].second;
  ASSERT_EQ(latent->param_groups().size(), 2u);
  const double g = static_cast<torch::optim::AdamOptions&>(latent->param_groups()[0].options()).lr();
  const double e = static_cast<torch::optim::AdamOptions&>(latent->param_groups()[1].options()).lr();
  const double cosine = 0.5 * (1 + std::cos(M_PI * 9 / 10));
  EXPECT_NEAR(g, 1e-5 + (3e-4 - 1e-5) * cosine, 1e-12);
  EXPECT_NEAR(e, 1e-5 + (3e-3 - 1e-5) * cosine, 1e-12);
}

// Mean distance between the decodings of same-class training pairs, relative
// to the mean distance between the images themselves.
double SameClassSpread(models::Model& model, const data::ImageSet& set) {
  std::vector<int64_t> a, b;
  std::map<int64_t, int64_t> first_of_class;
  for (int64_t i = 0; i < set.size; ++i) {
    auto [it, inserted] = first_of_class.emplace(set.labels[i], i);
    if (!inserted && a.size() < 64) {
      a.push_back(it->second);
      b.push_back(i);
    }
  }
  auto to_tensor = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); };
  std::vector<int64_t> pair_labels;
  for (int64_t i : a) pair_labels.push_back(set.labels[i]);
  torch::Tensor labels = to_tensor(pair_labels);
  auto images = [&](const std::vector<int64_t>& idx) {
    std::vector<torch::Tensor> out;
    for (int64_t i : idx) {
      out.push_back(torch::from_blob(const_cast<uint8_t*>(set.Image(i)), {set.channels, set.height, set.width},
                                     torch::kUInt8)
                        .to(torch::kFloat32) /
                    255.0);
    }
    return torch::stack(out);
  };
  EvalMode(model);
  torch::NoGradGuard no_grad;
  auto& controls = Controls(model);
  torch::Tensor da = controls.DecodeLearnedCodes(to_tensor(a), labels, 0);
  torch::Tensor db = controls.DecodeLearnedCodes(to_tensor(b), labels, 0);
  const double decoded = (da - db).flatten(1).norm(2, 1).mean().item<double>();
  const double original = (images(a) - images(b)).flatten(1).norm(2, 1).mean().item<double>();
  return decoded / original;
}

TEST(LordTest, LargeContentNoiseMakesSameClassReconstructionsConverge) {
  // Seed 003: with a large sigma the content code carries nothing through the
  // noise, so two images of one class decode to (nearly) the same image;
  // without noise the content codes tell them apart.
  std::map<std::string, double> spread;
  for (const std::string sigma : {"0.0", "5.0"}) {
    jobspec::JobSpec spec = LordJob(28, 1, 2000, "content_dim: 8, embedding_lr_scale: 10, content_noise: " + sigma);
    spec.train.batch_size = 32;
    auto set = TrainSet(spec);
    auto loader = Loader(set, spec);
    torch::manual_seed(11);
    auto model = Build(spec, 1, 28);
    step::StepContext step(nullptr);
    for (int i = 0; i < 150; ++i) {
      step.step = i;
      model->TrainStep(*loader->Next(), step);
    }
    spread[sigma] = SameClassSpread(*model, *set);
  }
  EXPECT_LT(spread["5.0"], 0.2) << "sigma 5: decodings of one class stay apart";
  EXPECT_GT(spread["0.0"], 0.5) << "sigma 0: decodings of one class collapse";
  EXPECT_LT(spread["5.0"], 0.4 * spread["0.0"]);
}

}  // namespace
}  // namespace dfv
