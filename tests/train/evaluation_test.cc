// Evaluate() on a test double whose codes are known: the probes read class
// from z's mean however small it is, and the sampled z that the evaluation
// draws from the posterior's log-variance is near chance when the noise
// drowns that mean.
#include "worker/train/evaluation.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <random>

#include "tests/train/test_jobs.h"

namespace dfv {
namespace {

// Grey 4x4 images whose brightness is the label (label * 60 plus noise up
// to 9), labels cycling through 4 classes.
std::shared_ptr<const data::ImageSet> BrightnessSet(int64_t n, uint32_t seed) {
  auto set = std::make_shared<data::ImageSet>();
  set->size = n;
  set->channels = 1;
  set->height = set->width = 4;
  set->num_classes = 4;
  set->class_names = {"0", "1", "2", "3"};
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % 4;
    set->labels.push_back(label);
    for (int p = 0; p < 16; ++p) set->pixels.push_back(static_cast<uint8_t>(label * 60 + rng() % 10));
  }
  return set;
}

// z's mean is the image's brightness scaled by `scale` (so it carries the
// class), beside a constant dimension; with `logvar` set, the posterior's
// log-variance is that constant.
class KnownCodes : public models::Model {
 public:
  KnownCodes(double scale, std::optional<double> logvar) : scale_(scale), logvar_(logvar) {}
  models::Metrics TrainStep(const data::Batch&, models::StepContext&) override { return {}; }
  std::vector<std::pair<std::string, torch::nn::Module*>> Modules() override { return {}; }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override { return {}; }
  torch::Tensor RenderGrid(const std::string&, const models::GridInputs&) override { return {}; }
  std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) override {
    const torch::Tensor brightness = images.mean({1, 2, 3}).unsqueeze(1);
    const torch::Tensor z = torch::cat({scale_ * brightness, torch::zeros_like(brightness)}, 1);
    if (!logvar_) return {{"z", z}};
    return {{"z", z}, {kZLogVariance, torch::full_like(z, *logvar_)}};
  }

 private:
  double scale_;
  std::optional<double> logvar_;
};

double Accuracy(const nlohmann::json& report, const char* code) {
  return report["latent"][code]["mlp"]["test_accuracy"].get<double>();
}

TEST(EvaluationTest, ProbesTheMeanAndADrawFromThePosterior) {
  data::DatasetSplits splits{BrightnessSet(800, 1), BrightnessSet(400, 2)};
  jobspec::JobSpec job = testing::SmallSpritesJob("cycle_vae", 28, 1);
  job.evaluate.classifiers = {"mlp"};
  const std::string out = testing::FreshDir("evaluation_sampled");

  // A mean a thousandth of the unit noise: the mean's probe still reads the
  // class (its inputs are normalised), the draw's is near chance (0.25).
  KnownCodes drowned(1e-3, 0.0);
  auto result = train::Evaluate(drowned, splits, job, torch::kCPU, out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(Accuracy(result->report, "z"), 0.95) << result->report.dump(2);
  EXPECT_LT(Accuracy(result->report, train::kSampledZ), 0.40) << result->report.dump(2);
  EXPECT_FALSE(result->report["latent"].contains(models::Model::kZLogVariance));

  // A posterior far narrower than the class spacing: the draw keeps the class.
  KnownCodes sharp(1.0, -20.0);
  result = train::Evaluate(sharp, splits, job, torch::kCPU, out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(Accuracy(result->report, train::kSampledZ), 0.95) << result->report.dump(2);

  // No posterior, no sampled code.
  KnownCodes deterministic(1.0, std::nullopt);
  result = train::Evaluate(deterministic, splits, job, torch::kCPU, out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->report["latent"].size(), 1u) << result->report.dump(2);
}

}  // namespace
}  // namespace dfv
