#include "worker/train/latent_eval.h"

#include <chrono>
#include <array>
#include <cstdio>
#include <limits>
#include <set>

#include <gtest/gtest.h>

namespace dfv::train {
namespace {

struct Labelled {
  torch::Tensor codes;   // [N, D] float
  torch::Tensor labels;  // [N] long
};

// `n` points in `dim` dimensions, class i % classes, around class centres
// drawn N(0, spread^2) with unit noise (well separated for spread >= 3).
Labelled Blobs(const torch::Tensor& centres, int64_t n) {
  const int64_t classes = centres.size(0);
  torch::Tensor labels = torch::arange(n, torch::kLong).remainder(classes);
  torch::Tensor codes = centres.index_select(0, labels) + torch::randn({n, centres.size(1)});
  return {codes, labels};
}

TEST(MacroF1Test, HandComputedExample) {
  // class 0: TP 1, FP 1, FN 1 -> 0.5; class 1: TP 2, FP 1 -> 0.8;
  // class 2: TP 1, FN 1 -> 2/3. Class 3 never occurs and is not averaged.
  torch::Tensor truth = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  torch::Tensor pred = torch::tensor({0, 1, 1, 1, 2, 0}, torch::kLong);
  const double expected = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
  EXPECT_NEAR(MacroF1(pred, truth, 3), expected, 1e-12);
  EXPECT_NEAR(MacroF1(pred, truth, 4), expected, 1e-12);
  EXPECT_DOUBLE_EQ(MacroF1(truth, truth, 3), 1.0);
  // A class only predicted (never true) counts with F1 0.
  torch::Tensor pred3 = torch::tensor({0, 0, 1, 1, 2, 3}, torch::kLong);
  EXPECT_NEAR(MacroF1(pred3, truth, 4), (1.0 + 1.0 + 2.0 / 3.0 + 0.0) / 4.0, 1e-12);
  // Mismatched sizes are not scored.
  EXPECT_EQ(MacroF1(pred.slice(0, 0, 3), truth, 3), 0.0);
}

TEST(LatentProbeTest, SeparableBlobsAreLearnedByBothProbes) {
  torch::manual_seed(7);
  const int64_t classes = 10;
  torch::Tensor centres = 4 * torch::randn({classes, 16});
  Labelled train = Blobs(centres, 2000);
  Labelled test = Blobs(centres, 1000);
  auto report = ProbeLatent(train.codes, train.labels, test.codes, test.labels, classes);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->scores.size(), 2u);
  for (const char* name : {kMlpProbe, kLinearSvmProbe}) {
    ASSERT_TRUE(report->scores.count(name)) << name;
    const ProbeScores& s = report->scores.at(name);
    EXPECT_GT(s.test_accuracy, 0.95) << name;
    EXPECT_GT(s.test_macro_f1, 0.95) << name;
    EXPECT_GT(s.train_accuracy, 0.95) << name;
    EXPECT_GT(s.train_macro_f1, 0.95) << name;
  }
  EXPECT_EQ(report->train_codes_given, 2000);
  EXPECT_EQ(report->train_codes_used, 2000);
  EXPECT_EQ(report->test_codes, 1000);
}

TEST(LatentProbeTest, CodesIndependentOfLabelsStayNearChance) {
  torch::manual_seed(8);
  const int64_t classes = 10;
  torch::Tensor train_x = torch::randn({2000, 16});
  torch::Tensor train_y = torch::randint(0, classes, {2000}, torch::kLong);
  torch::Tensor test_x = torch::randn({1000, 16});
  torch::Tensor test_y = torch::randint(0, classes, {1000}, torch::kLong);
  auto report = ProbeLatent(train_x, train_y, test_x, test_y, classes);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const auto& [name, s] : report->scores) {
    EXPECT_LT(s.test_accuracy, 1.0 / classes + 0.1) << name;
    EXPECT_LT(s.test_macro_f1, 1.0 / classes + 0.1) << name;
  }
}

TEST(LatentProbeTest, IsDeterministicForASeed) {
  torch::manual_seed(9);
  torch::Tensor centres = 1.0 * torch::randn({4, 8});  // overlapping: scores below 1
  Labelled train = Blobs(centres, 600);
  Labelled test = Blobs(centres, 300);
  ProbeOptions options;
  options.seed = 42;
  options.max_train_codes = 500;  // the subsample is seeded too
  auto a = ProbeLatent(train.codes, train.labels, test.codes, test.labels, 4, options);
  torch::manual_seed(123);  // the global state before the call does not matter
  auto b = ProbeLatent(train.codes, train.labels, test.codes, test.labels, 4, options);
  ASSERT_TRUE(a.ok() && b.ok());
  for (const char* name : {kMlpProbe, kLinearSvmProbe}) {
    const ProbeScores& sa = a->scores.at(name);
    const ProbeScores& sb = b->scores.at(name);
    EXPECT_EQ(sa.train_accuracy, sb.train_accuracy) << name;
    EXPECT_EQ(sa.test_accuracy, sb.test_accuracy) << name;
    EXPECT_EQ(sa.train_macro_f1, sb.train_macro_f1) << name;
    EXPECT_EQ(sa.test_macro_f1, sb.test_macro_f1) << name;
    EXPECT_LT(sa.test_accuracy, 1.0) << name;
  }
}

TEST(LatentProbeTest, SubsamplesLargeTrainingSetsAndSaysSo) {
  torch::manual_seed(10);
  torch::Tensor centres = 4 * torch::randn({3, 16});
  Labelled train = Blobs(centres, 1200);
  Labelled test = Blobs(centres, 100);
  ProbeOptions options;
  options.classifiers = {kLinearSvmProbe};
  options.max_train_codes = 400;
  auto report = ProbeLatent(train.codes, train.labels, test.codes, test.labels, 3, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->train_codes_given, 1200);
  EXPECT_EQ(report->train_codes_used, 400);
  EXPECT_EQ(report->scores.count(kMlpProbe), 0u);
  EXPECT_GT(report->scores.at(kLinearSvmProbe).test_accuracy, 0.95);
  nlohmann::json j = ProbeReportToJson(*report);
  EXPECT_EQ(j["train_codes"], 1200);
  EXPECT_EQ(j["train_codes_used"], 400);
  EXPECT_EQ(j["subsampled"], true);
  EXPECT_EQ(j["test_codes"], 100);
  EXPECT_TRUE(j["linear_svm"].contains("test_macro_f1"));
  EXPECT_FALSE(j.contains("mlp"));
}

TEST(LatentProbeTest, TrainsEvenUnderTheCallersNoGradGuard) {
  torch::manual_seed(11);
  torch::Tensor centres = 4 * torch::randn({3, 16});
  Labelled train = Blobs(centres, 300);
  Labelled test = Blobs(centres, 100);
  torch::NoGradGuard no_grad;
  auto report = ProbeLatent(train.codes, train.labels, test.codes, test.labels, 3);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->scores.at(kMlpProbe).test_accuracy, 0.95);
  EXPECT_FALSE(torch::GradMode::is_enabled());  // restored
}

TEST(LatentProbeTest, BadInputIsInvalidArgument) {
  torch::Tensor x = torch::randn({20, 4});
  torch::Tensor y = torch::arange(20, torch::kLong).remainder(3);
  auto code = [](const absl::StatusOr<ProbeReport>& r) { return r.status().code(); };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(ProbeLatent(x, y, x, y, 3)), absl::StatusCode::kOk);
  // A label out of range, in train or test.
  torch::Tensor bad_y = y.clone();
  bad_y[5] = 3;
  EXPECT_EQ(code(ProbeLatent(x, bad_y, x, y, 3)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(x, y, x, bad_y, 3)), kInvalid);
  bad_y[5] = -1;
  EXPECT_EQ(code(ProbeLatent(x, bad_y, x, y, 3)), kInvalid);
  // Mismatched N and D.
  EXPECT_EQ(code(ProbeLatent(x, y.slice(0, 0, 19), x, y, 3)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(x, y, x.slice(0, 0, 10), y, 3)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(x, y, torch::randn({20, 5}), y, 3)), kInvalid);
  // Wrong ranks and dtypes, non-finite codes, too few classes.
  EXPECT_EQ(code(ProbeLatent(x.flatten(), y, x, y, 3)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(x, y.to(torch::kFloat32), x, y, 3)), kInvalid);
  torch::Tensor nan_x = x.clone();
  nan_x[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(code(ProbeLatent(nan_x, y, x, y, 3)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(x, y.remainder(1), x, y.remainder(1), 1)), kInvalid);
  EXPECT_EQ(code(ProbeLatent(torch::Tensor(), y, x, y, 3)), kInvalid);
  // Unknown classifier.
  ProbeOptions options;
  options.classifiers = {"random_forest"};
  EXPECT_EQ(code(ProbeLatent(x, y, x, y, 3, options)), kInvalid);
}

// Fraction of points whose nearest other point (in the embedding) has the
// same label.
double NearestNeighbourAgreement(const torch::Tensor& points, const torch::Tensor& labels) {
  torch::Tensor d = torch::cdist(points, points);
  d.fill_diagonal_(std::numeric_limits<float>::infinity());
  torch::Tensor nearest = d.argmin(1);
  return labels.index_select(0, nearest).eq(labels).to(torch::kDouble).mean().item<double>();
}

// Neighbourhood preservation: the mean over points of the share of a
// point's k nearest neighbours in `high` that are also among its k nearest in
// `low`.
double KnnPreservation(const torch::Tensor& high, const torch::Tensor& low, int64_t k) {
  auto neighbours = [k](const torch::Tensor& x) {
    torch::Tensor d = torch::cdist(x, x);
    d.fill_diagonal_(std::numeric_limits<float>::infinity());
    return std::get<1>(d.topk(k, 1, /*largest=*/false));
  };
  const torch::Tensor a = neighbours(high), b = neighbours(low);
  // For each point, count the members of a's row found in b's row.
  const torch::Tensor shared = a.unsqueeze(2).eq(b.unsqueeze(1)).any(2).sum(1);
  return shared.to(torch::kDouble).mean().item<double>() / static_cast<double>(k);
}

TEST(TsneTest, PreservesNeighbourhoodsOfSeparatedGaussianClusters) {
  torch::manual_seed(15);
  const int64_t classes = 5;
  // Clusters far apart, each with its own spread so within-cluster
  // neighbourhoods carry structure too.
  Labelled blobs = Blobs(8 * torch::randn({classes, 10}), 300);
  auto embedding = Tsne(blobs.codes);
  ASSERT_TRUE(embedding.ok()) << embedding.status();
  const double kept = KnnPreservation(blobs.codes, *embedding, 10);
  std::printf("10-NN preservation %.3f, 10-NN of random points %.3f\n", kept,
              KnnPreservation(blobs.codes, torch::randn({300, 2}), 10));
  // A random placement keeps about 10 / 299 of them; one that only kept the
  // clusters apart (random within a cluster) about 10 / 59.
  EXPECT_GT(kept, 0.35);
}

TEST(TsneTest, KeepsWellSeparatedBlobsApart) {
  torch::manual_seed(12);
  const int64_t classes = 6;
  Labelled blobs = Blobs(5 * torch::randn({classes, 16}), 360);
  auto embedding = Tsne(blobs.codes);
  ASSERT_TRUE(embedding.ok()) << embedding.status();
  ASSERT_EQ(embedding->sizes(), (std::vector<int64_t>{360, 2}));
  EXPECT_TRUE(torch::isfinite(*embedding).all().item<bool>());
  // Centred.
  EXPECT_LT(embedding->mean(0).abs().max().item<float>(), 1e-3);
  EXPECT_GT(NearestNeighbourAgreement(*embedding, blobs.labels), 0.9);
  // And the clusters are compact: each class's 2-D centroid is nearer to its
  // own points than any other class's centroid is, for almost all points.
  std::vector<torch::Tensor> centroids;
  for (int64_t c = 0; c < classes; ++c) {
    centroids.push_back(embedding->index_select(0, blobs.labels.eq(c).nonzero().flatten()).mean(0));
  }
  torch::Tensor nearest_centroid = torch::cdist(*embedding, torch::stack(centroids)).argmin(1);
  EXPECT_GT(nearest_centroid.eq(blobs.labels).to(torch::kDouble).mean().item<double>(), 0.95);
}

TEST(TsneTest, IsDeterministicForASeed) {
  torch::manual_seed(13);
  Labelled blobs = Blobs(3 * torch::randn({3, 8}), 150);
  TsneOptions options;
  options.iterations = 300;
  options.seed = 5;
  auto a = Tsne(blobs.codes, options);
  auto b = Tsne(blobs.codes, options);
  options.seed = 6;
  auto c = Tsne(blobs.codes, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(torch::equal(*a, *b));
  EXPECT_FALSE(torch::equal(*a, *c));
}

TEST(TsneTest, EdgeCasesAndBadInput) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(Tsne(torch::randn({10})).status().code(), kInvalid);
  EXPECT_EQ(Tsne(torch::randint(0, 3, {10, 2}, torch::kLong)).status().code(), kInvalid);
  torch::Tensor nan_x = torch::randn({10, 3});
  nan_x[2][1] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Tsne(nan_x).status().code(), kInvalid);
  TsneOptions small;
  small.max_points = 5;
  EXPECT_EQ(Tsne(torch::randn({6, 3}), small).status().code(), kInvalid);
  TsneOptions bad;
  bad.perplexity = 0;
  EXPECT_EQ(Tsne(torch::randn({6, 3}), bad).status().code(), kInvalid);
  // Tiny and degenerate inputs still give finite embeddings.
  auto one = Tsne(torch::randn({1, 3}));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->sizes(), (std::vector<int64_t>{1, 2}));
  auto few = Tsne(torch::randn({4, 3}));
  ASSERT_TRUE(few.ok());
  EXPECT_TRUE(torch::isfinite(*few).all().item<bool>());
  auto same = Tsne(torch::ones({20, 3}));  // all points equal
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(torch::isfinite(*same).all().item<bool>());
}

TEST(ScatterPlotTest, HasTheRequestedSizeAndColouredDots) {
  torch::Tensor points = torch::tensor({0.0f, 0.0f, 1.0f, 1.0f, 0.5f, 0.2f}).reshape({3, 2});
  torch::Tensor labels = torch::tensor({0, 1, 1}, torch::kLong);
  Image8 image = ScatterPlot(points, labels, 2, 256);
  ASSERT_EQ(image.width, 256);
  ASSERT_EQ(image.height, 256);
  ASSERT_EQ(image.channels, 3);
  ASSERT_EQ(image.pixels.size(), 256u * 256u * 3u);
  std::set<std::array<int, 3>> colours;
  int64_t non_white = 0;
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    std::array<int, 3> rgb = {image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]};
    if (rgb != std::array<int, 3>{255, 255, 255}) {
      ++non_white;
      colours.insert(rgb);
    }
  }
  EXPECT_GT(non_white, 3 * 9);  // three dots of radius 2
  EXPECT_LT(non_white, 3 * 30);
  // Exactly the first two palette colours (tab10 blue and orange).
  EXPECT_EQ(colours, (std::set<std::array<int, 3>>{{31, 119, 180}, {255, 127, 14}}));
  // (0, 0) is the lower-left point: blue, towards the bottom left.
  auto at = [&](int x, int y) {
    const uint8_t* p = &image.pixels[(static_cast<size_t>(y) * 256 + x) * 3];
    return std::array<int, 3>{p[0], p[1], p[2]};
  };
  bool blue_bottom_left = false;
  for (int y = 192; y < 256; ++y) {
    for (int x = 0; x < 64; ++x) blue_bottom_left |= at(x, y) == std::array<int, 3>{31, 119, 180};
  }
  EXPECT_TRUE(blue_bottom_left);
  // Malformed input gives a blank image of the requested size.
  Image8 blank = ScatterPlot(points, labels.slice(0, 0, 2), 2, 64);
  EXPECT_EQ(blank.width, 64);
  EXPECT_EQ(blank.pixels, std::vector<uint8_t>(64 * 64 * 3, 255));
}

// Timings at the sizes the evaluation uses (the whole 60,000-image training
// split of MNIST), one thread. Not part of the
// normal run: --gtest_also_run_disabled_tests --gtest_filter='*LatentTiming*'.
TEST(DISABLED_LatentTimingTest, FullSizeProbeAndTsne) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  torch::manual_seed(14);
  const int64_t classes = 10;
  torch::Tensor centres = 1.5 * torch::randn({classes, 16});
  Labelled train = Blobs(centres, 60000);
  Labelled test = Blobs(centres, 10000);
  for (int code = 0; code < 2; ++code) {
    auto report = ProbeLatent(train.codes, train.labels, test.codes, test.labels, classes);
    ASSERT_TRUE(report.ok()) << report.status();
    std::printf("probe %d: %s\n", code, ProbeReportToJson(*report).dump().c_str());
  }
  for (const char* name : {kMlpProbe, kLinearSvmProbe}) {
    ProbeOptions one;
    one.classifiers = {name};
    auto report = ProbeLatent(train.codes, train.labels, test.codes, test.labels, classes, one);
    ASSERT_TRUE(report.ok());
    std::printf("%s alone: %.2f s\n", name, report->seconds);
  }
  RegressorOptions regressor;
  auto prediction = PredictCode(train.codes, test.codes.index_select(0, torch::randint(0, 10000, {60000}, torch::kLong)),
                                test.codes, test.codes, regressor);
  ASSERT_TRUE(prediction.ok());
  std::printf("code predictor on 60000 x 16 -> 16: %.2f s\n", prediction->seconds);
  Labelled points = Blobs(centres, 2000);
  const auto start = std::chrono::steady_clock::now();
  auto embedding = Tsne(points.codes);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(embedding.ok());
  std::printf("t-SNE of 2000 x 16: %.2f s, 1-NN agreement %.3f\n", seconds,
              NearestNeighbourAgreement(*embedding, points.labels));
  const auto plot_start = std::chrono::steady_clock::now();
  Image8 image = ScatterPlot(*embedding, points.labels, classes);
  std::printf("scatter plot: %.3f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - plot_start).count());
  EXPECT_EQ(image.width, 512);
  torch::set_num_threads(threads);
}

}  // namespace
}  // namespace dfv::train
