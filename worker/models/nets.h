// Network building blocks shared by the catalogue's models. Shapes adapt to
// the image size (16..128) and channel count (1 or 3); at 28x28 grey the
// encoder and decoder are exactly the reference networks of seeds 002/004
// (DESIGN.md, "Reference details for 28x28 inputs").
#ifndef DFV_WORKER_MODELS_NETS_H_
#define DFV_WORKER_MODELS_NETS_H_

#include <torch/torch.h>

namespace dfv::models {

// Initialises every Conv, ConvTranspose and Linear weight from N(0, std) and
// its bias to zero (the references use std 0.05).
void InitNormal(torch::nn::Module& module, double std);

// 5x5 stride-2 convolutions (padding 1) with instance norm and ReLU:
// channels -> 16 -> 32 -> 64 (28 -> 13 -> 6 -> 2), plus a fourth 64 -> 128
// layer for images of 48 pixels and more. Output: flattened features.
class ConvEncoderImpl : public torch::nn::Module {
 public:
  ConvEncoderImpl(int64_t channels, int64_t image_size);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t feature_dim() const { return feature_dim_; }

 private:
  torch::nn::Sequential layers_;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(ConvEncoder);

// From a [N, 128, b, b] feature map to [N, channels, S, S] through 4x4
// stride-2 transposed convolutions 128 -> 32 -> 16 -> channels with instance
// norm and LeakyReLU(0.2). At S = 28, b = 2 and the layers are the reference's
// (2 -> 6 -> 14 -> 28); otherwise b = ceil(S / 8), each layer doubles, and the
// centre S x S is kept. `base()` tells callers the b to produce.
class DeconvTrunkImpl : public torch::nn::Module {
 public:
  enum class Output { kSigmoid, kTanh };
  DeconvTrunkImpl(int64_t channels, int64_t image_size, Output output);
  torch::Tensor forward(const torch::Tensor& features);
  int64_t base() const { return base_; }
  static int64_t BaseFor(int64_t image_size) { return image_size == 28 ? 2 : (image_size + 7) / 8; }

 private:
  torch::nn::Sequential layers_;
  int64_t image_size_;
  int64_t base_;
  Output output_;
};
TORCH_MODULE(DeconvTrunk);

// What SplitEncoder produces: the unspecified code z as mean and
// log-variance, and the specified code s.
struct SplitCodes {
  torch::Tensor mu, logvar, s;
};

// The reference encoder of the disentangling models (seeds 002, 004):
// ConvEncoder, then linear heads for z's mean, z's log-variance and s.
class SplitEncoderImpl : public torch::nn::Module {
 public:
  SplitEncoderImpl(int64_t channels, int64_t image_size, int64_t z_dim, int64_t s_dim);
  SplitCodes forward(const torch::Tensor& x);

 private:
  ConvEncoder trunk_{nullptr};
  torch::nn::Linear mu_{nullptr}, logvar_{nullptr}, s_{nullptr};
};
TORCH_MODULE(SplitEncoder);

// The disentangling decoder(z, s): linear z -> F/2 and s -> F/2 with
// LeakyReLU(0.2), concatenated into a [N, 128, b, b] map, then DeconvTrunk
// with a sigmoid (F = 128 b^2; 256 + 256 at 28x28 as in the reference).
class SplitDecoderImpl : public torch::nn::Module {
 public:
  SplitDecoderImpl(int64_t z_dim, int64_t s_dim, int64_t channels, int64_t image_size);
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& s);

 private:
  torch::nn::Linear z_in_{nullptr}, s_in_{nullptr};
  DeconvTrunk trunk_{nullptr};
};
TORCH_MODULE(SplitDecoder);

// Reparameterisation: mu + eps * exp(logvar / 2) with eps ~ N(0, I).
torch::Tensor Reparameterize(const torch::Tensor& mu, const torch::Tensor& logvar, const torch::Tensor& eps);

// KL(N(mu, exp(logvar)) || N(0, I)) summed over every element.
torch::Tensor KlDivergenceSum(const torch::Tensor& mu, const torch::Tensor& logvar);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_NETS_H_
