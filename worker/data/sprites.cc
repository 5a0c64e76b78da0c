#include "worker/data/sprites.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/random.h"

namespace dfv::data {
namespace {

// Distinguishes the sprites streams from every other use of the same seed.
constexpr uint64_t kSpritesStream = 0x5350524954455331ULL;  // "SPRITES1"
constexpr int kSuper = 4;                                   // 4x4 samples per pixel

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kBackground = {18, 18, 26};
constexpr std::array<Rgb, kSpriteNumColours> kColours = {{
    {232, 52, 52},    // red
    {52, 200, 72},    // green
    {64, 112, 248},   // blue
    {240, 212, 48},   // yellow
    {216, 64, 216},   // magenta
}};

// Inside tests in shape coordinates: u to the right, v up, every shape within
// the unit disk so any rotation stays inside the sprite's bounding circle.
// Sizes are chosen for roughly equal visible area.
struct Square {
  bool operator()(double u, double v) const { return std::abs(u) <= 0.7071 && std::abs(v) <= 0.7071; }
};
struct Circle {
  bool operator()(double u, double v) const { return u * u + v * v <= 0.64; }
};
struct Triangle {  // equilateral, circumradius 1, apex up
  bool operator()(double u, double v) const {
    return v >= -0.5 && 0.8660254 * u + 0.5 * v <= 0.5 && -0.8660254 * u + 0.5 * v <= 0.5;
  }
};
struct Diamond {  // a rhombus (not a rotated square: the rotation factor would alias it)
  bool operator()(double u, double v) const { return std::abs(u) / 0.6 + std::abs(v) <= 1.0; }
};
struct Cross {
  bool operator()(double u, double v) const {
    double au = std::abs(u), av = std::abs(v);
    return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
  }
};
struct Heart {  // (x^2 + y^2 - 1)^3 <= x^2 y^3, scaled and centred into the unit disk
  bool operator()(double u, double v) const {
    double x = 1.3 * u, y = 1.3 * v + 0.25;
    double q = x * x + y * y - 1.0;
    return q * q * q <= x * x * y * y * y;
  }
};

template <typename Inside>
void Render(const Inside& inside, const SpriteFactors& f, int size, uint8_t* out) {
  const int64_t plane = int64_t{size} * size;
  const Rgb fg = kColours[static_cast<size_t>(f.colour)];
  std::fill(out, out + plane, kBackground.r);
  std::fill(out + plane, out + 2 * plane, kBackground.g);
  std::fill(out + 2 * plane, out + 3 * plane, kBackground.b);

  const double cx = f.x * size, cy = f.y * size;
  const double radius = kSpriteRadius * f.scale * size;  // pixels
  const double inv_r = 1.0 / radius;
  const double c = std::cos(f.rotation), s = std::sin(f.rotation);
  const int x0 = std::max(0, static_cast<int>(std::floor(cx - radius)));
  const int x1 = std::min(size, static_cast<int>(std::ceil(cx + radius)));
  const int y0 = std::max(0, static_cast<int>(std::floor(cy - radius)));
  const int y1 = std::min(size, static_cast<int>(std::ceil(cy + radius)));
  const double reach = radius + 0.7072;  // a pixel further than this is background
  for (int py = y0; py < y1; ++py) {
    for (int px = x0; px < x1; ++px) {
      double ddx = px + 0.5 - cx, ddy = py + 0.5 - cy;
      if (ddx * ddx + ddy * ddy > reach * reach) continue;
      int hits = 0;
      for (int b = 0; b < kSuper; ++b) {
        // Image y grows downwards; shape v grows upwards.
        double vy = -((py + (b + 0.5) / kSuper) - cy) * inv_r;
        for (int a = 0; a < kSuper; ++a) {
          double dx = ((px + (a + 0.5) / kSuper) - cx) * inv_r;
          // Rotate the sample by -rotation, i.e. the shape by +rotation.
          double u = c * dx + s * vy;
          double v = -s * dx + c * vy;
          hits += inside(u, v) ? 1 : 0;
        }
      }
      if (hits == 0) continue;
      const int64_t k = int64_t{py} * size + px;
      auto blend = [hits](uint8_t bg, uint8_t fc) {
        // Integer blend, rounded: bg + (fc - bg) * hits / 16.
        int v = bg * (kSuper * kSuper - hits) + fc * hits;
        return static_cast<uint8_t>((v + kSuper * kSuper / 2) / (kSuper * kSuper));
      };
      out[k] = blend(kBackground.r, fg.r);
      out[plane + k] = blend(kBackground.g, fg.g);
      out[2 * plane + k] = blend(kBackground.b, fg.b);
    }
  }
}

}  // namespace

SpriteFactors DrawSpriteFactors(uint64_t seed, SpriteSplit split, int64_t index) {
  SplitMix64 rng(MixSeed({kSpritesStream, seed, static_cast<uint64_t>(split), static_cast<uint64_t>(index)}));
  SpriteFactors f;
  f.shape = static_cast<int>(UniformBelow(rng, kSpriteNumShapes));
  f.colour = static_cast<int>(UniformBelow(rng, kSpriteNumColours));
  f.x = UniformDouble(rng, kSpriteMinPosition, kSpriteMaxPosition);
  f.y = UniformDouble(rng, kSpriteMinPosition, kSpriteMaxPosition);
  f.scale = UniformDouble(rng, kSpriteMinScale, kSpriteMaxScale);
  f.rotation = UniformDouble(rng, 0.0, kSpriteMaxRotation);
  return f;
}

void RenderSprite(const SpriteFactors& f, int image_size, uint8_t* out) {
  switch (f.shape) {
    case 0: return Render(Square{}, f, image_size, out);
    case 1: return Render(Circle{}, f, image_size, out);
    case 2: return Render(Triangle{}, f, image_size, out);
    case 3: return Render(Diamond{}, f, image_size, out);
    case 4: return Render(Cross{}, f, image_size, out);
    default: return Render(Heart{}, f, image_size, out);
  }
}

std::vector<std::string> SpriteClassNames() {
  std::vector<std::string> names;
  for (int shape = 0; shape < kSpriteNumShapes; ++shape) {
    for (int colour = 0; colour < kSpriteNumColours; ++colour) {
      names.push_back(absl::StrCat(kSpriteColourNames[colour], " ", kSpriteShapeNames[shape]));
    }
  }
  return names;
}

absl::StatusOr<ImageSet> GenerateSprites(uint64_t seed, SpriteSplit split, int64_t count, int image_size) {
  if (count < 0) return absl::InvalidArgumentError(absl::StrCat("sprites: negative image count ", count));
  if (image_size < kSpriteMinImageSize || image_size > kSpriteMaxImageSize) {
    return absl::InvalidArgumentError(absl::StrCat("sprites: image_size ", image_size, " is outside [",
                                                   kSpriteMinImageSize, ", ", kSpriteMaxImageSize, "]"));
  }
  ImageSet set;
  set.size = count;
  set.channels = 3;
  set.height = image_size;
  set.width = image_size;
  set.num_classes = kSpriteNumClasses;
  set.class_names = SpriteClassNames();
  set.factor_names.assign(kSpriteFactorNames.begin(), kSpriteFactorNames.end());
  set.pixels.resize(static_cast<size_t>(count * set.ImageBytes()));
  set.labels.resize(static_cast<size_t>(count));
  set.factors.resize(static_cast<size_t>(count * set.NumFactors()));
  for (int64_t i = 0; i < count; ++i) {
    SpriteFactors f = DrawSpriteFactors(seed, split, i);
    RenderSprite(f, image_size, set.pixels.data() + i * set.ImageBytes());
    set.labels[static_cast<size_t>(i)] = f.Label();
    float* row = set.factors.data() + i * set.NumFactors();
    row[0] = static_cast<float>(f.shape);
    row[1] = static_cast<float>(f.colour);
    row[2] = static_cast<float>(f.x);
    row[3] = static_cast<float>(f.y);
    row[4] = static_cast<float>(f.scale);
    row[5] = static_cast<float>(f.rotation);
  }
  return set;
}

absl::StatusOr<LoadedSplits> LoadSpritesDataset(const jobspec::DatasetSpec& spec) {
  const auto seed = static_cast<uint64_t>(spec.params.GetInt("seed"));
  // Generate at the target size directly (sharper than resampling).
  const int size = static_cast<int>(std::clamp<int64_t>(spec.image_size, kSpriteMinImageSize, kSpriteMaxImageSize));
  // Image i depends only on (seed, split, i), so a limit just generates fewer.
  auto count = [](int64_t n, int64_t limit) { return limit > 0 ? std::min(n, limit) : n; };
  LoadedSplits splits;
  DFV_ASSIGN_OR_RETURN(splits.train, GenerateSprites(seed, SpriteSplit::kTrain,
                                                     count(spec.params.GetInt("sprites_train"), spec.train_limit), size));
  DFV_ASSIGN_OR_RETURN(splits.test, GenerateSprites(seed, SpriteSplit::kTest,
                                                    count(spec.params.GetInt("sprites_test"), spec.test_limit), size));
  return splits;
}

}  // namespace dfv::data
