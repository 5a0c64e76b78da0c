#include "worker/models/nets.h"

#include "worker/models/conv_transpose.h"

namespace dfv::models {

namespace nn = torch::nn;

void InitNormal(torch::nn::Module& module, double std) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      conv->weight.normal_(0.0, std);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* deconv = m->as<nn::ConvTranspose2d>()) {
      deconv->weight.normal_(0.0, std);
      if (deconv->bias.defined()) deconv->bias.zero_();
    } else if (auto* linear = m->as<nn::Linear>()) {
      linear->weight.normal_(0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    }
  }
}

namespace {

nn::InstanceNorm2d InstanceNorm(int64_t channels) {
  // No affine parameters and no running statistics, as PyTorch's default; the
  // reference also tracked running statistics, which only matter in eval mode
  // and would make evaluation depend on the rank that trained.
  return nn::InstanceNorm2d(nn::InstanceNorm2dOptions(channels).affine(false).track_running_stats(false));
}

}  // namespace

ConvEncoderImpl::ConvEncoderImpl(int64_t channels, int64_t image_size) {
  std::vector<int64_t> widths = {16, 32, 64};
  if (image_size >= 48) widths.push_back(128);
  int64_t in = channels;
  int64_t size = image_size;
  for (int64_t out : widths) {
    // No bias before an instance norm: the norm removes any per-channel
    // constant, so a bias would only gather rounding noise (which Adam turns
    // into real steps).
    layers_->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 5).stride(2).padding(1).bias(false)));
    layers_->push_back(InstanceNorm(out));
    layers_->push_back(nn::ReLU());
    in = out;
    size = (size + 2 - 5) / 2 + 1;
  }
  feature_dim_ = in * size * size;
  register_module("layers", layers_);
}

torch::Tensor ConvEncoderImpl::forward(const torch::Tensor& x) {
  return layers_->forward(x).flatten(1);
}

DeconvTrunkImpl::DeconvTrunkImpl(int64_t channels, int64_t image_size, Output output)
    : image_size_(image_size), base_(BaseFor(image_size)), output_(output) {
  const bool reference = image_size == 28;
  // Reference 28x28 paddings: 2 -> 6 -> 14 -> 28. Elsewhere every layer doubles.
  // The layers before an instance norm have no bias (see ConvEncoderImpl).
  const int64_t p1 = reference ? 0 : 1, p2 = reference ? 0 : 1, p3 = 1;
  layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(128, 32, 4).stride(2).padding(p1).bias(false)));
  layers_->push_back(InstanceNorm(32));
  layers_->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
  layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(32, 16, 4).stride(2).padding(p2).bias(false)));
  layers_->push_back(InstanceNorm(16));
  layers_->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
  layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(16, channels, 4).stride(2).padding(p3)));
  register_module("layers", layers_);
}

torch::Tensor DeconvTrunkImpl::forward(const torch::Tensor& features) {
  torch::Tensor y = layers_->forward(features);
  const int64_t produced = y.size(-1);
  if (produced != image_size_) {
    const int64_t off = (produced - image_size_) / 2;
    y = y.slice(2, off, off + image_size_).slice(3, off, off + image_size_);
  }
  return output_ == Output::kSigmoid ? torch::sigmoid(y) : torch::tanh(y);
}

SplitDecoderImpl::SplitDecoderImpl(int64_t z_dim, int64_t s_dim, int64_t channels, int64_t image_size) {
  const int64_t base = DeconvTrunkImpl::BaseFor(image_size);
  const int64_t half = 128 * base * base / 2;
  z_in_ = register_module("z_in", nn::Linear(z_dim, half));
  s_in_ = register_module("s_in", nn::Linear(s_dim, half));
  trunk_ = register_module("trunk", DeconvTrunk(channels, image_size, DeconvTrunkImpl::Output::kSigmoid));
}

torch::Tensor SplitDecoderImpl::forward(const torch::Tensor& z, const torch::Tensor& s) {
  const int64_t base = trunk_->base();
  torch::Tensor h = torch::cat({torch::leaky_relu(z_in_->forward(z), 0.2),
                                torch::leaky_relu(s_in_->forward(s), 0.2)},
                               1);
  return trunk_->forward(h.view({-1, 128, base, base}));
}

torch::Tensor Reparameterize(const torch::Tensor& mu, const torch::Tensor& logvar, const torch::Tensor& eps) {
  return mu + eps * torch::exp(0.5 * logvar);
}

torch::Tensor KlDivergenceSum(const torch::Tensor& mu, const torch::Tensor& logvar) {
  return -0.5 * torch::sum(1 + logvar - mu.pow(2) - logvar.exp());
}

SplitEncoderImpl::SplitEncoderImpl(int64_t channels, int64_t image_size, int64_t z_dim, int64_t s_dim) {
  trunk_ = register_module("trunk", ConvEncoder(channels, image_size));
  mu_ = register_module("z_mu", torch::nn::Linear(trunk_->feature_dim(), z_dim));
  logvar_ = register_module("z_logvar", torch::nn::Linear(trunk_->feature_dim(), z_dim));
  s_ = register_module("s", torch::nn::Linear(trunk_->feature_dim(), s_dim));
}

SplitCodes SplitEncoderImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = trunk_->forward(x);
  return {mu_->forward(h), logvar_->forward(h), s_->forward(h)};
}

}  // namespace dfv::models
