// How far the codes of each class lie from the codes of all classes: a
// training term that removes the class from a code meant to hold none (z).
//
// This is the Variational Fair Autoencoder's penalty (Louizos et al., 2016),
// with the class as the attribute to forget: the squared maximum mean
// discrepancy (MMD) between the batch's codes of class k and the batch's
// codes of the other classes, weighted by class k's share of the batch and
// summed over the classes. Its expectation is zero when every class's codes
// are distributed alike and, unlike an adversary, it has no network of its
// own to outwit.
#ifndef DFV_WORKER_MODELS_CLASS_MMD_H_
#define DFV_WORKER_MODELS_CLASS_MMD_H_

#include <torch/torch.h>

#include <cstdint>

namespace dfv::models {

// `codes` [N, D] float, `labels` [N] int64 in [0, num_classes). The kernel is
// the mean of Gaussian kernels exp(-|a - b|^2 / (w * m)) for w in {1/4, 1/2,
// 1, 2, 4}, where m is the median squared distance between distinct codes of
// the batch (held constant for the gradient), so the term does not change
// with the codes' scale. Unbiased (U-statistic) estimates, so a batch's
// value can be slightly negative; classes with fewer than 2 codes in the
// batch, or without 2 codes of other classes, add nothing. Differentiable in
// `codes`. Returns a scalar (0 for N < 2).
torch::Tensor ClassMmd(const torch::Tensor& codes, const torch::Tensor& labels, int64_t num_classes);

// What a model adds to its loss for a loss coefficient `weight` (>= 0):
// `term` = weight * ClassMmd(codes, labels, num_classes), and `value` =
// ClassMmd's value for the step's metrics. With weight 0 the value is still
// measured, without gradient, and the term is a zero scalar.
struct ClassMmdTerm {
  torch::Tensor term;
  double value = 0.0;
};
ClassMmdTerm WeightedClassMmd(const torch::Tensor& codes, const torch::Tensor& labels, int64_t num_classes,
                              double weight);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_CLASS_MMD_H_
