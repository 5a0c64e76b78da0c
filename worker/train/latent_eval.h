// The latent-space part of the end-of-run evaluation (DESIGN.md, "What a job
// produces"): how well the class can be predicted from a latent code (an MLP
// and a linear SVM probe, accuracy and macro-F1 on train and test, beside
// chance), how well one code predicts the other (an MLP regressor), a t-SNE
// embedding of the codes and a scatter plot of it.
//
// Everything here runs on the CPU in float32 (codes on another device are
// copied), catches LibTorch's exceptions and reports them as a Status.
// Functions are safe to call from any one thread at a time; ProbeLatent
// changes process-wide torch state (see its comment).
#ifndef DFV_WORKER_TRAIN_LATENT_EVAL_H_
#define DFV_WORKER_TRAIN_LATENT_EVAL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace dfv::train {

// Classifier names accepted in ProbeOptions::classifiers.
inline constexpr char kMlpProbe[] = "mlp";
inline constexpr char kLinearSvmProbe[] = "linear_svm";

struct ProbeOptions {
  // Which probes to train: any of "mlp" and "linear_svm" (at least one).
  std::vector<std::string> classifiers = {kMlpProbe, kLinearSvmProbe};
  // Seeds the global torch generator (weights, shuffling, subsampling).
  uint64_t seed = 1;
  // Training codes beyond this many are subsampled (uniformly, without
  // replacement, by `seed`); the report says how many were used. <= 0: all.
  int64_t max_train_codes = 0;

  // MLP (seed 002's classifier): Linear D->hidden, BatchNorm1d, LeakyReLU
  // 0.2, Linear hidden->hidden, BatchNorm1d, LeakyReLU 0.2, Linear
  // hidden->classes; cross-entropy, Adam, minibatches.
  int64_t mlp_hidden = 256;
  int64_t mlp_epochs = 15;
  int64_t mlp_batch_size = 256;
  // Adam's learning rate, decayed linearly to 5% of it over the run.
  double mlp_learning_rate = 2e-3;

  // Linear SVM: one-vs-rest squared hinge, mean over samples of
  // sum_c max(0, 1 - y_c * (w_c . x + b_c))^2 with y_c = +1 for the true class
  // and -1 otherwise, plus svm_l2 / 2 * ||W||^2 (bias not regularised); this is
  // sklearn's LinearSVC objective with C = 1 / (svm_l2 * N). Weights start at
  // zero; minibatch Adam with the same linear decay as the MLP.
  double svm_l2 = 1e-4;
  int64_t svm_epochs = 30;
  int64_t svm_batch_size = 256;
  double svm_learning_rate = 1e-2;
};

struct ProbeScores {
  double train_accuracy = 0;
  double test_accuracy = 0;
  double train_macro_f1 = 0;
  double test_macro_f1 = 0;
};

// The accuracy of guessing, for reading a probe's accuracy against.
struct ChanceLevel {
  double majority = 0;  // always answering the most frequent class: its share of the labels
  double uniform = 0;   // answering uniformly at random: 1 / num_classes
};

// Chance levels of predicting `labels` ([N] non-negative integers); zeros
// for no labels or num_classes < 1.
ChanceLevel ChanceOf(const torch::Tensor& labels, int64_t num_classes);

struct ProbeReport {
  std::map<std::string, ProbeScores> scores;  // classifier name -> scores
  ChanceLevel chance;  // of the test labels
  int64_t train_codes_given = 0;
  int64_t train_codes_used = 0;  // < train_codes_given when subsampled
  int64_t test_codes = 0;
  double seconds = 0;  // wall time of the whole probe
};

// {"train_codes": .., "train_codes_used": .., "subsampled": bool,
//  "test_codes": .., "seconds": .., "chance": {"majority": .., "uniform": ..},
//  "mlp": {"train_accuracy": .., ...}, ...}
nlohmann::json ProbeReportToJson(const ProbeReport& report);

// Trains each classifier in `options` to predict `train_labels` ([N] integer,
// in [0, num_classes)) from `train_codes` ([N, D] float) and scores it on the
// training codes it used and on `test_codes` / `test_labels` ([M, D] / [M]).
// Codes are standardised with the (used) training codes' mean and std first.
//
// Reseeds the global torch generator with options.seed (torch::manual_seed)
// so the result is deterministic for a seed and thread count: call it only
// after training, never while another thread draws from that generator.
// Gradient mode is enabled inside even under a caller's NoGradGuard.
//
// Errors: INVALID_ARGUMENT for bad shapes or dtypes, mismatched N or D,
// labels out of range, non-finite codes, num_classes < 2, fewer than 2
// training or 1 test code, or an unknown classifier name; INTERNAL for
// anything LibTorch throws.
absl::StatusOr<ProbeReport> ProbeLatent(const torch::Tensor& train_codes,
                                        const torch::Tensor& train_labels,
                                        const torch::Tensor& test_codes,
                                        const torch::Tensor& test_labels, int64_t num_classes,
                                        const ProbeOptions& options = {});

struct RegressorOptions {
  // Seeds the global torch generator (weights, shuffling).
  uint64_t seed = 1;
  // The probe's MLP (ProbeOptions) with `targets` outputs and a squared
  // error loss on standardised targets; Adam with the same linear decay.
  int64_t hidden = 256;
  int64_t epochs = 15;
  int64_t batch_size = 256;
  double learning_rate = 2e-3;
};

struct CodePrediction {
  // Mean squared error per test code dimension, in the target's own units.
  double test_mse = 0;
  // The same for always predicting the training targets' mean: what an input
  // that says nothing about the target scores.
  double baseline_mse = 0;
  torch::Tensor test_predictions;  // [M, Dt] float32 on the CPU, target units
  int64_t train_codes = 0;
  double seconds = 0;
};

// {"test_mse": .., "baseline_mse": .., "train_codes": .., "seconds": ..}
nlohmann::json CodePredictionToJson(const CodePrediction& prediction);

// Trains an MLP regressor (seed 002's code predictors z -> s and s -> z)
// from `train_inputs` [N, Di] to `train_targets` [N, Dt] and predicts the
// targets of `test_inputs` [M, Di], scored against `test_targets` [M, Dt].
// Inputs and targets are standardised with the training set's mean and std.
// Reseeds the global torch generator and enables gradients like ProbeLatent.
//
// Errors: INVALID_ARGUMENT for non-2-D, non-floating or non-finite tensors,
// mismatched rows or dimensions, N < 2 or M < 1, bad options; INTERNAL for
// anything LibTorch throws.
absl::StatusOr<CodePrediction> PredictCode(const torch::Tensor& train_inputs, const torch::Tensor& train_targets,
                                           const torch::Tensor& test_inputs, const torch::Tensor& test_targets,
                                           const RegressorOptions& options = {});

// Macro-averaged F1 of integer class predictions against the truth (both [N]):
// the mean over classes of 2TP / (2TP + FP + FN), over the classes in
// [0, num_classes) that occur in `truth` or in `predicted` (as sklearn's
// f1_score(average="macro") does). Values outside [0, num_classes) count as
// wrong predictions of no class. 0 when nothing is counted. Shapes must match
// (CHECKed).
double MacroF1(const torch::Tensor& predicted, const torch::Tensor& truth, int64_t num_classes);

struct TsneOptions {
  // Effective number of neighbours; clamped to (N - 1) / 3 for small N.
  double perplexity = 30;
  // Gradient-descent iterations in all, and how many of the first use early
  // exaggeration (P multiplied by early_exaggeration) and initial_momentum.
  int64_t iterations = 1000;
  int64_t exaggeration_iterations = 250;
  double early_exaggeration = 12;
  double initial_momentum = 0.5;
  double final_momentum = 0.8;
  // Step size, with per-coordinate adaptive gains (Jacobs 1988), as in
  // van der Maaten's reference implementation.
  double learning_rate = 200;
  // Seeds the (local) generator of the initial embedding, N(0, 1e-4^2).
  uint64_t seed = 1;
  // Exact t-SNE keeps an N x N matrix: more points are refused (the caller
  // subsamples). About 2 s for 2,000 points of dimension 16 on one core.
  int64_t max_points = 5000;
};

// Exact t-SNE (van der Maaten and Hinton 2008) of `codes` [N, D] into [N, 2]
// (float32, CPU, centred): Gaussian affinities with a per-point bandwidth
// found by binary search for the perplexity, symmetrised; Student-t
// similarities in the embedding; KL-divergence gradient descent with early
// exaggeration, momentum and gains. Deterministic for a seed; does not touch
// the global torch generator. Single-threaded.
//
// Errors: INVALID_ARGUMENT for a non-2-D or non-finite input, N > max_points
// or bad options; INTERNAL for anything LibTorch throws. N <= 1 gives zeros.
absl::StatusOr<torch::Tensor> Tsne(const torch::Tensor& codes, const TsneOptions& options = {});

// What a scatter plot says about itself.
struct PlotLabels {
  // Drawn centred along the top (upper case, see common/raster.h), at twice
  // the font's size when it fits, cut with ".." when even the small font
  // does not; empty: no title band.
  std::string title;
  // The name of each class, drawn as a legend (a swatch of the class's
  // colour and its name, one row per class) down the right-hand side;
  // empty: no legend.
  std::vector<std::string> class_names;
};

// A size x size RGB scatter plot of `points` [N, 2] on white, scaled uniformly
// to fit with a margin, one filled dot (radius 2) per point coloured by
// `labels` [N] from a fixed palette (tab10 for the first ten classes, then
// golden-ratio hues; labels out of range are black). Points are drawn in a
// fixed shuffled order so no class systematically covers another; non-finite
// points are skipped. A title and a legend (`text`) take their room from the
// plot area, never from the image's size. Malformed input (shapes) gives a
// blank white image (with its title and legend); sizes below 16 are raised
// to 16.
Image8 ScatterPlot(const torch::Tensor& points, const torch::Tensor& labels, int64_t num_classes,
                   int size = 512, const PlotLabels& text = {});

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_LATENT_EVAL_H_
