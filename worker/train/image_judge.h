// The judge of swapped images (issue 16): a small CNN trained once inside the
// evaluation on a data set's real training images, predicting the class and,
// where the data set has ground-truth factors (sprites), chosen factors. The
// swap-consistency score asks it which class a decoded image shows.
//
// Network: conv 4x4 stride 2 (32), LeakyReLU 0.2, conv 4x4 stride 2 (64),
// batch norm, LeakyReLU, adaptive average pool to 4x4, linear 1024 -> 128,
// LeakyReLU, linear 128 -> classes + factors. Loss: cross-entropy on the
// class plus the mean squared error of the standardised factors; Adam.
//
// Thread-compatible: one thread at a time. Train reseeds the global torch
// generator (call it after training, like the latent probes).
#ifndef DFV_WORKER_TRAIN_IMAGE_JUDGE_H_
#define DFV_WORKER_TRAIN_IMAGE_JUDGE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "worker/data/image_set.h"
#include "worker/train/disentanglement.h"

namespace dfv::train {

struct JudgeOptions {
  uint64_t seed = 1;
  int64_t epochs = 2;        // passes over the training images
  int64_t batch_size = 64;
  double learning_rate = 1e-3;
  int64_t max_train_images = 0;  // a seeded subset of at most this many; <= 0: all
};

struct JudgeScores {
  double test_accuracy = 0;      // class accuracy on the test images
  std::vector<double> factor_r2;  // per judged factor, R^2 on the test images
  int64_t train_images = 0;
  double seconds = 0;            // training and scoring
};

class ImageJudge {
 public:
  // Trains a judge on `train` (images, labels and, for each index in
  // `factor_columns`, that column of train.factors) on `device`.
  // INVALID_ARGUMENT for a factor column the set does not have or fewer than
  // two images; INTERNAL for anything LibTorch throws.
  static absl::StatusOr<std::unique_ptr<ImageJudge>> Train(const data::ImageSet& train,
                                                           const std::vector<int64_t>& factor_columns,
                                                           const JudgeOptions& options, torch::Device device);

  // Class ([N] int64) and judged factors ([N, F] float, in the factors' own
  // units; undefined when no factor is judged) of images [N, C, H, W] in
  // [0, 1] on any device. Runs in eval mode without gradients. LibTorch
  // exceptions propagate (SwapConsistency catches them).
  Judgement Judge(const torch::Tensor& images);

  // Accuracy and factor R^2 on `test` (same channels, size and factors as
  // the training set), with the training time. INTERNAL if LibTorch throws.
  absl::StatusOr<JudgeScores> Score(const data::ImageSet& test);

  ~ImageJudge();

 private:
  struct Net;
  ImageJudge() = default;
  std::unique_ptr<Net> net_;
  std::vector<int64_t> factor_columns_;
  int64_t num_classes_ = 0;
  torch::Tensor factor_mean_, factor_std_;  // [F] of the training factors
  torch::Device device_ = torch::kCPU;
  int64_t train_images_ = 0;
  double train_seconds_ = 0;
};

// {"test_accuracy": .., "train_images": .., "seconds": .., "factor_r2": {name: ..}}
nlohmann::json JudgeScoresToJson(const JudgeScores& scores, const std::vector<std::string>& factor_names);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_IMAGE_JUDGE_H_
