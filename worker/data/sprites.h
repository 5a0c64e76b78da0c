// `sprites`: a procedural data set with known generative factors.
//
// Each image is one coloured shape on a dark background. Identity = shape x
// colour is the class (6 shapes x 5 colours = 30 classes, label = shape * 5 +
// colour); position, scale and rotation are continuous "unspecified" factors
// drawn uniformly, in ranges chosen so the shape always stays inside the
// frame. Edges are anti-aliased by 4x4 supersampling (pixel value = coverage
// blend of shape and background colour).
//
// Reproducibility: image i of a split is a pure function of (seed, split, i):
// its factors come from a splitmix64 stream keyed by those three values (no
// std:: distributions), so generating N or 2N images gives the same first N,
// and train and test are independent streams of the same seed. Pixels are
// computed with IEEE double arithmetic and std::sin/std::cos; bytes are
// identical across runs and machines with the same C library.
//
// Thread-safety: all functions are pure and may be called concurrently.
#ifndef DFV_WORKER_DATA_SPRITES_H_
#define DFV_WORKER_DATA_SPRITES_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/dataset.h"
#include "worker/data/image_set.h"

namespace dfv::data {

inline constexpr int kSpriteNumShapes = 6;
inline constexpr int kSpriteNumColours = 5;
inline constexpr int kSpriteNumClasses = kSpriteNumShapes * kSpriteNumColours;
inline constexpr std::array<const char*, kSpriteNumShapes> kSpriteShapeNames = {
    "square", "circle", "triangle", "diamond", "cross", "heart"};
inline constexpr std::array<const char*, kSpriteNumColours> kSpriteColourNames = {
    "red", "green", "blue", "yellow", "magenta"};

// Factor ranges. Positions are the shape's centre in frame units (0 = left or
// top edge, 1 = right or bottom edge); the shape fits in a circle of radius
// kSpriteRadius * scale frame units; rotation is counter-clockwise, radians.
// Note: a circle's rotation does not change its image, and a square's only
// modulo pi/2 (the factor is still recorded as drawn).
inline constexpr double kSpriteMinPosition = 0.3;
inline constexpr double kSpriteMaxPosition = 0.7;
inline constexpr double kSpriteMinScale = 0.6;
inline constexpr double kSpriteMaxScale = 1.0;
inline constexpr double kSpriteRadius = 0.28;
inline constexpr double kSpriteMaxRotation = 6.283185307179586;  // 2 pi, exclusive

inline constexpr int kSpriteMinImageSize = 16;
inline constexpr int kSpriteMaxImageSize = 128;

// factor_names of a sprites ImageSet, in column order.
inline constexpr std::array<const char*, 6> kSpriteFactorNames = {"shape", "colour", "x", "y", "scale",
                                                                  "rotation"};

enum class SpriteSplit : uint64_t { kTrain = 0, kTest = 1 };

struct SpriteFactors {
  int shape = 0;   // index into kSpriteShapeNames
  int colour = 0;  // index into kSpriteColourNames
  double x = 0.5, y = 0.5, scale = 1.0, rotation = 0.0;

  int Label() const { return shape * kSpriteNumColours + colour; }
};

// The factors of image `index` of `split` for `seed`.
SpriteFactors DrawSpriteFactors(uint64_t seed, SpriteSplit split, int64_t index);

// Renders one sprite into `out`: 3 x image_size x image_size bytes, CHW.
// image_size must be positive (the caller checks the supported range).
void RenderSprite(const SpriteFactors& factors, int image_size, uint8_t* out);

// "<colour> <shape>" for every label, e.g. label 0 = "red square".
std::vector<std::string> SpriteClassNames();

// Generates images 0..count-1 of `split`: an RGB ImageSet with labels, class
// names and the factors (as floats, columns kSpriteFactorNames). Runs on the
// calling thread. INVALID_ARGUMENT when count < 0 or image_size is outside
// [kSpriteMinImageSize, kSpriteMaxImageSize].
absl::StatusOr<ImageSet> GenerateSprites(uint64_t seed, SpriteSplit split, int64_t count, int image_size);

// The `sprites` DatasetLoader (dataset.h): GenerateSprites with the kind's own
// fields seed, sprites_train and sprites_test (spec.params), generating only
// the first train_limit / test_limit images when those are set, at
// spec.image_size clamped to the generator's range (LoadDataset resizes the
// rest). Takes no path.
absl::StatusOr<LoadedSplits> LoadSpritesDataset(const jobspec::DatasetSpec& spec);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_SPRITES_H_
