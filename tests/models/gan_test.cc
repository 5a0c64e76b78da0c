// The GAN family of seed 001 (dcgan, acgan, infogan), through the Model
// interface and the training driver: forward shapes at 28x28 grey, 64x64
// colour and an odd size; the D:G update ratio; learning on real sprites with
// a fixed seed; checkpoint round trips; every promised grid as a PNG of the
// right size; a run folder whose evaluation skips the encoder-only parts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/png.h"
#include "tests/train/test_jobs.h"
#include "worker/data/dataset.h"
#include "worker/data/tensor.h"
#include "worker/models/registry.h"
#include "worker/train/checkpoint.h"
#include "worker/train/trainer.h"

namespace dfv {
namespace {

const char* const kModels[] = {"dcgan", "acgan", "infogan"};

// A small GAN job on sprites, with the catalogue's optimiser defaults
// (2e-4, betas 0.5 / 0.999) and narrow networks so each test stays fast.
jobspec::JobSpec GanJob(const std::string& model, int size, int channels, int max_steps = 6,
                        const std::string& extra_params = "") {
  return testing::ParseOrDie(absl::StrFormat(R"(
name: test-%s
model: %s
dataset: {kind: sprites, image_size: %d, channels: %d, sprites_train: 256, sprites_test: 64, seed: 3}
model_params: {feature_maps: 16%s}
train: {epochs: 100, max_steps: %d, batch_size: 16, seed: 5, threads: 1, log_every_steps: 3}
checkpoint: {every_steps: 3, keep_last: 2}
samples: {every_steps: 3, upscale: 1}
evaluate: {classifiers: [mlp], tsne: true}
)",
                                             model, model, size, channels, extra_params, max_steps));
}

std::unique_ptr<models::Model> Build(const jobspec::JobSpec& spec, int size, int channels, int classes,
                                     uint64_t seed) {
  torch::manual_seed(seed);
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = channels;
  ctx.image_size = size;
  ctx.num_classes = classes;
  auto model = models::CreateModel(ctx);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// The metric names each model reports, in order.
std::vector<std::string> ExpectedMetrics(const std::string& model) {
  if (model == "acgan") {
    return {"d_loss", "g_loss", "class_loss", "d_acc_real", "d_acc_fake", "class_acc_real", "class_acc_fake"};
  }
  if (model == "infogan") return {"d_loss", "g_loss", "q_loss", "d_acc_real", "d_acc_fake", "q_acc"};
  return {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"};
}

// Rows x columns of each promised grid (see the models' headers).
std::pair<int64_t, int64_t> GridCells(const std::string& grid) {
  if (grid == "random") return {4, 8};
  if (grid == "pairs") return {2, 16};
  if (grid == "categorical") return {10, 10};
  ADD_FAILURE() << "unexpected grid " << grid;
  return {0, 0};
}

void SetEval(models::Model& model, bool eval) {
  for (auto& [name, module] : model.Modules()) module->train(!eval);
}

std::map<std::string, torch::Tensor> RenderAll(models::Model& model, const jobspec::JobSpec& spec,
                                               const models::GridInputs& in) {
  torch::NoGradGuard no_grad;
  SetEval(model, true);
  std::map<std::string, torch::Tensor> grids;
  for (const std::string& grid : spec.samples.grids) grids[grid] = model.RenderGrid(grid, in);
  SetEval(model, false);
  return grids;
}

struct Shape {
  std::string model;
  int size;
  int channels;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << s.model << " " << s.size << "x" << s.size << "x" << s.channels;
}

class GanShapesTest : public ::testing::TestWithParam<Shape> {};

TEST_P(GanShapesTest, TrainStepMetricsAndGridsHaveTheRightShapes) {
  const Shape& p = GetParam();
  jobspec::JobSpec spec = GanJob(p.model, p.size, p.channels);
  auto model = Build(spec, p.size, p.channels, 4, 0);
  ASSERT_NE(model, nullptr);

  step::StepContext step(nullptr);
  models::Metrics metrics = model->TrainStep(testing::RandomBatch(8, p.channels, p.size), step);
  std::vector<std::string> names;
  for (const auto& [name, value] : metrics) {
    names.push_back(name);
    EXPECT_TRUE(std::isfinite(value)) << name;
    if (name.find("acc") != std::string::npos) {
      EXPECT_GE(value, 0.0) << name;
      EXPECT_LE(value, 1.0) << name;
    } else {
      EXPECT_GT(value, 0.0) << name;  // every loss here is a cross-entropy
    }
  }
  EXPECT_EQ(names, ExpectedMetrics(p.model));

  torch::NoGradGuard no_grad;
  SetEval(*model, true);
  // No encoder: nothing to reconstruct or probe.
  EXPECT_FALSE(model->Reconstruct(torch::rand({2, p.channels, p.size, p.size})).defined());
  EXPECT_TRUE(model->Encode(torch::rand({2, p.channels, p.size, p.size})).empty());

  models::GridInputs in;
  in.images = torch::rand({32, p.channels, p.size, p.size});
  in.labels = torch::arange(32) % 4;
  in.noise_seed = 1;
  const int64_t cell = p.size + 2;  // image plus the 2-pixel border
  ASSERT_FALSE(spec.samples.grids.empty());
  for (const std::string& grid : spec.samples.grids) {
    torch::Tensor g = model->RenderGrid(grid, in);
    const auto [rows, cols] = GridCells(grid);
    ASSERT_EQ(g.dim(), 3) << grid;
    EXPECT_EQ(g.size(0), p.channels) << grid;
    EXPECT_EQ(g.size(1), rows * cell + 2) << grid;
    EXPECT_EQ(g.size(2), cols * cell + 2) << grid;
    EXPECT_GE(g.min().item<float>(), 0.0f) << grid;
    EXPECT_LE(g.max().item<float>(), 1.0f) << grid;
    // Same seed, same grid: grids at successive steps are comparable.
    EXPECT_TRUE(torch::equal(g, model->RenderGrid(grid, in))) << grid;
  }
  EXPECT_THROW(model->RenderGrid("swap", in), c10::Error);
}

std::vector<Shape> AllShapes() {
  std::vector<Shape> shapes;
  for (const char* model : kModels) {
    // 28 grey (7 -> 14 -> 28), 64 colour (4 -> ... -> 64), 36 (generated at 40, cropped).
    for (const auto& [size, channels] : std::vector<std::pair<int, int>>{{28, 1}, {64, 3}, {36, 3}}) {
      shapes.push_back({model, size, channels});
    }
  }
  return shapes;
}

INSTANTIATE_TEST_SUITE_P(Gans, GanShapesTest, ::testing::ValuesIn(AllShapes()),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return info.param.model + "_" + std::to_string(info.param.size) + "x" +
                                  std::to_string(info.param.size) + "x" + std::to_string(info.param.channels);
                         });

class GanTest : public ::testing::TestWithParam<std::string> {};

int64_t AdamSteps(torch::optim::Optimizer& optimizer) {
  int64_t steps = -1;
  for (const auto& [key, state] : optimizer.state()) {
    const int64_t s = static_cast<const torch::optim::AdamParamState&>(*state).step();
    EXPECT_TRUE(steps == -1 || steps == s) << "parameters of one optimiser stepped unequally";
    steps = s;
  }
  return steps;
}

TEST_P(GanTest, UpdateRatioIsDStepsToGSteps) {
  const std::string model_name = GetParam();
  jobspec::JobSpec spec = GanJob(model_name, 28, 1, 6, ", d_steps: 3, g_steps: 2");
  auto model = Build(spec, 28, 1, 4, 0);
  ASSERT_NE(model, nullptr);
  step::StepContext step(nullptr);
  model->TrainStep(testing::RandomBatch(4, 1, 28), step);
  model->TrainStep(testing::RandomBatch(4, 1, 28), step);
  for (auto& [name, optimizer] : model->Optimizers()) {
    // Two training steps: 2 x 3 discriminator updates, 2 x 2 generator (and
    // Q) updates.
    EXPECT_EQ(AdamSteps(*optimizer), name == "discriminator" ? 6 : 4) << name;
  }
}

// What "learning" means for a GAN, on real sprites with a fixed seed. A GAN's
// losses do not fall monotonically (G and D chase each other), so the test
// checks what is reliably true early in training on one fixed real batch,
// over 200 steps (medians of windows, as single steps spike):
//  - the discriminator learns to tell those real images from the generator's:
//    d_loss starts at its value for an untrained D (outputs ~0.5: 2 ln 2, plus
//    2 ln K for acgan's class head) and falls to under half of it;
//  - the generator moves toward the data: the mean colour of its samples
//    starts near mid-grey (tanh of ~0) and approaches that of the sprites
//    (mostly dark background);
//  - acgan: the class head learns the real labels (far above chance), and
//    generated images get the class they were drawn for;
//  - infogan: Q learns to recover the categorical code from G's images, the
//    mutual-information term falling from ln 10.
TEST_P(GanTest, LearnsOnSpritesWithAFixedSeed) {
  const std::string model_name = GetParam();
  torch::set_num_threads(1);
  jobspec::JobSpec spec = GanJob(model_name, 28, 3);
  auto splits = data::LoadDataset(spec.dataset);
  ASSERT_TRUE(splits.ok()) << splits.status();
  const data::ImageSet& train = *splits->train;
  data::Batch batch;
  auto images = data::ImagesToTensor(train, data::IndexRange(0, 32));
  auto labels = data::LabelsToTensor(train, data::IndexRange(0, 32));
  ASSERT_TRUE(images.ok() && labels.ok());
  batch.images = *images;
  batch.labels = *labels;
  auto model = Build(spec, 28, 3, static_cast<int>(train.num_classes), 7);
  ASSERT_NE(model, nullptr);

  models::GridInputs in;
  in.images = batch.images;
  in.labels = batch.labels;
  in.noise_seed = 11;
  const std::string grid = spec.samples.grids.front();
  const torch::Tensor data_mean = batch.images.mean({0, 2, 3});
  auto sample_mean_gap = [&] {
    // Per-channel mean of the grid's cells (borders left out) against the data's.
    torch::Tensor g = RenderAll(*model, spec, in)[grid];
    const auto [rows, cols] = GridCells(grid);
    torch::Tensor sum = torch::zeros({3});
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t y = 2 + r * 30, x = 2 + c * 30;  // 28-pixel cells, 2-pixel borders
        sum += g.slice(1, y, y + 28).slice(2, x, x + 28).mean({1, 2});
      }
    }
    return (sum / static_cast<double>(rows * cols) - data_mean).abs().max().item<double>();
  };
  const double gap_before = sample_mean_gap();

  constexpr int kSteps = 200;
  std::map<std::string, std::vector<double>> history;
  step::StepContext step(nullptr);
  for (int i = 0; i < kSteps; ++i) {
    step.step = i;
    for (const auto& [name, value] : model->TrainStep(batch, step)) history[name].push_back(value);
  }
  // Medians over windows: single steps spike (the players chase each other).
  auto median_of = [&](const std::string& name, int begin, int end) {
    std::vector<double> v(history.at(name).begin() + begin, history.at(name).begin() + end);
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const double ln2 = std::log(2.0), classes = static_cast<double>(train.num_classes);
  // An untrained D outputs ~0.5: BCE ln 2 on real and on fake (plus, for
  // acgan, ln K for the class head on real and on fake).
  const double d_initial = model_name == "acgan" ? 2 * ln2 + 2 * std::log(classes) : 2 * ln2;
  const double d_first = median_of("d_loss", 0, 3);
  const double d_last = median_of("d_loss", kSteps - 10, kSteps);
  EXPECT_NEAR(d_first, d_initial, 0.5);
  EXPECT_LT(d_last, 0.5 * d_first) << "discriminator loss " << d_first << " -> " << d_last;
  EXPECT_GT(median_of("d_acc_real", kSteps - 10, kSteps), 0.8);
  EXPECT_GT(median_of("d_acc_fake", kSteps - 10, kSteps), 0.8);

  const double gap_after = sample_mean_gap();
  EXPECT_LT(gap_after, 0.6 * gap_before) << "sample mean gap " << gap_before << " -> " << gap_after;

  if (model_name == "acgan") {
    EXPECT_GT(median_of("class_acc_real", kSteps - 10, kSteps), 0.5)
        << "class head accuracy on the real batch (chance " << 1.0 / classes << ")";
    // The generator's images get the class they were drawn for, as the class
    // head judges: well above chance (1/30) after 200 steps.
    const auto& fake_acc = history.at("class_acc_fake");
    const double late = std::accumulate(fake_acc.end() - 20, fake_acc.end(), 0.0) / 20;
    EXPECT_GT(late, 3.0 / classes) << "class accuracy on generated images";
  }
  if (model_name == "infogan") {
    const double q_first = median_of("q_loss", 0, 3);
    const double q_last = median_of("q_loss", kSteps - 10, kSteps);
    EXPECT_NEAR(q_first, std::log(10.0), 0.3);
    EXPECT_LT(q_last, 0.75 * q_first) << "q_loss " << q_first << " -> " << q_last;
  }
}

TEST_P(GanTest, CheckpointRoundTripGivesIdenticalGridsAndUpdates) {
  const std::string model_name = GetParam();
  jobspec::JobSpec spec = GanJob(model_name, 28, 3);
  auto a = Build(spec, 28, 3, 4, 1);
  ASSERT_NE(a, nullptr);
  step::StepContext step(nullptr);
  const data::Batch batch = testing::RandomBatch(8, 3, 28);
  a->TrainStep(batch, step);  // optimiser state and batch-norm statistics
  a->TrainStep(batch, step);

  const std::string path = testing::FreshDir("gan_ckpt_" + model_name) + "/a.ckpt";
  ASSERT_TRUE(train::SaveCheckpoint(path, *a, {2, 0}, "").ok());
  auto b = Build(spec, 28, 3, 4, 2);
  ASSERT_NE(b, nullptr);

  models::GridInputs in;
  in.images = torch::rand({32, 3, 28, 28});
  in.labels = torch::arange(32) % 4;
  in.noise_seed = 3;
  auto grids_a = RenderAll(*a, spec, in);
  ASSERT_FALSE(torch::equal(grids_a.begin()->second, RenderAll(*b, spec, in).begin()->second))
      << "differently seeded models should differ before loading";
  auto loaded = train::LoadCheckpoint(path, *b);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto grids_b = RenderAll(*b, spec, in);
  for (const auto& [name, grid] : grids_a) EXPECT_TRUE(torch::equal(grid, grids_b[name])) << name;

  // Same optimiser state: one more identically seeded step keeps them equal.
  step.BeginStep(2, 9);  // the same step's noise for both
  const models::Metrics ma = a->TrainStep(batch, step);
  step.BeginStep(2, 9);
  const models::Metrics mb = b->TrainStep(batch, step);
  EXPECT_EQ(ma, mb);
  grids_a = RenderAll(*a, spec, in);
  grids_b = RenderAll(*b, spec, in);
  for (const auto& [name, grid] : grids_a) EXPECT_TRUE(torch::equal(grid, grids_b[name])) << name;
}

// The driver end to end: metrics rows, every grid as a decodable PNG of the
// right size at each sampling step, checkpoints, and a report without the
// encoder-only parts (no reconstruction error, no latent probes, no t-SNE).
TEST_P(GanTest, TrainerWritesGridsAsPngsAndASensibleReport) {
  const std::string model_name = GetParam();
  jobspec::JobSpec spec = GanJob(model_name, 32, 3, 6);
  const std::string out = testing::FreshDir("gan_run_" + model_name);
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = out;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 6);

  std::vector<std::string> final_names;
  for (const auto& [name, value] : summary->final_metrics) final_names.push_back(name);
  EXPECT_EQ(final_names, ExpectedMetrics(model_name));

  const int64_t cell = 32 + 2;
  for (const std::string& grid : spec.samples.grids) {
    const auto [rows, cols] = GridCells(grid);
    for (int s : {3, 6}) {
      const std::string file = absl::StrFormat("%s/grids/%s-step%08d.png", out, grid, s);
      auto image = ReadPngFile(file);
      ASSERT_TRUE(image.ok()) << image.status();
      EXPECT_EQ(image->channels, 3) << file;
      EXPECT_EQ(image->height, rows * cell + 2) << file;
      EXPECT_EQ(image->width, cols * cell + 2) << file;
    }
  }
  EXPECT_EQ(train::ListCheckpoints(out + "/checkpoints").size(), 2u);

  auto text = ReadFileToString(out + "/report.json");
  ASSERT_TRUE(text.ok()) << text.status();
  auto report = nlohmann::json::parse(*text);
  EXPECT_EQ(report["model"], model_name);
  EXPECT_EQ(report["evaluation"]["test_images"], 64);
  EXPECT_FALSE(report["evaluation"].contains("reconstruction_mse"));
  EXPECT_FALSE(report["evaluation"].contains("latent"));
  EXPECT_FALSE(std::filesystem::exists(out + "/tsne-z.png"));
  EXPECT_TRUE(report["final_metrics"].contains("d_loss"));

  // And the run resumes from its newest checkpoint like any other model.
  jobspec::JobSpec longer = spec;
  longer.train.max_steps = 9;
  options.spec = longer;
  options.resume_from = out;
  auto resumed = train::Trainer::Create(options);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->start_step(), 6);
  auto more = (*resumed)->Run();
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(more->steps, 9);
}

INSTANTIATE_TEST_SUITE_P(Gans, GanTest, ::testing::Values("dcgan", "acgan", "infogan"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dfv
