#include "worker/models/gan_nets.h"

#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <utility>

#include "worker/models/conv_transpose.h"
#include "worker/models/nets.h"

namespace dfv::models {

namespace nn = torch::nn;

GanLayout GanLayout::For(int64_t image_size) {
  TORCH_CHECK(image_size >= 8, "GAN networks need images of at least 8x8, got ", image_size);
  GanLayout layout;
  while ((image_size >> (layout.doublings + 1)) >= 4) ++layout.doublings;
  const int64_t scale = int64_t{1} << layout.doublings;
  layout.base = (image_size + scale - 1) / scale;
  return layout;
}

GanGeneratorImpl::GanGeneratorImpl(int64_t input_dim, int64_t channels, int64_t image_size, int64_t width)
    : input_dim_(input_dim), image_size_(image_size) {
  const GanLayout layout = GanLayout::For(image_size);
  // Hidden widths from the first layer down: w * 2^(d-1), ..., 2w, w.
  int64_t out = width << (layout.doublings - 1);
  // Biases before batch norm are redundant (the norm removes them), as in DCGAN.
  layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(input_dim, out, layout.base).bias(false)));
  layers_->push_back(nn::BatchNorm2d(out));
  layers_->push_back(nn::ReLU());
  for (int64_t i = 1; i < layout.doublings; ++i) {
    const int64_t in = out;
    out = in / 2;
    layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1).bias(false)));
    layers_->push_back(nn::BatchNorm2d(out));
    layers_->push_back(nn::ReLU());
  }
  layers_->push_back(ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(out, channels, 4).stride(2).padding(1)));
  register_module("layers", layers_);
}

torch::Tensor GanGeneratorImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 2 && input.size(1) == input_dim_, "generator input must be [N, ", input_dim_,
              "], got ", input.sizes());
  torch::Tensor y = layers_->forward(input.view({input.size(0), input_dim_, 1, 1}));
  const int64_t produced = y.size(-1);
  if (produced != image_size_) {
    const int64_t off = (produced - image_size_) / 2;
    y = y.slice(2, off, off + image_size_).slice(3, off, off + image_size_);
  }
  return torch::tanh(y);
}

GanTrunkImpl::GanTrunkImpl(int64_t channels, int64_t image_size, int64_t width) {
  const GanLayout layout = GanLayout::For(image_size);
  int64_t in = channels;
  int64_t size = image_size;
  for (int64_t i = 0; i < layout.doublings; ++i) {
    const int64_t out = width << i;
    // No batch norm on the first layer: DCGAN found normalising the raw
    // image input destabilises training.
    layers_->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 4).stride(2).padding(1).bias(i == 0)));
    if (i > 0) layers_->push_back(nn::BatchNorm2d(out));
    layers_->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
    in = out;
    size /= 2;
  }
  feature_dim_ = in * size * size;
  register_module("layers", layers_);
}

torch::Tensor GanTrunkImpl::forward(const torch::Tensor& images) { return layers_->forward(images).flatten(1); }

void InitDcgan(torch::nn::Module& module) {
  InitNormal(module, 0.02);
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* bn = m->as<nn::BatchNorm2d>()) {
      bn->weight.normal_(1.0, 0.02);
      bn->bias.zero_();
    } else if (auto* bn1 = m->as<nn::BatchNorm1d>()) {
      bn1->weight.normal_(1.0, 0.02);
      bn1->bias.zero_();
    }
  }
}

torch::Tensor ToTanhRange(const torch::Tensor& images) { return images * 2.0 - 1.0; }

torch::Tensor FromTanhRange(const torch::Tensor& images) { return (images + 1.0) * 0.5; }

torch::Tensor BceWithLogits(const torch::Tensor& logits, double target) {
  return torch::binary_cross_entropy_with_logits(logits, torch::full_like(logits, target));
}

double DiscriminatorAccuracy(const torch::Tensor& logits, bool real) {
  torch::Tensor right = real ? logits.detach() > 0 : logits.detach() < 0;
  return right.to(torch::kFloat).mean().item<double>();
}

double ClassAccuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.detach().argmax(1).eq(labels).to(torch::kFloat).mean().item<double>();
}

torch::Tensor OneHot(const torch::Tensor& labels, int64_t num_classes) {
  return torch::one_hot(labels, num_classes).to(torch::kFloat);
}

torch::Tensor SeededNoise(uint64_t seed, int64_t n, int64_t dim, torch::Device device) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({n, dim}, gen).to(device);
}

GanSettings GanSettings::From(const jobspec::ParamMap& params) {
  return GanSettings{params.GetInt("noise_dim"), params.GetInt("d_steps"), params.GetInt("g_steps"),
                     params.GetInt("feature_maps")};
}

GeneratorInput::Draw GeneratorInput::Sample(StepContext& ctx, int64_t n, torch::Device device) const {
  Draw draw;
  if (num_codes_ > 0) draw.codes = ctx.RandInt(num_codes_, n, device);
  draw.input = Join(ctx.Normal(n, {noise_dim_}, device), draw.codes);
  return draw;
}

torch::Tensor GeneratorInput::Join(const torch::Tensor& noise, const torch::Tensor& codes) const {
  if (num_codes_ == 0) return noise;
  return torch::cat({noise, OneHot(codes, num_codes_)}, 1);
}

torch::Tensor GeneratorInput::FixedNoise(uint64_t seed, int64_t n, torch::Device device) const {
  return SeededNoise(seed, n, noise_dim_, device);
}

Metrics AlternateUpdates(const GanSettings& settings, const std::function<Metrics()>& d_update,
                         const std::function<Metrics()>& g_update, const std::vector<std::string>& order) {
  std::map<std::string, std::pair<double, int64_t>> sums;  // name -> (sum, updates)
  auto run = [&](int64_t times, const std::function<Metrics()>& update) {
    for (int64_t i = 0; i < times; ++i) {
      for (const auto& [name, value] : update()) {
        auto& [sum, count] = sums[name];
        sum += value;
        ++count;
      }
    }
  };
  run(settings.d_steps, d_update);
  run(settings.g_steps, g_update);
  Metrics means;
  for (const std::string& name : order) {
    auto it = sums.find(name);
    TORCH_CHECK(it != sums.end(), "no update reported the metric '", name, "'");
    means.emplace_back(name, it->second.first / static_cast<double>(it->second.second));
  }
  TORCH_CHECK(means.size() == sums.size(), "the updates reported ", sums.size(), " metrics, the order names ",
              means.size());
  return means;
}

FrozenParameters::FrozenParameters(torch::nn::Module& module) {
  for (auto& p : module.parameters()) {
    if (p.requires_grad()) {
      p.requires_grad_(false);
      frozen_.push_back(p);
    }
  }
}

FrozenParameters::~FrozenParameters() {
  for (auto& p : frozen_) p.requires_grad_(true);
}

}  // namespace dfv::models
