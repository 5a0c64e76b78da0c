#include "worker/models/class_mmd.h"

#include <iterator>

namespace dfv::models {

torch::Tensor ClassMmd(const torch::Tensor& codes, const torch::Tensor& labels, int64_t num_classes) {
  const int64_t n = codes.size(0);
  if (n < 2) return torch::zeros({}, codes.options());
  // Squared distances between every pair of codes.
  const torch::Tensor norms = codes.pow(2).sum(1);
  const torch::Tensor sq = (norms.unsqueeze(1) + norms.unsqueeze(0) - 2 * codes.matmul(codes.t())).clamp_min(0);
  torch::Tensor scale;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor off_diagonal = ~torch::eye(n, torch::TensorOptions().dtype(torch::kBool).device(codes.device()));
    scale = sq.masked_select(off_diagonal).median().clamp_min(1e-12);
  }
  torch::Tensor kernel = torch::zeros_like(sq);
  const double widths[] = {0.25, 0.5, 1.0, 2.0, 4.0};
  for (double w : widths) kernel = kernel + torch::exp(-sq / (scale * w));
  kernel = kernel / static_cast<double>(std::size(widths));

  // Per class k: the unbiased estimate of MMD^2 between its codes and the
  // other classes' codes, from sums of the kernel within k, within the rest
  // and across (the diagonal, k(x, x) = 1, left out of the within sums).
  const torch::Tensor in_k = torch::one_hot(labels, num_classes).to(codes.scalar_type());  // [N, K]
  const torch::Tensor out_k = 1 - in_k;
  const torch::Tensor n_in = in_k.sum(0), n_out = out_k.sum(0);                          // [K]
  const torch::Tensor kin = kernel.matmul(in_k), kout = kernel.matmul(out_k);            // [N, K]
  const torch::Tensor within_in = (in_k * kin).sum(0) - n_in;                             // off-diagonal sums
  const torch::Tensor within_out = (out_k * kout).sum(0) - n_out;
  const torch::Tensor across = (in_k * kout).sum(0);
  const torch::Tensor usable = (n_in >= 2) & (n_out >= 2);
  const torch::Tensor a = n_in.clamp_min(2), b = n_out.clamp_min(2);
  const torch::Tensor mmd = within_in / (a * (a - 1)) + within_out / (b * (b - 1)) - 2 * across / (a * b);
  return (mmd * (n_in / static_cast<double>(n))).masked_select(usable).sum();
}

ClassMmdTerm WeightedClassMmd(const torch::Tensor& codes, const torch::Tensor& labels, int64_t num_classes,
                              double weight) {
  ClassMmdTerm result;
  if (weight > 0) {
    torch::Tensor mmd = ClassMmd(codes, labels, num_classes);
    result.value = mmd.item<double>();
    result.term = weight * mmd;
  } else {
    torch::NoGradGuard no_grad;
    result.value = ClassMmd(codes.detach(), labels, num_classes).item<double>();
    result.term = torch::zeros({}, codes.options());
  }
  return result;
}

}  // namespace dfv::models
