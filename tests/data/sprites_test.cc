#include "worker/data/sprites.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <vector>

namespace dfv::data {
namespace {

ImageSet Generate(uint64_t seed, SpriteSplit split, int64_t count, int size) {
  auto set = GenerateSprites(seed, split, count, size);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *std::move(set) : ImageSet{};
}

TEST(SpritesTest, SameSeedGivesSameBytes) {
  ImageSet a = Generate(7, SpriteSplit::kTrain, 300, 28);
  ImageSet b = Generate(7, SpriteSplit::kTrain, 300, 28);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.factors, b.factors);
}

TEST(SpritesTest, DifferentSeedOrSplitDiffers) {
  ImageSet a = Generate(7, SpriteSplit::kTrain, 100, 28);
  ImageSet b = Generate(8, SpriteSplit::kTrain, 100, 28);
  ImageSet test = Generate(7, SpriteSplit::kTest, 100, 28);
  EXPECT_NE(a.pixels, b.pixels);
  EXPECT_NE(a.factors, b.factors);
  EXPECT_NE(a.pixels, test.pixels);
  // Not merely shifted: no train image equals the test image at the same index.
  int equal = 0;
  for (int64_t i = 0; i < a.size; ++i) {
    equal += std::memcmp(a.Image(i), test.Image(i), static_cast<size_t>(a.ImageBytes())) == 0 ? 1 : 0;
  }
  EXPECT_EQ(equal, 0);
}

TEST(SpritesTest, FirstNOfALargerSetAreTheSame) {
  ImageSet small = Generate(3, SpriteSplit::kTest, 50, 32);
  ImageSet large = Generate(3, SpriteSplit::kTest, 100, 32);
  ASSERT_EQ(large.size, 100);
  EXPECT_TRUE(std::equal(small.pixels.begin(), small.pixels.end(), large.pixels.begin()));
  EXPECT_TRUE(std::equal(small.labels.begin(), small.labels.end(), large.labels.begin()));
  EXPECT_TRUE(std::equal(small.factors.begin(), small.factors.end(), large.factors.begin()));
}

TEST(SpritesTest, ShapeOfTheSet) {
  ImageSet set = Generate(1, SpriteSplit::kTrain, 10, 64);
  EXPECT_TRUE(ValidateImageSet(set).ok());
  EXPECT_EQ(set.channels, 3);
  EXPECT_EQ(set.height, 64);
  EXPECT_EQ(set.width, 64);
  EXPECT_EQ(set.num_classes, 30);
  ASSERT_EQ(set.class_names.size(), 30u);
  EXPECT_EQ(set.class_names[0], "red square");
  EXPECT_EQ(set.class_names[29], "magenta heart");
  EXPECT_EQ(set.factor_names, (std::vector<std::string>{"shape", "colour", "x", "y", "scale", "rotation"}));
  EXPECT_EQ(set.factors.size(), 60u);
}

TEST(SpritesTest, FactorsInRangeAndLabelsMatchShapeAndColour) {
  ImageSet set = Generate(11, SpriteSplit::kTrain, 2000, 28);
  std::set<int64_t> classes;
  for (int64_t i = 0; i < set.size; ++i) {
    const float* f = set.factors.data() + i * 6;
    int shape = static_cast<int>(f[0]);
    int colour = static_cast<int>(f[1]);
    ASSERT_EQ(static_cast<float>(shape), f[0]);
    ASSERT_EQ(static_cast<float>(colour), f[1]);
    ASSERT_GE(shape, 0);
    ASSERT_LT(shape, kSpriteNumShapes);
    ASSERT_GE(colour, 0);
    ASSERT_LT(colour, kSpriteNumColours);
    EXPECT_EQ(set.labels[static_cast<size_t>(i)], shape * kSpriteNumColours + colour);
    for (int k : {2, 3}) {
      EXPECT_GE(f[k], kSpriteMinPosition);
      EXPECT_LE(f[k], kSpriteMaxPosition);
    }
    EXPECT_GE(f[4], kSpriteMinScale);
    EXPECT_LE(f[4], kSpriteMaxScale);
    EXPECT_GE(f[5], 0.0f);
    EXPECT_LE(f[5], static_cast<float>(kSpriteMaxRotation));
    classes.insert(set.labels[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(classes.size(), 30u);  // every class appears
}

TEST(SpritesTest, FactorsMatchDrawSpriteFactors) {
  ImageSet set = Generate(5, SpriteSplit::kTest, 20, 28);
  for (int64_t i = 0; i < set.size; ++i) {
    SpriteFactors f = DrawSpriteFactors(5, SpriteSplit::kTest, i);
    EXPECT_EQ(set.labels[static_cast<size_t>(i)], f.Label());
    EXPECT_FLOAT_EQ(set.factors[static_cast<size_t>(i * 6 + 2)], static_cast<float>(f.x));
    EXPECT_FLOAT_EQ(set.factors[static_cast<size_t>(i * 6 + 5)], static_cast<float>(f.rotation));
  }
}

// Pixel (channel c, row y, column x) of image i.
uint8_t At(const ImageSet& set, int64_t i, int c, int y, int x) {
  return set.Image(i)[(c * set.height + y) * set.width + x];
}

TEST(SpritesTest, ShapeInsideFrameColourAtCentreAndAntialiasedEdges) {
  ImageSet set = Generate(2, SpriteSplit::kTrain, 500, 28);
  const int s = set.width;
  // The same colour index always paints the same centre colour.
  std::vector<std::vector<uint8_t>> centre_colour(kSpriteNumColours);
  int64_t blended = 0;
  for (int64_t i = 0; i < set.size; ++i) {
    const float* f = set.factors.data() + i * 6;
    // The frame's border rows and columns are background: the shape stays inside.
    for (int c = 0; c < 3; ++c) {
      for (int k = 0; k < s; ++k) {
        ASSERT_EQ(At(set, i, c, 0, k), At(set, 0, c, 0, 0));
        ASSERT_EQ(At(set, i, c, s - 1, k), At(set, 0, c, 0, 0));
        ASSERT_EQ(At(set, i, c, k, 0), At(set, 0, c, 0, 0));
        ASSERT_EQ(At(set, i, c, k, s - 1), At(set, 0, c, 0, 0));
      }
    }
    int cx = static_cast<int>(f[2] * s), cy = static_cast<int>(f[3] * s);
    std::vector<uint8_t> rgb = {At(set, i, 0, cy, cx), At(set, i, 1, cy, cx), At(set, i, 2, cy, cx)};
    auto& expected = centre_colour[static_cast<size_t>(f[1])];
    if (expected.empty()) expected = rgb;
    EXPECT_EQ(rgb, expected) << "image " << i;
    // Count pixels strictly between background and foreground (edges).
    for (int y = 0; y < s; ++y) {
      for (int x = 0; x < s; ++x) {
        uint8_t bg = At(set, 0, 0, 0, 0), fg = expected[0], v = At(set, i, 0, y, x);
        if (v != bg && v != fg) ++blended;
      }
    }
  }
  EXPECT_GT(blended, set.size * 5);  // anti-aliasing produced partial coverage
  // The five colours are distinct.
  std::set<std::vector<uint8_t>> distinct(centre_colour.begin(), centre_colour.end());
  EXPECT_EQ(distinct.size(), 5u);
}

int64_t Covered(const SpriteFactors& f, int size) {
  std::vector<uint8_t> img(3 * static_cast<size_t>(size) * size);
  RenderSprite(f, size, img.data());
  int64_t n = 0;
  for (int k = 0; k < size * size; ++k) n += img[static_cast<size_t>(k)] != img[0] ? 1 : 0;
  return n;
}

TEST(SpritesTest, ScaleAndRotationChangeTheImage) {
  SpriteFactors f;
  f.shape = 2;  // triangle
  f.colour = 0;
  f.scale = kSpriteMinScale;
  int64_t small = Covered(f, 64);
  f.scale = kSpriteMaxScale;
  int64_t big = Covered(f, 64);
  EXPECT_GT(big, small * 2);  // area grows with scale squared (2.8x)

  auto render = [](const SpriteFactors& f) {
    std::vector<uint8_t> img(3 * 64 * 64);
    RenderSprite(f, 64, img.data());
    return img;
  };
  SpriteFactors a = f, b = f;
  b.rotation = 0.5;
  EXPECT_NE(render(a), render(b));
  a.shape = b.shape = 1;  // a circle looks the same at any rotation
  EXPECT_EQ(render(a), render(b));
  // All six shapes differ from one another at the same pose.
  std::set<std::vector<uint8_t>> shapes;
  for (int s = 0; s < kSpriteNumShapes; ++s) {
    SpriteFactors g = f;
    g.shape = s;
    g.rotation = 0.3;
    shapes.insert(render(g));
  }
  EXPECT_EQ(shapes.size(), 6u);
}

TEST(SpritesTest, RejectsBadArguments) {
  EXPECT_EQ(GenerateSprites(1, SpriteSplit::kTrain, 10, 15).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateSprites(1, SpriteSplit::kTrain, 10, 129).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateSprites(1, SpriteSplit::kTrain, -1, 28).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(GenerateSprites(1, SpriteSplit::kTrain, 0, 16).ok());
  EXPECT_TRUE(GenerateSprites(1, SpriteSplit::kTrain, 1, 128).ok());
}

TEST(SpritesTest, TwentyThousandAt28IsFast) {
  auto start = std::chrono::steady_clock::now();
  ImageSet set = Generate(1, SpriteSplit::kTrain, 20000, 28);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(set.size, 20000);
  RecordProperty("seconds", std::to_string(seconds));
  std::printf("sprites: 20000 images at 28x28 in %.3f s\n", seconds);
  EXPECT_LT(seconds, 10.0);
}

}  // namespace
}  // namespace dfv::data
