// ClassMmd (worker/models/class_mmd.h): near zero when the classes' codes
// are drawn alike, clearly positive when a class shifts them, blind to the
// codes' scale, a gradient that, followed, makes the classes' codes alike,
// and the weighted term the models add.
#include "worker/models/class_mmd.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace dfv {
namespace {

constexpr int64_t kClasses = 10;
constexpr int64_t kBatch = 64;
constexpr int64_t kDim = 16;

torch::Tensor Labels() { return torch::randint(kClasses, {kBatch}, torch::kLong); }

// Codes whose mean depends on the class: class k shifted by `shift` along
// dimension k.
torch::Tensor Shifted(const torch::Tensor& labels, double shift) {
  return torch::randn({kBatch, kDim}) + shift * torch::one_hot(labels, kDim).to(torch::kFloat);
}

double MeanOverBatches(double shift, int batches) {
  double total = 0;
  for (int i = 0; i < batches; ++i) {
    torch::Tensor labels = Labels();
    total += models::ClassMmd(Shifted(labels, shift), labels, kClasses).item<double>();
  }
  return total / batches;
}

TEST(ClassMmdTest, NearZeroWhenClassesAreAlikeAndPositiveWhenShifted) {
  torch::manual_seed(1);
  const double alike = MeanOverBatches(0.0, 200);
  const double shifted = MeanOverBatches(3.0, 200);
  EXPECT_LT(std::abs(alike), 0.005) << "unbiased estimate for identically distributed classes";
  EXPECT_GT(shifted, 0.1);
  EXPECT_GT(shifted, 20 * std::abs(alike));
}

TEST(ClassMmdTest, IndependentOfScale) {
  torch::manual_seed(2);
  torch::Tensor labels = Labels();
  torch::Tensor codes = Shifted(labels, 2.0);
  const double base = models::ClassMmd(codes, labels, kClasses).item<double>();
  EXPECT_NEAR(models::ClassMmd(codes * 1e-3, labels, kClasses).item<double>(), base, 1e-4);
  EXPECT_NEAR(models::ClassMmd(codes * 1e3, labels, kClasses).item<double>(), base, 1e-4);
}

TEST(ClassMmdTest, TinyBatchesAndLoneClassesAddNothing) {
  torch::Tensor one = torch::randn({1, kDim});
  EXPECT_EQ(models::ClassMmd(one, torch::zeros({1}, torch::kLong), kClasses).item<double>(), 0.0);
  // Every code its own class: no class has two codes.
  torch::Tensor codes = torch::randn({kClasses, kDim});
  EXPECT_EQ(models::ClassMmd(codes, torch::arange(kClasses), kClasses).item<double>(), 0.0);
}

TEST(ClassMmdTest, DescendingItMakesTheClassesAlike) {
  torch::manual_seed(3);
  torch::Tensor labels = Labels();
  torch::Tensor codes = Shifted(labels, 3.0).requires_grad_(true);
  auto spread = [&] {
    // Variance of the per-class means of the codes, over classes present.
    torch::NoGradGuard no_grad;
    torch::Tensor onehot = torch::one_hot(labels, kClasses).to(torch::kFloat);
    torch::Tensor counts = onehot.sum(0);
    torch::Tensor means = onehot.t().matmul(codes) / counts.clamp_min(1).unsqueeze(1);
    return means.index({counts > 0}).var(0).sum().item<double>();
  };
  const double before = spread();
  const double mmd_before = models::ClassMmd(codes, labels, kClasses).item<double>();
  torch::optim::Adam opt({codes}, torch::optim::AdamOptions(0.05));
  for (int i = 0; i < 200; ++i) {
    opt.zero_grad();
    models::ClassMmd(codes, labels, kClasses).backward();
    opt.step();
  }
  EXPECT_LT(models::ClassMmd(codes, labels, kClasses).item<double>(), 0.2 * mmd_before);
  EXPECT_LT(spread(), 0.2 * before);
}

TEST(ClassMmdTest, WeightedTermCarriesTheGradientOnlyWhenWeighted) {
  torch::manual_seed(4);
  torch::Tensor labels = Labels();
  torch::Tensor codes = Shifted(labels, 2.0).requires_grad_(true);
  const double value = models::ClassMmd(codes, labels, kClasses).item<double>();

  models::ClassMmdTerm off = models::WeightedClassMmd(codes, labels, kClasses, 0.0);
  EXPECT_DOUBLE_EQ(off.value, value);
  EXPECT_EQ(off.term.item<double>(), 0.0);
  EXPECT_FALSE(off.term.requires_grad());

  models::ClassMmdTerm on = models::WeightedClassMmd(codes, labels, kClasses, 2.5);
  EXPECT_DOUBLE_EQ(on.value, value);
  EXPECT_NEAR(on.term.item<double>(), 2.5 * value, 1e-6);
  on.term.backward();
  ASSERT_TRUE(codes.grad().defined());
  EXPECT_GT(codes.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace dfv
