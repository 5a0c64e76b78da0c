// The model catalogue (common/jobspec/catalogue.cc, which the coordinator
// validates jobs with) and the model code (worker/models, which the workers
// run) must agree: the same models, every catalogued grid drawable, and the
// catalogued metrics exactly what a training step reports.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "common/jobspec/catalogue.h"
#include "tests/train/test_jobs.h"
#include "worker/models/registry.h"

namespace dfv {
namespace {

std::vector<std::string> Sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ModelCatalogueTest, TheRegistryBuildsExactlyTheCataloguedModels) {
  EXPECT_EQ(Sorted(models::RegisteredModels()), Sorted(jobspec::ModelNames()));
}

class CatalogueEntryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CatalogueEntryTest, ReportsTheCataloguedMetricsAndDrawsTheCataloguedGrids) {
  const jobspec::ModelInfo* info = jobspec::FindModel(GetParam());
  ASSERT_NE(info, nullptr);
  torch::manual_seed(0);
  const int size = 28, channels = 1;
  jobspec::JobSpec spec = testing::SmallSpritesJob(info->name, size, channels);
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = channels;
  ctx.image_size = size;
  ctx.num_classes = 4;
  ctx.train_size = 64;
  absl::StatusOr<std::unique_ptr<models::Model>> model = models::CreateModel(ctx);
  ASSERT_TRUE(model.ok()) << model.status();

  data::Batch batch = testing::RandomBatch(8, channels, size);
  step::StepContext step(nullptr);
  std::vector<std::string> reported;
  for (const auto& [name, value] : (*model)->TrainStep(batch, step)) reported.push_back(name);
  EXPECT_EQ(reported, info->metrics) << "the metrics of " << info->name << "'s TrainStep, in order";

  torch::NoGradGuard no_grad;
  for (auto& [name, module] : (*model)->Modules()) module->eval();
  models::GridInputs in;
  in.images = torch::rand({32, channels, size, size});
  in.labels = torch::arange(32) % 4;
  in.noise_seed = 1;
  ASSERT_FALSE(info->grids.empty());
  for (const std::string& grid : info->grids) {
    torch::Tensor image;
    EXPECT_NO_THROW(image = (*model)->RenderGrid(grid, in)) << info->name << " cannot draw grid " << grid;
    if (image.defined()) EXPECT_EQ(image.dim(), 3) << grid;
  }
  EXPECT_ANY_THROW((*model)->RenderGrid("no_such_grid", in));
}

INSTANTIATE_TEST_SUITE_P(EveryModel, CatalogueEntryTest, ::testing::ValuesIn(jobspec::ModelNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dfv
