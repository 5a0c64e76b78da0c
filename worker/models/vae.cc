#include "worker/models/vae.h"

#include <ATen/CPUGeneratorImpl.h>

#include "common/jobspec/catalogue.h"
#include "worker/models/grid.h"
#include "worker/models/nets.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

class VaeNetImpl : public nn::Module {
 public:
  VaeNetImpl(int64_t channels, int64_t image_size, int64_t latent_dim) : latent_dim_(latent_dim) {
    encoder_ = register_module("encoder", ConvEncoder(channels, image_size));
    mu_ = register_module("mu", nn::Linear(encoder_->feature_dim(), latent_dim));
    logvar_ = register_module("logvar", nn::Linear(encoder_->feature_dim(), latent_dim));
    base_ = DeconvTrunkImpl::BaseFor(image_size);
    project_ = register_module("project", nn::Linear(latent_dim, 128 * base_ * base_));
    trunk_ = register_module("trunk", DeconvTrunk(channels, image_size, DeconvTrunkImpl::Output::kSigmoid));
  }

  std::pair<torch::Tensor, torch::Tensor> Encode(const torch::Tensor& x) {
    torch::Tensor h = encoder_->forward(x);
    return {mu_->forward(h), logvar_->forward(h)};
  }

  torch::Tensor Decode(const torch::Tensor& z) {
    return trunk_->forward(torch::relu(project_->forward(z)).view({-1, 128, base_, base_}));
  }

  int64_t latent_dim() const { return latent_dim_; }

 private:
  int64_t latent_dim_;
  int64_t base_ = 0;
  ConvEncoder encoder_{nullptr};
  nn::Linear mu_{nullptr}, logvar_{nullptr}, project_{nullptr};
  DeconvTrunk trunk_{nullptr};
};
TORCH_MODULE(VaeNet);

class Vae : public Model {
 public:
  explicit Vae(const ModelContext& ctx)
      : net_(ctx.channels, ctx.image_size, ctx.spec->model_params.GetInt("latent_dim")),
        optimizer_(net_->parameters(),
                   AdamFrom(ctx.spec->train)),
        reconstruction_weight_(ctx.spec->train.loss.GetDouble("reconstruction")),
        kl_weight_(ctx.spec->train.loss.GetDouble("kl")) {
    net_->to(ctx.device);
  }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor& x = batch.images;
    const double n = static_cast<double>(x.size(0));
    auto [mu, logvar] = net_->Encode(x);
    torch::Tensor recon = net_->Decode(Reparameterize(mu, logvar, ctx.NormalLike(mu)));
    torch::Tensor sse = (recon - x).pow(2).sum() / n;
    torch::Tensor kl = KlDivergenceSum(mu, logvar) / n;
    torch::Tensor loss = reconstruction_weight_ * sse + kl_weight_ * kl;
    ctx.Update(loss, optimizer_);
    const double pixels = static_cast<double>(x[0].numel());
    return {{"loss", loss.item<double>()},
            {"reconstruction", sse.item<double>()},
            {"kl", kl.item<double>()},
            {"mse", sse.item<double>() / pixels}};
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override { return {{"vae", net_.get()}}; }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"adam", &optimizer_}};
  }

  torch::Tensor Reconstruct(const torch::Tensor& images) override {
    return net_->Decode(net_->Encode(images).first);
  }

  std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) override {
    auto [mu, logvar] = net_->Encode(images);
    return {{"z", mu}, {kZLogVariance, logvar}};
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    if (name == jobspec::grid::kReconstruction) {
      torch::Tensor x = in.images.slice(0, 0, 16);
      return ReconstructionGrid(x, Reconstruct(x));
    }
    if (name == jobspec::grid::kRandom) {
      auto gen = at::detail::createCPUGenerator(in.noise_seed);
      torch::Tensor z = torch::randn({32, net_->latent_dim()}, gen).to(in.images.device());
      return TileBatch(net_->Decode(z), 4, 8);
    }
    TORCH_CHECK(false, "vae has no grid named '", name, "'");
  }

 private:
  VaeNet net_;
  torch::optim::Adam optimizer_;
  double reconstruction_weight_;
  double kl_weight_;
};

}  // namespace

std::unique_ptr<Model> CreateVae(const ModelContext& context) { return std::make_unique<Vae>(context); }

}  // namespace dfv::models
