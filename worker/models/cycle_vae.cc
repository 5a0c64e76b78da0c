#include "worker/models/cycle_vae.h"

#include <tuple>

#include "worker/models/grid.h"
#include "worker/models/nets.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

struct Codes {
  torch::Tensor mu, logvar, s;
};

// Encoder: the reference convolutions, then three linear heads.
class SplitEncoderImpl : public nn::Module {
 public:
  SplitEncoderImpl(int64_t channels, int64_t image_size, int64_t z_dim, int64_t s_dim) {
    trunk_ = register_module("trunk", ConvEncoder(channels, image_size));
    mu_ = register_module("z_mu", nn::Linear(trunk_->feature_dim(), z_dim));
    logvar_ = register_module("z_logvar", nn::Linear(trunk_->feature_dim(), z_dim));
    s_ = register_module("s", nn::Linear(trunk_->feature_dim(), s_dim));
  }
  Codes forward(const torch::Tensor& x) {
    torch::Tensor h = trunk_->forward(x);
    return {mu_->forward(h), logvar_->forward(h), s_->forward(h)};
  }

 private:
  ConvEncoder trunk_{nullptr};
  nn::Linear mu_{nullptr}, logvar_{nullptr}, s_{nullptr};
};
TORCH_MODULE(SplitEncoder);

torch::optim::AdamOptions AdamFrom(const jobspec::TrainSpec& train) {
  return torch::optim::AdamOptions(train.lr).betas({train.betas[0], train.betas[1]});
}

std::vector<torch::Tensor> Concat(std::vector<torch::Tensor> a, const std::vector<torch::Tensor>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class CycleVae : public Model {
 public:
  explicit CycleVae(const ModelContext& ctx)
      : z_dim_(ctx.spec->model_params.GetInt("style_dim")),
        s_dim_(ctx.spec->model_params.GetInt("class_dim")),
        encoder_(ctx.channels, ctx.image_size, z_dim_, s_dim_),
        decoder_(z_dim_, s_dim_, ctx.channels, ctx.image_size),
        auto_encoder_opt_(Concat(encoder_->parameters(), decoder_->parameters()), AdamFrom(ctx.spec->train)),
        reverse_cycle_opt_(encoder_->parameters(), AdamFrom(ctx.spec->train)),
        reconstruction_coef_(ctx.spec->train.loss.GetDouble("reconstruction")),
        reverse_cycle_coef_(ctx.spec->train.loss.GetDouble("reverse_cycle")),
        kl_coef_(ctx.spec->train.loss.GetDouble("kl")) {
    InitNormal(*encoder_, 0.05);
    InitNormal(*decoder_, 0.05);
    encoder_->to(ctx.device);
    decoder_->to(ctx.device);
  }

  bool NeedsSameClassPairs() const override { return true; }
  bool NeedsOtherClass() const override { return true; }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor& x1 = batch.images;
    const torch::Tensor& x2 = batch.same_images;
    const int64_t n = x1.size(0);
    const double elements = static_cast<double>(x1.numel());  // batch x pixels

    // Forward cycle: both images through one encoder pass (instance norm is
    // per sample, so batching them together changes nothing).
    Codes c = encoder_->forward(torch::cat({x1, x2}, 0));
    torch::Tensor z = Reparameterize(c.mu, c.logvar);
    torch::Tensor s_swapped = torch::cat({c.s.slice(0, n), c.s.slice(0, 0, n)}, 0);
    torch::Tensor recon = decoder_->forward(z, s_swapped);
    torch::Tensor rec = torch::mse_loss(recon.slice(0, 0, n), x1) + torch::mse_loss(recon.slice(0, n), x2);
    torch::Tensor kl = (KlDivergenceSum(c.mu.slice(0, 0, n), c.logvar.slice(0, 0, n)) +
                        KlDivergenceSum(c.mu.slice(0, n), c.logvar.slice(0, n))) /
                       elements;
    torch::Tensor forward_loss = reconstruction_coef_ * rec + kl_coef_ * kl;
    ctx.Update(forward_loss, auto_encoder_opt_);

    // Reverse cycle: one z, the specified codes of two unrelated images.
    torch::Tensor s_pair;
    {
      torch::NoGradGuard no_grad;
      s_pair = encoder_->forward(torch::cat({x1, batch.other_images}, 0)).s;
    }
    torch::Tensor z_sample = torch::randn({n, z_dim_}, x1.options());
    torch::Tensor regenerated = decoder_->forward(torch::cat({z_sample, z_sample}, 0), s_pair);
    torch::Tensor mu_back = encoder_->forward(regenerated).mu;
    torch::Tensor reverse = torch::l1_loss(mu_back.slice(0, 0, n), mu_back.slice(0, n));
    ctx.Update(reverse_cycle_coef_ * reverse, reverse_cycle_opt_);

    const double total = forward_loss.item<double>() + reverse_cycle_coef_ * reverse.item<double>();
    return {{"loss", total},
            {"reconstruction", rec.item<double>()},
            {"kl", kl.item<double>()},
            {"reverse_cycle", reverse.item<double>()}};
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"encoder", encoder_.get()}, {"decoder", decoder_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"auto_encoder", &auto_encoder_opt_}, {"reverse_cycle", &reverse_cycle_opt_}};
  }

  torch::Tensor Reconstruct(const torch::Tensor& images) override {
    Codes c = encoder_->forward(images);
    return decoder_->forward(c.mu, c.s);
  }

  std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) override {
    Codes c = encoder_->forward(images);
    return {{"s", c.s}, {"z", c.mu}};
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    if (name == "reconstruction") {
      torch::Tensor x = in.images.slice(0, 0, 16);
      return ReconstructionGrid(x, Reconstruct(x));
    }
    if (name == "swap") {
      // Rows take s from the left column, columns take z from the top row.
      torch::Tensor rows = in.images.slice(0, 0, 8), cols = in.images.slice(0, 8, 16);
      Codes r = encoder_->forward(rows), c = encoder_->forward(cols);
      torch::Tensor s = r.s.repeat_interleave(8, 0);  // row-major: s fixed along a row
      torch::Tensor z = c.mu.repeat({8, 1});          // z fixed down a column
      return SwapGrid(rows, cols, decoder_->forward(z, s));
    }
    if (name == "interpolation") {
      // Two test images of different classes at the corners: s varies across
      // the columns, z down the rows.
      int64_t other = 1;
      while (other < in.labels.size(0) - 1 &&
             in.labels[other].item<int64_t>() == in.labels[0].item<int64_t>()) {
        ++other;
      }
      Codes a = encoder_->forward(in.images.slice(0, 0, 1));
      Codes b = encoder_->forward(in.images.slice(0, other, other + 1));
      const int64_t k = 8;
      torch::Tensor w = InterpolationWeights(k).to(in.images.device()).unsqueeze(1);
      torch::Tensor zs = a.mu * (1 - w) + b.mu * w;  // [k, z]
      torch::Tensor ss = a.s * (1 - w) + b.s * w;    // [k, s]
      torch::Tensor images = decoder_->forward(zs.repeat_interleave(k, 0), ss.repeat({k, 1}));
      return TileBatch(images, k, k);
    }
    TORCH_CHECK(false, "cycle_vae has no grid named '", name, "'");
  }

 private:
  int64_t z_dim_, s_dim_;
  SplitEncoder encoder_;
  SplitDecoder decoder_;
  torch::optim::Adam auto_encoder_opt_;
  torch::optim::Adam reverse_cycle_opt_;
  double reconstruction_coef_, reverse_cycle_coef_, kl_coef_;
};

}  // namespace

std::unique_ptr<Model> CreateCycleVae(const ModelContext& context) {
  return std::make_unique<CycleVae>(context);
}

}  // namespace dfv::models
