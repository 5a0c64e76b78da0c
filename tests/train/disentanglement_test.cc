// The evaluation's scores on synthetic codes with a known answer: chance
// levels, code predictors, MIG and swap consistency (issue 16's tests).
#include "worker/train/disentanglement.h"

#include <gtest/gtest.h>

#include <cmath>

#include "worker/train/latent_eval.h"

namespace dfv::train {
namespace {

TEST(ChanceTest, MajorityShareAndUniform) {
  const ChanceLevel c = ChanceOf(torch::tensor({0, 0, 0, 1, 2, 2}, torch::kLong), 4);
  EXPECT_DOUBLE_EQ(c.majority, 0.5);
  EXPECT_DOUBLE_EQ(c.uniform, 0.25);
  EXPECT_DOUBLE_EQ(ChanceOf(torch::zeros({0}, torch::kLong), 3).majority, 0.0);
}

TEST(ChanceTest, ProbeReportCarriesTheTestLabelsChance) {
  torch::manual_seed(3);
  torch::Tensor train_x = torch::randn({200, 4}), test_x = torch::randn({100, 4});
  torch::Tensor train_y = torch::randint(0, 3, {200}, torch::kLong);
  torch::Tensor test_y = torch::cat({torch::zeros({70}, torch::kLong), torch::ones({30}, torch::kLong)});
  ProbeOptions options;
  options.classifiers = {kLinearSvmProbe};
  auto report = ProbeLatent(train_x, train_y, test_x, test_y, 3, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_DOUBLE_EQ(report->chance.majority, 0.7);
  EXPECT_DOUBLE_EQ(report->chance.uniform, 1.0 / 3);
  const nlohmann::json j = ProbeReportToJson(*report);
  EXPECT_DOUBLE_EQ(j["chance"]["majority"].get<double>(), 0.7);
  EXPECT_FALSE(j["subsampled"].get<bool>());  // the whole training set by default
}

TEST(CodePredictorTest, LearnsAFunctionOfTheInputAndNotNoise) {
  torch::manual_seed(4);
  // s = a smooth function of z: the predictor gets far below the baseline.
  torch::Tensor z_train = torch::randn({3000, 8}), z_test = torch::randn({500, 8});
  torch::Tensor w = torch::randn({8, 4});
  auto target = [&](const torch::Tensor& z) { return torch::tanh(z.matmul(w) / std::sqrt(8.0)) * 3 + 1; };
  RegressorOptions options;
  options.epochs = 10;
  auto good = PredictCode(z_train, target(z_train), z_test, target(z_test), options);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_LT(good->test_mse, 0.1 * good->baseline_mse) << good->test_mse << " vs " << good->baseline_mse;
  EXPECT_EQ(good->test_predictions.sizes(), (std::vector<int64_t>{500, 4}));
  // Independent noise: nothing to learn, no better than the mean.
  auto noise = PredictCode(z_train, torch::randn({3000, 4}), z_test, torch::randn({500, 4}), options);
  ASSERT_TRUE(noise.ok()) << noise.status();
  EXPECT_GT(noise->test_mse, 0.95 * noise->baseline_mse);
  EXPECT_NEAR(noise->baseline_mse, 1.0, 0.1);
  // Bad shapes are refused.
  EXPECT_EQ(PredictCode(z_train, torch::randn({10, 4}), z_test, target(z_test)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DiscretiseTest, MatchesNumpyHistogramAndKeepsCategories) {
  torch::Tensor v = torch::tensor({0.0, 0.1, 0.5, 0.99, 1.0}, torch::kDouble).reshape({5, 1});
  auto d = HistogramDiscretise(v.to(torch::kFloat32), 10);
  ASSERT_TRUE(d.ok());
  // numpy.digitize(v, numpy.histogram(v, 10)[1][:-1]) = [1, 2, 6, 10, 10]
  EXPECT_TRUE(torch::equal(d->flatten(), torch::tensor({1, 2, 6, 10, 10}, torch::kLong)));
  auto cat = HistogramDiscretise(torch::arange(6, torch::kFloat32).reshape({6, 1}), 20);
  ASSERT_TRUE(cat.ok());
  EXPECT_EQ(std::get<0>(at::_unique(cat->flatten())).numel(), 6);
  EXPECT_EQ(HistogramDiscretise(torch::ones({3}), 20).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MutualInformationTest, MatchesHandComputedValues) {
  torch::Tensor a = torch::tensor({0, 0, 1, 1}, torch::kLong);
  EXPECT_NEAR(DiscreteMutualInformation(a, a), std::log(2.0), 1e-12);  // = H(a)
  EXPECT_NEAR(DiscreteMutualInformation(a, torch::tensor({0, 1, 0, 1}, torch::kLong)), 0.0, 1e-12);
  EXPECT_NEAR(DiscreteMutualInformation(a, torch::tensor({5, 5, 9, 9}, torch::kLong)), std::log(2.0), 1e-12);
}

TEST(MigTest, NearOneForACodeCopyingTheFactorsAndNearZeroForNoise) {
  torch::manual_seed(5);
  const int64_t n = 5000;
  torch::Tensor factors = torch::stack({torch::randint(0, 6, {n}, torch::kLong),
                                        torch::randint(0, 5, {n}, torch::kLong),
                                        torch::randint(0, 10, {n}, torch::kLong)},
                                       1);
  // Each factor copied into its own code dimension, plus two noise dimensions.
  torch::Tensor copy = torch::cat({factors.to(torch::kFloat32), torch::randn({n, 2})}, 1);
  auto good = MutualInformationGap(copy, factors, 20);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_GT(good->mig, 0.95);
  EXPECT_EQ(good->factor_top_code, (std::vector<int64_t>{0, 1, 2}));
  // A code that ignores the factors.
  auto noise = MutualInformationGap(torch::randn({n, 5}), factors, 20);
  ASSERT_TRUE(noise.ok());
  EXPECT_LT(noise->mig, 0.02);
  // One factor spread over two dimensions equally: informative but no gap.
  torch::Tensor twice = torch::cat({factors.slice(1, 0, 1), factors.slice(1, 0, 1)}, 1).to(torch::kFloat32);
  auto entangled = MutualInformationGap(twice, factors.slice(1, 0, 1), 20);
  ASSERT_TRUE(entangled.ok());
  EXPECT_LT(entangled->mig, 0.01);
  const nlohmann::json j = MigResultToJson(*good, {"a", "b", "c"}, 20);
  EXPECT_GT(j["factors"]["c"]["gap"].get<double>(), 0.95);
  EXPECT_EQ(MutualInformationGap(torch::randn({10, 1}), factors.slice(0, 0, 10), 20).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SwapPairsTest, PartnersAreOfAnotherClassAndDeterministic) {
  torch::Tensor labels = torch::arange(100, torch::kLong).remainder(4);
  auto [a, b] = DifferentClassPairs(labels, 60, 7);
  ASSERT_EQ(a.numel(), 60);
  EXPECT_TRUE(torch::equal(a, torch::arange(60, torch::kLong)));
  EXPECT_FALSE(labels.index_select(0, a).eq(labels.index_select(0, b)).any().item<bool>());
  auto again = DifferentClassPairs(labels, 60, 7);
  EXPECT_TRUE(torch::equal(b, again.second));
  EXPECT_EQ(DifferentClassPairs(torch::zeros({5}, torch::kLong), 5, 1).first.numel(), 0);
}

// Test doubles: "images" are [N, 2] rows (class, position). A decoder that
// obeys s paints s's class with z's position; one that ignores s paints z's
// own class. The judge reads the class (and the position as a factor).
struct SwapWorld {
  static constexpr int64_t kClasses = 5;
  torch::Tensor labels, positions, s, z;
  SwapWorld() {
    torch::manual_seed(6);
    labels = torch::arange(400, torch::kLong).remainder(kClasses);
    positions = torch::rand({400, 1});
    s = torch::nn::functional::one_hot(labels, kClasses).to(torch::kFloat32);  // s says the class
    z = torch::cat({positions, labels.unsqueeze(1).to(torch::kFloat32)}, 1);   // z: position (and class)
  }
};

Judgement ReadImages(const torch::Tensor& images) {
  return {images.select(1, 0).round().to(torch::kLong), images.slice(1, 1, 2)};
}

TEST(SwapConsistencyTest, NearOneWhenTheDecoderObeysSAndNearChanceWhenItIgnoresS) {
  SwapWorld w;
  const auto pairs = DifferentClassPairs(w.labels, 400, 3);
  auto obeys = [](const torch::Tensor& s, const torch::Tensor& z) {
    return torch::cat({s.argmax(1, true).to(torch::kFloat32), z.slice(1, 0, 1)}, 1);
  };
  auto good = SwapConsistency(w.s, w.z, w.labels, pairs, obeys, ReadImages, SwapWorld::kClasses, w.positions, 64);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->pairs, 400);
  EXPECT_DOUBLE_EQ(good->b_class_rate, 1.0);
  EXPECT_DOUBLE_EQ(good->a_class_rate, 0.0);
  EXPECT_DOUBLE_EQ(good->chance, 0.2);
  ASSERT_EQ(good->factor_kept_rates.size(), 1u);
  EXPECT_GT(good->factor_kept_rates[0], 0.99);  // z's position kept

  // Ignores s: the image shows z's own class. Also a decoder that draws a
  // random class: near chance.
  auto ignores = [](const torch::Tensor& s, const torch::Tensor& z) {
    return torch::cat({z.slice(1, 1, 2), z.slice(1, 0, 1)}, 1);
  };
  auto bad = SwapConsistency(w.s, w.z, w.labels, pairs, ignores, ReadImages, SwapWorld::kClasses, w.positions);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_DOUBLE_EQ(bad->b_class_rate, 0.0);
  EXPECT_DOUBLE_EQ(bad->a_class_rate, 1.0);
  auto random = [](const torch::Tensor& s, const torch::Tensor& z) {
    return torch::cat({torch::randint(0, SwapWorld::kClasses, {s.size(0), 1}).to(torch::kFloat32),
                       torch::rand({s.size(0), 1})},
                      1);
  };
  auto chance = SwapConsistency(w.s, w.z, w.labels, pairs, random, ReadImages, SwapWorld::kClasses, w.positions);
  ASSERT_TRUE(chance.ok());
  EXPECT_NEAR(chance->b_class_rate, 0.2, 0.07);
  EXPECT_NEAR(chance->factor_kept_rates[0], 0.5, 0.1);

  // A throwing decoder is an error, not a crash.
  auto throws = [](const torch::Tensor&, const torch::Tensor&) -> torch::Tensor { TORCH_CHECK(false, "boom"); };
  EXPECT_EQ(SwapConsistency(w.s, w.z, w.labels, pairs, throws, ReadImages, 5).status().code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace dfv::train
