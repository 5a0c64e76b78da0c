// The in-memory form of a labelled image data set, and the pure transforms
// (first-N, resize, channel conversion) that LoadDataset applies to it.
//
// An ImageSet is a plain value. Once loaded it is shared read-only as
// std::shared_ptr<const ImageSet> (DatasetSplits), so any number of threads
// may read it concurrently. No torch here: see tensor.h for the conversion to
// tensors.
#ifndef DFV_WORKER_DATA_IMAGE_SET_H_
#define DFV_WORKER_DATA_IMAGE_SET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv::data {

struct ImageSet {
  int64_t size = 0;  // number of images
  int channels = 0;  // 1 (grey) or 3 (RGB)
  int height = 0;
  int width = 0;
  // size * channels * height * width bytes, NCHW, 0 = black, 255 = white.
  std::vector<uint8_t> pixels;
  // size class labels, each in [0, num_classes).
  std::vector<int64_t> labels;
  int num_classes = 0;
  // num_classes human-readable names (e.g. "Trouser", "7", "red heart").
  std::vector<std::string> class_names;
  // Ground-truth generative factors, only for synthetic sets (sprites); empty
  // otherwise. factors is row-major size x factor_names.size().
  std::vector<std::string> factor_names;
  std::vector<float> factors;

  int64_t ImageBytes() const { return int64_t{channels} * height * width; }
  // The first byte of image i (no bounds check).
  const uint8_t* Image(int64_t i) const { return pixels.data() + i * ImageBytes(); }
  int64_t NumFactors() const { return static_cast<int64_t>(factor_names.size()); }
};

// A data set's two halves. Either may be shared by many readers.
struct DatasetSplits {
  std::shared_ptr<const ImageSet> train;
  std::shared_ptr<const ImageSet> test;
};

// Checks that an ImageSet is internally consistent: positive dimensions,
// channels 1 or 3, buffer sizes matching `size`, labels in range, names and
// factors of the declared lengths. INVALID_ARGUMENT naming the first problem.
absl::Status ValidateImageSet(const ImageSet& set);

// The first min(n, set.size) images with their labels and factors.
ImageSet TakeFirst(const ImageSet& set, int64_t n);

// Resamples every image to height x width (both >= 1) with an antialiased
// bilinear (triangle) filter whose support widens when shrinking, so both
// 28 -> 64 and 64 -> 28 look right (the same filter as PIL's BILINEAR and
// torchvision's antialiased resize). Returns a copy when the size is equal.
ImageSet ResizeImages(const ImageSet& set, int height, int width);

// Converts to `channels` (1 or 3): grey -> RGB replicates the plane, RGB ->
// grey takes ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded).
// INVALID_ARGUMENT for any other channel count.
absl::StatusOr<ImageSet> ConvertChannels(const ImageSet& set, int channels);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_IMAGE_SET_H_
