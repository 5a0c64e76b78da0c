// Scores of how well a model's codes split (issue 16, after the source
// reports): the mutual information gap against ground-truth factors
// (disentanglement_lib's mig.py), and swap consistency (decode the z of one
// image with the s of an image of another class and ask a classifier
// trained on real images which class the result shows).
//
// Everything runs on the CPU in float32/int64 (inputs on another device are
// copied except where a callback decides), catches LibTorch's exceptions and
// reports them as a Status. Functions are thread-compatible and touch no
// global state.
#ifndef DFV_WORKER_TRAIN_DISENTANGLEMENT_H_
#define DFV_WORKER_TRAIN_DISENTANGLEMENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace dfv::train {

// disentanglement_lib's histogram_discretize: each column of `values`
// [N, D] (float) cut into `bins` equal-width bins between its minimum and
// maximum (numpy.histogram's edges, numpy.digitize against all but the last
// edge), giving [N, D] int64 in [1, bins]. A constant column is all 1s.
// Evenly spaced values (a categorical factor's 0, 1, ..., k - 1) keep one
// bin each when k <= bins. INVALID_ARGUMENT for a non-2-D, non-floating or non-finite input, or
// bins < 1.
absl::StatusOr<torch::Tensor> HistogramDiscretise(const torch::Tensor& values, int64_t bins);

// Mutual information (nats) between two discrete variables given as [N]
// int64 (any values), as sklearn's mutual_info_score computes it from the
// contingency table. 0 for N = 0.
double DiscreteMutualInformation(const torch::Tensor& a, const torch::Tensor& b);

struct MigResult {
  double mig = 0;  // mean over factors of the normalised gap
  std::vector<double> factor_gaps;       // per factor: (top MI - second MI) / H(factor)
  std::vector<int64_t> factor_top_code;  // per factor: the code dimension with the most MI
  std::vector<double> factor_entropy;    // per factor, nats
  int64_t samples = 0;
};

// MIG over `codes` [N, D] (D >= 2) and discrete `factors` [N, K] int64
// (e.g. HistogramDiscretise of the ground truth): codes are discretised
// with `bins` bins, MI(code d, factor k) computed for every pair, and for
// each factor the gap between its two most informative codes divided by its
// entropy; the mean over factors. Factors with zero entropy (constant) are
// left out of the mean (their gap reads 0). INVALID_ARGUMENT for bad shapes,
// D < 2, N < 2 or bins < 1.
absl::StatusOr<MigResult> MutualInformationGap(const torch::Tensor& codes, const torch::Tensor& factors,
                                               int64_t bins = 20);

// {"mig": .., "samples": .., "factors": {name: {"gap": .., "top_code": .., "entropy": ..}}}
// with `factor_names` naming the factors (numbered when the count differs).
nlohmann::json MigResultToJson(const MigResult& result, const std::vector<std::string>& factor_names,
                               int64_t bins);

// For each of the first `count` indices a of `labels` ([N] int64), a partner
// b drawn uniformly (seeded, deterministic) among the indices whose label
// differs from a's. Returns {a, b}, each [M] int64 with M = min(count, N);
// pairs whose a has no other-class partner (all one class) are left out.
std::pair<torch::Tensor, torch::Tensor> DifferentClassPairs(const torch::Tensor& labels, int64_t count,
                                                            uint64_t seed);

// What a judge says about images: a class each ([N] int64) and, when it
// predicts factors, [N, F] float predictions (undefined otherwise).
struct Judgement {
  torch::Tensor classes;
  torch::Tensor factors;
};
// Decodes (s, z) to images; judges images. May run on any device; results
// are copied to the CPU.
using DecodeFn = std::function<torch::Tensor(const torch::Tensor& s, const torch::Tensor& z)>;
using JudgeFn = std::function<Judgement(const torch::Tensor& images)>;

struct SwapScores {
  int64_t pairs = 0;
  double b_class_rate = 0;  // swapped image judged to be of b's class (s's source)
  double a_class_rate = 0;  // judged to be of a's class (z's source): class leaking through z
  double chance = 0;        // 1 / num_classes
  // Per judged factor (columns of the judge's factors and `factor_values`):
  // how often the swapped image's predicted factor is nearer a's true value
  // than b's (ties count half); chance is 0.5. Empty without factors.
  std::vector<double> factor_kept_rates;
};

// Swap consistency over `pairs` (DifferentClassPairs): decode(s[b], z[a])
// in batches of `batch`, judged by `judge`. `s_codes` [N, Ds], `z_codes`
// [N, Dz] and `labels` [N] are the codes and classes of the same N images;
// `factor_values` [N, F] their true factors to compare the judge's factor
// predictions with (undefined: no factor scores). INVALID_ARGUMENT for
// mismatched shapes or an empty pair list; INTERNAL for anything the
// callbacks or LibTorch throw.
absl::StatusOr<SwapScores> SwapConsistency(const torch::Tensor& s_codes, const torch::Tensor& z_codes,
                                           const torch::Tensor& labels,
                                           const std::pair<torch::Tensor, torch::Tensor>& pairs,
                                           const DecodeFn& decode, const JudgeFn& judge, int64_t num_classes,
                                           const torch::Tensor& factor_values = {}, int64_t batch = 500);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_DISENTANGLEMENT_H_
