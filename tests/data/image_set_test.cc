#include "worker/data/image_set.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace dfv::data {
namespace {

ImageSet Grey(int64_t n, int h, int w) {
  ImageSet set;
  set.size = n;
  set.channels = 1;
  set.height = h;
  set.width = w;
  set.pixels.assign(static_cast<size_t>(n * h * w), 0);
  for (int64_t i = 0; i < n; ++i) set.labels.push_back(i % 2);
  set.num_classes = 2;
  set.class_names = {"even", "odd"};
  return set;
}

double Mean(const ImageSet& set) {
  return std::accumulate(set.pixels.begin(), set.pixels.end(), 0.0) / static_cast<double>(set.pixels.size());
}

TEST(ImageSetTest, ValidateCatchesInconsistencies) {
  ImageSet set = Grey(3, 4, 4);
  EXPECT_TRUE(ValidateImageSet(set).ok());
  ImageSet bad = set;
  bad.pixels.pop_back();
  EXPECT_FALSE(ValidateImageSet(bad).ok());
  bad = set;
  bad.labels[1] = 2;
  EXPECT_FALSE(ValidateImageSet(bad).ok());
  bad = set;
  bad.channels = 2;
  EXPECT_FALSE(ValidateImageSet(bad).ok());
  bad = set;
  bad.factor_names = {"f"};
  EXPECT_FALSE(ValidateImageSet(bad).ok());
  bad.factors = {1, 2, 3};
  EXPECT_TRUE(ValidateImageSet(bad).ok());
}

TEST(ImageSetTest, TakeFirstKeepsPrefix) {
  ImageSet set = Grey(5, 2, 2);
  for (size_t k = 0; k < set.pixels.size(); ++k) set.pixels[k] = static_cast<uint8_t>(k);
  set.factor_names = {"f"};
  set.factors = {0, 1, 2, 3, 4};
  ImageSet first = TakeFirst(set, 3);
  EXPECT_EQ(first.size, 3);
  EXPECT_EQ(first.pixels, std::vector<uint8_t>(set.pixels.begin(), set.pixels.begin() + 12));
  EXPECT_EQ(first.labels, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(first.factors, (std::vector<float>{0, 1, 2}));
  EXPECT_TRUE(ValidateImageSet(first).ok());
  EXPECT_EQ(TakeFirst(set, 99).size, 5);
}

TEST(ImageSetTest, ResizeKeepsConstantImagesConstant) {
  ImageSet set = Grey(2, 28, 28);
  std::fill(set.pixels.begin(), set.pixels.begin() + 784, 200);
  std::fill(set.pixels.begin() + 784, set.pixels.end(), 37);
  for (int size : {64, 28, 16, 7, 100}) {
    ImageSet r = ResizeImages(set, size, size);
    ASSERT_EQ(r.height, size);
    ASSERT_EQ(r.width, size);
    ASSERT_TRUE(ValidateImageSet(r).ok());
    for (int64_t k = 0; k < size * size; ++k) {
      ASSERT_EQ(r.pixels[static_cast<size_t>(k)], 200) << size;
      ASSERT_EQ(r.pixels[static_cast<size_t>(size * size + k)], 37) << size;
    }
    EXPECT_EQ(r.labels, set.labels);
  }
}

TEST(ImageSetTest, DownsamplingAveragesArea) {
  // Alternating columns 0 / 255: a point-sampling resize would give all 0 or
  // all 255; an area-correct one gives mid grey everywhere.
  ImageSet set = Grey(1, 64, 64);
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) set.pixels[static_cast<size_t>(y * 64 + x)] = x % 2 ? 255 : 0;
  }
  for (int size : {32, 28}) {
    ImageSet r = ResizeImages(set, size, size);
    for (int y = 0; y < size; ++y) {
      for (int x = 1; x < size - 1; ++x) {  // borders see a truncated filter
        int v = r.pixels[static_cast<size_t>(y * size + x)];
        EXPECT_NEAR(v, 128, 20) << size << " at " << x;
      }
    }
  }
}

TEST(ImageSetTest, UpsamplingIsSmoothAndPreservesMean) {
  ImageSet set = Grey(1, 28, 28);
  for (int y = 0; y < 28; ++y) {
    for (int x = 0; x < 28; ++x) set.pixels[static_cast<size_t>(y * 28 + x)] = x < 14 ? 0 : 255;
  }
  ImageSet up = ResizeImages(set, 64, 64);
  // A step edge becomes a monotonic ramp, no overshoot, same mean.
  for (int y = 0; y < 64; ++y) {
    for (int x = 1; x < 64; ++x) {
      ASSERT_LE(up.pixels[static_cast<size_t>(y * 64 + x - 1)], up.pixels[static_cast<size_t>(y * 64 + x)]);
    }
  }
  EXPECT_NEAR(Mean(up), Mean(set), 1.0);
  int intermediate = 0;
  for (int x = 0; x < 64; ++x) intermediate += (up.pixels[static_cast<size_t>(x)] % 255) != 0 ? 1 : 0;
  EXPECT_GE(intermediate, 2);
  // 28 -> 64 -> 28 comes back close.
  ImageSet back = ResizeImages(up, 28, 28);
  double max_err = 0;
  for (size_t k = 0; k < set.pixels.size(); ++k) {
    max_err = std::max(max_err, std::abs(static_cast<double>(back.pixels[k]) - set.pixels[k]));
  }
  EXPECT_LE(max_err, 80.0);  // only next to the edge
  EXPECT_NEAR(Mean(back), Mean(set), 1.0);
}

TEST(ImageSetTest, ResizeNonSquare) {
  ImageSet set = Grey(1, 10, 20);
  ImageSet r = ResizeImages(set, 5, 40);
  EXPECT_EQ(r.height, 5);
  EXPECT_EQ(r.width, 40);
  EXPECT_EQ(r.pixels.size(), 200u);
}

TEST(ImageSetTest, GreyToRgbReplicates) {
  ImageSet set = Grey(2, 2, 2);
  for (size_t k = 0; k < set.pixels.size(); ++k) set.pixels[k] = static_cast<uint8_t>(10 * k);
  auto rgb = ConvertChannels(set, 3);
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->channels, 3);
  ASSERT_TRUE(ValidateImageSet(*rgb).ok());
  for (int64_t i = 0; i < 2; ++i) {
    for (int c = 0; c < 3; ++c) {
      for (int k = 0; k < 4; ++k) EXPECT_EQ(rgb->Image(i)[c * 4 + k], set.Image(i)[k]);
    }
  }
}

TEST(ImageSetTest, RgbToGreyUsesLuma) {
  ImageSet set = Grey(1, 1, 4);
  set.channels = 3;
  // Pixels: pure red, pure green, pure blue, white.
  set.pixels = {255, 0, 0, 255, /*G*/ 0, 255, 0, 255, /*B*/ 0, 0, 255, 255};
  auto grey = ConvertChannels(set, 1);
  ASSERT_TRUE(grey.ok());
  EXPECT_EQ(grey->channels, 1);
  EXPECT_EQ(grey->pixels, (std::vector<uint8_t>{76, 150, 29, 255}));
  EXPECT_EQ(ConvertChannels(set, 2).status().code(), absl::StatusCode::kInvalidArgument);
  auto same = ConvertChannels(set, 3);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->pixels, set.pixels);
}

}  // namespace
}  // namespace dfv::data
