// Forward shapes and grid sizes of every model at 28x28 grey and 64x64
// colour, driven through the Model interface only.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/train/test_jobs.h"
#include "worker/models/registry.h"

namespace dfv {
namespace {

struct Shape {
  std::string model;
  int size;
  int channels;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << s.model << " " << s.size << "x" << s.size << "x" << s.channels;
}

class ModelShapesTest : public ::testing::TestWithParam<Shape> {};

TEST_P(ModelShapesTest, ForwardTrainStepEncodeAndGridsHaveTheRightShapes) {
  const Shape& p = GetParam();
  torch::manual_seed(0);
  jobspec::JobSpec spec = testing::SmallSpritesJob(p.model, p.size, p.channels);
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = p.channels;
  ctx.image_size = p.size;
  ctx.num_classes = 4;
  ctx.train_size = 64;
  auto model = models::CreateModel(ctx);
  ASSERT_TRUE(model.ok()) << model.status();

  data::Batch batch = testing::RandomBatch(8, p.channels, p.size);
  step::StepContext step(nullptr);
  models::Metrics metrics = (*model)->TrainStep(batch, step);
  ASSERT_FALSE(metrics.empty());
  for (const auto& [name, value] : metrics) EXPECT_TRUE(std::isfinite(value)) << name;

  torch::NoGradGuard no_grad;
  for (auto& [name, module] : (*model)->Modules()) module->eval();
  torch::Tensor recon = (*model)->Reconstruct(batch.images);
  ASSERT_TRUE(recon.defined());
  EXPECT_EQ(recon.sizes(), batch.images.sizes());
  EXPECT_GE(recon.min().item<float>(), 0.0f);
  EXPECT_LE(recon.max().item<float>(), 1.0f);

  auto codes = (*model)->Encode(batch.images);
  ASSERT_TRUE(codes.count("z"));
  EXPECT_EQ(codes["z"].size(0), 8);
  if (p.model == "cycle_vae") {
    EXPECT_EQ(codes["z"].size(1), spec.model_params.GetInt("style_dim"));
    EXPECT_EQ(codes["s"].size(1), spec.model_params.GetInt("class_dim"));
  } else {
    EXPECT_EQ(codes["z"].size(1), spec.model_params.GetInt("latent_dim"));
  }

  models::GridInputs in;
  in.images = torch::rand({32, p.channels, p.size, p.size});
  in.labels = torch::arange(32) % 4;
  in.noise_seed = 1;
  const int64_t cell = p.size + 2;  // image plus the 2-pixel border
  for (const std::string& grid : spec.samples.grids) {
    torch::Tensor g = (*model)->RenderGrid(grid, in);
    ASSERT_EQ(g.dim(), 3) << grid;
    EXPECT_EQ(g.size(0), p.channels) << grid;
    int64_t rows = 0, cols = 0;
    if (grid == "reconstruction") rows = 2, cols = 16;
    if (grid == "random") rows = 4, cols = 8;
    if (grid == "swap") rows = 9, cols = 9;
    if (grid == "interpolation") rows = 8, cols = 8;
    ASSERT_GT(rows, 0) << "unexpected grid " << grid;
    EXPECT_EQ(g.size(1), rows * cell + 2) << grid;
    EXPECT_EQ(g.size(2), cols * cell + 2) << grid;
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelShapesTest,
                         ::testing::Values(Shape{"vae", 28, 1}, Shape{"vae", 64, 3}, Shape{"cycle_vae", 28, 1},
                                           Shape{"cycle_vae", 64, 3}, Shape{"cycle_vae", 32, 3}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return info.param.model + "_" + std::to_string(info.param.size) + "x" +
                                  std::to_string(info.param.size) + "x" + std::to_string(info.param.channels);
                         });

// Decode(Encode(x)) is Reconstruct(x) for the models with both codes, and
// undefined for the others (the evaluation says "not applicable" for those).
TEST(ModelDecodeTest, DecodingTheEncodedCodesReconstructs) {
  for (const std::string name : {"cycle_vae", "mathieu", "lord", "vae", "dcgan"}) {
    torch::manual_seed(0);
    jobspec::JobSpec spec = testing::SmallSpritesJob(name, 28, 3);
    auto model = models::CreateModel(testing::SpritesModelContext(spec, 4, 64));
    ASSERT_TRUE(model.ok()) << model.status();
    torch::NoGradGuard no_grad;
    for (auto& [module_name, module] : (*model)->Modules()) module->eval();
    torch::Tensor x = torch::rand({4, 3, 28, 28});
    auto codes = (*model)->Encode(x);
    const bool split = codes.count("s") && codes.count("z");
    EXPECT_EQ(split, name != "vae" && name != "dcgan") << name;
    if (!split) {
      EXPECT_FALSE((*model)->Decode(torch::zeros({4, 2}), torch::zeros({4, 2})).defined()) << name;
      continue;
    }
    torch::Tensor decoded = (*model)->Decode(codes["s"], codes["z"]);
    ASSERT_TRUE(decoded.defined()) << name;
    EXPECT_TRUE(torch::allclose(decoded, (*model)->Reconstruct(x), 1e-5, 1e-6)) << name;
    // s and z really are separate inputs: swapping the batch's s changes the output.
    torch::Tensor swapped = (*model)->Decode(codes["s"].flip(0), codes["z"]);
    EXPECT_FALSE(torch::allclose(swapped, decoded)) << name;
  }
}

// reverse_pairs: other_class (the default) asks the loader for an item of
// another class per image; independent pairs the batch's images among
// themselves and needs none, so its step runs on a batch without them.
TEST(CycleVaeTest, IndependentReversePairsNeedNoOtherClassItems) {
  jobspec::JobSpec other_class = testing::SmallSpritesJob("cycle_vae", 28, 3);
  jobspec::JobSpec independent = testing::ParseOrDie(R"(
name: independent
model: cycle_vae
dataset: {kind: sprites, image_size: 28, channels: 3, sprites_train: 512, sprites_test: 64, seed: 3}
model_params: {reverse_pairs: independent}
train: {max_steps: 10, batch_size: 16, seed: 5, threads: 1}
)");
  EXPECT_EQ(other_class.model_params.GetString("reverse_pairs"), "other_class");
  torch::manual_seed(0);
  auto with_other = models::CreateModel(testing::SpritesModelContext(other_class, 4, 64));
  auto without = models::CreateModel(testing::SpritesModelContext(independent, 4, 64));
  ASSERT_TRUE(with_other.ok()) << with_other.status();
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_TRUE((*with_other)->NeedsOtherClass());
  EXPECT_FALSE((*without)->NeedsOtherClass());
  EXPECT_TRUE((*without)->NeedsSameClassPairs());

  data::Batch batch = testing::RandomBatch(8, 3, 28);
  batch.other_images = torch::Tensor();
  batch.other_labels = torch::Tensor();
  step::StepContext step(nullptr);
  models::Metrics metrics = (*without)->TrainStep(batch, step);
  ASSERT_FALSE(metrics.empty());
  for (const auto& [name, value] : metrics) EXPECT_TRUE(std::isfinite(value)) << name;
}

TEST(ModelRegistryTest, UnknownModelIsInvalidArgument) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae");
  spec.model = "no_such_model";
  models::ModelContext ctx;
  ctx.spec = &spec;
  auto model = models::CreateModel(ctx);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("no_such_model"), std::string::npos);
}

}  // namespace
}  // namespace dfv
