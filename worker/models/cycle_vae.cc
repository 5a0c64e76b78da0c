#include "worker/models/cycle_vae.h"

#include <tuple>

#include "worker/models/nets.h"
#include "worker/models/split_codes.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

class CycleVae : public Model {
 public:
  explicit CycleVae(const ModelContext& ctx)
      : z_dim_(ctx.spec->model_params.GetInt("style_dim")),
        s_dim_(ctx.spec->model_params.GetInt("class_dim")),
        encoder_(ctx.channels, ctx.image_size, z_dim_, s_dim_),
        decoder_(z_dim_, s_dim_, ctx.channels, ctx.image_size),
        auto_encoder_opt_(ConcatParameters(encoder_->parameters(), decoder_->parameters()), AdamFrom(ctx.spec->train)),
        reverse_cycle_opt_(encoder_->parameters(), AdamFrom(ctx.spec->train)),
        reconstruction_coef_(ctx.spec->train.loss.GetDouble("reconstruction")),
        reverse_cycle_coef_(ctx.spec->train.loss.GetDouble("reverse_cycle")),
        kl_coef_(ctx.spec->train.loss.GetDouble("kl")),
        independent_pairs_(ctx.spec->model_params.GetString("reverse_pairs") == "independent") {
    InitNormal(*encoder_, 0.05);
    InitNormal(*decoder_, 0.05);
    encoder_->to(ctx.device);
    decoder_->to(ctx.device);
  }

  bool NeedsSameClassPairs() const override { return true; }
  bool NeedsOtherClass() const override { return !independent_pairs_; }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor& x1 = batch.images;
    const torch::Tensor& x2 = batch.same_images;
    const int64_t n = x1.size(0);
    const double elements = static_cast<double>(x1.numel());  // batch x pixels

    // Forward cycle: both images through one encoder pass (instance norm is
    // per sample, so batching them together changes nothing).
    SplitCodes c = encoder_->forward(torch::cat({x1, x2}, 0));
    // Noise per image, drawn per input so a rank's draws match its rows of
    // the global batch (StepContext::Normal).
    torch::Tensor eps = torch::cat({ctx.Normal(n, {z_dim_}, x1.device()), ctx.Normal(n, {z_dim_}, x1.device())}, 0);
    torch::Tensor z = Reparameterize(c.mu, c.logvar, eps);
    torch::Tensor s_swapped = torch::cat({c.s.slice(0, n), c.s.slice(0, 0, n)}, 0);
    torch::Tensor recon = decoder_->forward(z, s_swapped);
    torch::Tensor rec = torch::mse_loss(recon.slice(0, 0, n), x1) + torch::mse_loss(recon.slice(0, n), x2);
    torch::Tensor kl = (KlDivergenceSum(c.mu.slice(0, 0, n), c.logvar.slice(0, 0, n)) +
                        KlDivergenceSum(c.mu.slice(0, n), c.logvar.slice(0, n))) /
                       elements;
    torch::Tensor forward_loss = reconstruction_coef_ * rec + kl_coef_ * kl;
    ctx.Update(forward_loss, auto_encoder_opt_);

    // Reverse cycle: one z, the specified codes of two unrelated images:
    // each image and one of another class, or each image and the next one
    // in the (shuffled) batch, two independent draws whose classes agree by
    // chance as in the reference's two independent batches.
    torch::Tensor s_pair;
    {
      torch::NoGradGuard no_grad;
      const torch::Tensor partner = independent_pairs_ ? torch::roll(x1, {1}, {0}) : batch.other_images;
      s_pair = encoder_->forward(torch::cat({x1, partner}, 0)).s;
    }
    torch::Tensor z_sample = ctx.Normal(n, {z_dim_}, x1.device());
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
    return ReconstructWithSplitCodes(encoder_, decoder_, images);
  }

  std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) override {
    return EncodeSplitCodes(encoder_, images);
  }

  torch::Tensor Decode(const torch::Tensor& s, const torch::Tensor& z) override {
    return DecodeSplitCodes(decoder_, s, z);
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    return SplitCodesGrid("cycle_vae", name, in, encoder_, decoder_);
  }

 private:
  int64_t z_dim_, s_dim_;
  SplitEncoder encoder_;
  SplitDecoder decoder_;
  torch::optim::Adam auto_encoder_opt_;
  torch::optim::Adam reverse_cycle_opt_;
  double reconstruction_coef_, reverse_cycle_coef_, kl_coef_;
  bool independent_pairs_;
};

}  // namespace

std::unique_ptr<Model> CreateCycleVae(const ModelContext& context) {
  return std::make_unique<CycleVae>(context);
}

}  // namespace dfv::models
