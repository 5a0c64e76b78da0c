#include "worker/data/dataset.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "common/jobspec/parse.h"
#include "tests/data/test_util.h"
#include "worker/data/idx.h"
#include "worker/data/sprites.h"

namespace dfv::data {
namespace {

using testing::Contains;
using testing::FreshDir;
using testing::WriteRaw;

constexpr char kFashionDir[] = "/usr/share/datasets/fashion-mnist";

// The resolved `dataset` section of a job file, as the trainer gets it: the
// kind's own fields hold their catalogue defaults unless `extra` sets them.
jobspec::DatasetSpec Spec(const std::string& kind, const std::string& path, const std::string& extra = "") {
  std::string yaml = "name: t\nmodel: vae\ndataset:\n  kind: " + kind + "\n" + extra;
  if (!path.empty()) yaml += "  path: \"" + path + "\"\n";
  absl::StatusOr<jobspec::JobSpec> spec = jobspec::ParseJobSpec(yaml, jobspec::ParseOptions{});
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? spec->dataset : jobspec::DatasetSpec{};
}

ImageSet TinyGrey(int64_t n, int64_t label_mod) {
  ImageSet set;
  set.size = n;
  set.channels = 1;
  set.height = 28;
  set.width = 28;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 784; ++k) set.pixels.push_back(static_cast<uint8_t>((i * 13 + k) % 256));
    set.labels.push_back(i % label_mod);
  }
  set.num_classes = static_cast<int>(label_mod);
  for (int c = 0; c < set.num_classes; ++c) set.class_names.push_back(std::to_string(c));
  return set;
}

// Writes a small MNIST-style folder; `gzip` picks the .gz or plain names.
std::string WriteTinyMnist(const std::string& dir, bool gzip, int64_t label_mod = 10) {
  std::string ext = gzip ? ".gz" : "";
  EXPECT_TRUE(WriteIdxImageSet(TinyGrey(30, label_mod), dir + "/train-images-idx3-ubyte" + ext,
                               dir + "/train-labels-idx1-ubyte" + ext, gzip)
                  .ok());
  EXPECT_TRUE(WriteIdxImageSet(TinyGrey(12, label_mod), dir + "/t10k-images-idx3-ubyte" + ext,
                               dir + "/t10k-labels-idx1-ubyte" + ext, gzip)
                  .ok());
  return dir;
}

TEST(DatasetTest, RealFashionMnistLoads) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << kFashionDir << " is absent (Debian package dataset-fashion-mnist)";
  }
  auto start = std::chrono::steady_clock::now();
  auto splits = LoadDataset(Spec("fashion_mnist", kFashionDir));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(splits.ok()) << splits.status();
  std::printf("fashion_mnist: loaded 60000 + 10000 images in %.3f s\n", seconds);
  RecordProperty("seconds", std::to_string(seconds));
  const ImageSet& train = *splits->train;
  const ImageSet& test = *splits->test;
  EXPECT_EQ(train.size, 60000);
  EXPECT_EQ(test.size, 10000);
  for (const ImageSet* set : {&train, &test}) {
    EXPECT_EQ(set->channels, 1);
    EXPECT_EQ(set->height, 28);
    EXPECT_EQ(set->width, 28);
    EXPECT_EQ(set->num_classes, 10);
    std::vector<int64_t> per_class(10);
    for (int64_t l : set->labels) {
      ASSERT_GE(l, 0);
      ASSERT_LT(l, 10);
      per_class[static_cast<size_t>(l)]++;
    }
    // Fashion-MNIST is balanced: 6000 / 1000 per class.
    for (int64_t n : per_class) EXPECT_EQ(n, set->size / 10);
  }
  EXPECT_EQ(train.class_names[0], "T-shirt/top");
  EXPECT_EQ(train.class_names[9], "Ankle boot");
  // Not all black: real images.
  int64_t ink = 0;
  for (int k = 0; k < 784; ++k) ink += train.pixels[static_cast<size_t>(k)] > 0 ? 1 : 0;
  EXPECT_GT(ink, 50);
}

TEST(DatasetTest, FashionMnistWithLimitsResizeAndRgb) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << kFashionDir << " is absent";
  }
  jobspec::DatasetSpec spec = Spec("fashion_mnist", kFashionDir);
  spec.train_limit = 500;
  spec.test_limit = 100;
  spec.image_size = 64;
  spec.channels = 3;
  auto splits = LoadDataset(spec);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train->size, 500);
  EXPECT_EQ(splits->test->size, 100);
  EXPECT_EQ(splits->train->height, 64);
  EXPECT_EQ(splits->train->channels, 3);
  EXPECT_TRUE(ValidateImageSet(*splits->train).ok());
}

TEST(DatasetTest, MnistFromPlainAndGzippedFolders) {
  for (bool gzip : {true, false}) {
    std::string dir = WriteTinyMnist(FreshDir(gzip ? "gz" : "plain"), gzip);
    auto splits = LoadDataset(Spec("mnist", dir));
    ASSERT_TRUE(splits.ok()) << splits.status();
    EXPECT_EQ(splits->train->size, 30);
    EXPECT_EQ(splits->test->size, 12);
    EXPECT_EQ(splits->train->num_classes, 10);
    EXPECT_EQ(splits->train->class_names[7], "7");
    EXPECT_EQ(splits->train->pixels, TinyGrey(30, 10).pixels);
  }
}

TEST(DatasetTest, LimitsResizeAndChannels) {
  std::string dir = WriteTinyMnist(FreshDir("d"), true);
  jobspec::DatasetSpec spec = Spec("mnist", dir);
  spec.train_limit = 7;
  spec.test_limit = 100;  // more than there are: all 12
  spec.image_size = 32;
  spec.channels = 3;
  auto splits = LoadDataset(spec);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train->size, 7);
  EXPECT_EQ(splits->test->size, 12);
  EXPECT_EQ(splits->train->height, 32);
  EXPECT_EQ(splits->train->width, 32);
  EXPECT_EQ(splits->train->channels, 3);
  EXPECT_EQ(splits->train->labels, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(DatasetTest, MissingFileIsNotFoundNamingIt) {
  std::string dir = FreshDir("empty");
  auto splits = LoadDataset(Spec("fashion_mnist", dir));
  ASSERT_EQ(splits.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(splits.status().message()), dir + "/train-images-idx3-ubyte.gz"));

  WriteTinyMnist(dir, true);
  std::filesystem::remove(dir + "/t10k-labels-idx1-ubyte.gz");
  splits = LoadDataset(Spec("mnist", dir));
  ASSERT_EQ(splits.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(splits.status().message()), "t10k-labels-idx1-ubyte"));
}

TEST(DatasetTest, CorruptFileIsAnErrorNamingIt) {
  std::string dir = WriteTinyMnist(FreshDir("d"), true);
  WriteRaw(dir + "/train-images-idx3-ubyte.gz", "this is not an IDX file at all");
  auto splits = LoadDataset(Spec("mnist", dir));
  ASSERT_FALSE(splits.ok());
  EXPECT_TRUE(Contains(std::string(splits.status().message()), dir + "/train-images-idx3-ubyte.gz"));
}

TEST(DatasetTest, LabelOutOfRangeIsDataLoss) {
  std::string dir = WriteTinyMnist(FreshDir("d"), true, /*label_mod=*/12);
  auto splits = LoadDataset(Spec("mnist", dir));
  ASSERT_EQ(splits.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(std::string(splits.status().message()), "train-labels-idx1-ubyte.gz"));
}

TEST(DatasetTest, Sprites) {
  jobspec::DatasetSpec spec = Spec("sprites", "", "  seed: 4\n  sprites_train: 300\n  sprites_test: 60\n");
  spec.image_size = 32;
  auto splits = LoadDataset(spec);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train->size, 300);
  EXPECT_EQ(splits->test->size, 60);
  EXPECT_EQ(splits->train->channels, 3);
  EXPECT_EQ(splits->train->height, 32);
  EXPECT_EQ(splits->train->num_classes, 30);
  EXPECT_EQ(splits->train->NumFactors(), 6);
  auto direct = GenerateSprites(4, SpriteSplit::kTrain, 300, 32);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(splits->train->pixels, direct->pixels);

  // A limit gives the first N of the same stream; grey by luma.
  spec.train_limit = 50;
  spec.channels = 1;
  auto limited = LoadDataset(spec);
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train->size, 50);
  EXPECT_EQ(limited->train->channels, 1);
  auto grey = ConvertChannels(TakeFirst(*direct, 50), 1);
  ASSERT_TRUE(grey.ok());
  EXPECT_EQ(limited->train->pixels, grey->pixels);
  EXPECT_EQ(limited->train->factors, TakeFirst(*direct, 50).factors);

  // Sizes outside the generator's range are generated near and resized
  // (the job schema allows only the generator's range today).
  spec.image_size = 8;
  auto tiny = LoadDataset(spec);
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->train->height, 8);
}

TEST(DatasetTest, KindWithoutALoaderIsInvalidArgumentNamingIt) {
  jobspec::DatasetSpec spec;
  spec.kind = "cifar";
  absl::StatusOr<DatasetSplits> splits = LoadDataset(spec);
  ASSERT_EQ(splits.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(splits.status().message()), "'cifar'")) << splits.status();
  EXPECT_TRUE(Contains(std::string(splits.status().message()), "sprites")) << splits.status();
}

TEST(DatasetTest, EveryFileALoaderWouldReadIsCheckedAgainstTheDataRoots) {
  const std::string root = FreshDir("roots_inside");
  const std::string outside = FreshDir("roots_outside");
  EXPECT_TRUE(CheckDatasetUnderRoots(Spec("mnist", root + "/mnist"), {root}).ok());
  absl::Status s = CheckDatasetUnderRoots(Spec("mnist", outside), {root});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "dataset.path: " + outside)) << s;
  // Generated data sets read nothing.
  EXPECT_TRUE(CheckDatasetUnderRoots(Spec("sprites", ""), {root}).ok());
  // image_folder's attribute file may be absolute: it is checked too.
  const std::string attribute = "  attribute: Eyeglasses\n";
  EXPECT_TRUE(CheckDatasetUnderRoots(Spec("image_folder", root, attribute), {root}).ok());
  s = CheckDatasetUnderRoots(
      Spec("image_folder", root, attribute + "  attr_file: " + outside + "/attrs.txt\n"), {root});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "dataset.attr_file: " + outside + "/attrs.txt")) << s;
  s = CheckDatasetUnderRoots(Spec("image_folder", root, attribute + "  attr_file: ../roots_outside/a.txt\n"), {root});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_EQ(CheckDatasetUnderRoots(Spec("mnist", root), {}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv::data
