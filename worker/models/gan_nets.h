// Networks and helpers shared by the GAN family of seed 001 (`dcgan`,
// `acgan`, `infogan`): a DCGAN generator and discriminator trunk that adapt to
// the image size and channel count, the DCGAN initialisation, and the small
// pieces every adversarial update needs.
//
// Value range: generators end in tanh, so they produce images in [-1, 1] and
// are trained on data mapped there (ToTanhRange); grids map back with
// FromTanhRange. Discriminators output logits; the sigmoid of seed 001 is
// fused into the loss (binary_cross_entropy_with_logits), which is the same
// function and numerically stable.
//
// Like the rest of worker/models this is LibTorch code: it may throw
// c10::Error, and the training driver catches it. Modules are not thread-safe.
#ifndef DFV_WORKER_MODELS_GAN_NETS_H_
#define DFV_WORKER_MODELS_GAN_NETS_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/jobspec/job_spec.h"
#include "worker/models/model.h"

namespace dfv::models {

// The DCGAN layout for S x S images. The generator turns its input (a 1x1
// map) into a base x base map with one transposed convolution of kernel
// `base`, then `doublings` 4x4 stride-2 layers reach base * 2^doublings >= S,
// whose centre S x S is kept. doublings is the largest d with S / 2^d >= 4,
// so base = ceil(S / 2^d) lies in [4, 8]: 28 -> 7 -> 14 -> 28 (the classic
// MNIST layout), 32 -> 4 -> 8 -> 16 -> 32, 64 -> 4 -> ... -> 64, 36 -> 5 ->
// ... -> 40 cropped to 36. The discriminator mirrors it with `doublings`
// stride-2 convolutions, each halving (rounding down): 28 -> 14 -> 7.
struct GanLayout {
  int64_t base = 0;
  int64_t doublings = 0;
  // Throws for image sizes below 8.
  static GanLayout For(int64_t image_size);
};

// Generator: input [N, input_dim] -> image [N, channels, S, S] in [-1, 1].
// Channels shrink by half per layer down to `width` before the output layer:
// at 28x28 input -> 2w x 7 x 7 -> w x 14 x 14 -> channels x 28 x 28; at 64x64
// input -> 8w x 4 x 4 -> ... -> w x 32 x 32 -> channels x 64 x 64 (DCGAN's
// 512..64 for w = 64). Hidden layers: batch norm and ReLU; output: tanh.
class GanGeneratorImpl : public torch::nn::Module {
 public:
  GanGeneratorImpl(int64_t input_dim, int64_t channels, int64_t image_size, int64_t width);
  torch::Tensor forward(const torch::Tensor& input);
  int64_t input_dim() const { return input_dim_; }

 private:
  int64_t input_dim_;
  int64_t image_size_;
  torch::nn::Sequential layers_;
};
TORCH_MODULE(GanGenerator);

// Discriminator trunk: image [N, channels, S, S] in [-1, 1] -> flattened
// features [N, feature_dim()]. 4x4 stride-2 convolutions channels -> w -> 2w
// -> ... with LeakyReLU(0.2), batch norm on all but the first (as DCGAN).
// The heads (real/fake logit, class or code logits) are the models' own.
class GanTrunkImpl : public torch::nn::Module {
 public:
  GanTrunkImpl(int64_t channels, int64_t image_size, int64_t width);
  torch::Tensor forward(const torch::Tensor& images);
  int64_t feature_dim() const { return feature_dim_; }

 private:
  torch::nn::Sequential layers_;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(GanTrunk);

// DCGAN initialisation: convolution, transposed convolution and linear
// weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases zero.
void InitDcgan(torch::nn::Module& module);

// [0, 1] -> [-1, 1] and back.
torch::Tensor ToTanhRange(const torch::Tensor& images);
torch::Tensor FromTanhRange(const torch::Tensor& images);

// Mean binary cross-entropy of sigmoid(logits) against the constant `target`
// (1 = real, 0 = fake).
torch::Tensor BceWithLogits(const torch::Tensor& logits, double target);

// Share of `logits` the discriminator gets right: > 0 when `real`, < 0
// otherwise.
double DiscriminatorAccuracy(const torch::Tensor& logits, bool real);

// Share of rows of `logits` [N, K] whose arg-max is `labels` [N].
double ClassAccuracy(const torch::Tensor& logits, const torch::Tensor& labels);

// [N] int64 labels -> [N, num_classes] float one-hot rows.
torch::Tensor OneHot(const torch::Tensor& labels, int64_t num_classes);

// Fixed noise for grids: [n, dim] N(0, 1) from a generator seeded with
// `seed`, on `device`. The same seed gives the same noise at every call.
torch::Tensor SeededNoise(uint64_t seed, int64_t n, int64_t dim, torch::Device device);

// The settings every GAN of the family reads from model_params (see the
// catalogue): noise size, the D:G update ratio and the network width.
struct GanSettings {
  int64_t noise_dim = 100;
  int64_t d_steps = 1;
  int64_t g_steps = 1;
  int64_t feature_maps = 64;
  static GanSettings From(const jobspec::ParamMap& params);
};

// The generator's input: `noise_dim` N(0, 1) values, followed by the one-hot
// row of a categorical code when the model has one (acgan: the class to
// draw; infogan: the latent code; dcgan: none).
class GeneratorInput {
 public:
  GeneratorInput(int64_t noise_dim, int64_t num_codes) : noise_dim_(noise_dim), num_codes_(num_codes) {}
  int64_t dim() const { return noise_dim_ + num_codes_; }

  struct Draw {
    torch::Tensor input;  // [n, dim()]
    torch::Tensor codes;  // [n] int64; undefined without codes
  };
  // A training draw for `n` items from the step's noise (the codes first,
  // then the noise), on `device`.
  Draw Sample(StepContext& ctx, int64_t n, torch::Device device) const;
  // The input for `noise` [n, noise_dim] and `codes` [n] int64 (ignored
  // without codes).
  torch::Tensor Join(const torch::Tensor& noise, const torch::Tensor& codes) const;
  // Fixed noise for grids: SeededNoise(seed, n, noise_dim, device).
  torch::Tensor FixedNoise(uint64_t seed, int64_t n, torch::Device device) const;

 private:
  int64_t noise_dim_;
  int64_t num_codes_;
};

// The family's training step schedule: `d_update` d_steps times, then
// `g_update` g_steps times. Each call returns the metrics of one update (the
// same names every time); the result is each metric's mean over the updates
// that reported it, in `order`, which names every metric of both sides once.
Metrics AlternateUpdates(const GanSettings& settings, const std::function<Metrics()>& d_update,
                         const std::function<Metrics()>& g_update, const std::vector<std::string>& order);

// While alive, the parameters of `module` that required gradients do not,
// so a generator update neither computes nor accumulates the discriminator's
// weight gradients (its input gradients still flow). Restores on destruction.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& module);
  ~FrozenParameters();
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<torch::Tensor> frozen_;
};

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_GAN_NETS_H_
