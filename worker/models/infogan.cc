#include "worker/models/infogan.h"

#include "common/jobspec/catalogue.h"
#include "worker/models/gan_nets.h"
#include "worker/models/grid.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

constexpr int64_t kCategoricalRows = 10;
constexpr int64_t kQHidden = 128;

// The shared trunk with the D head (real/fake logit) and the Q head (code
// logits). Q is an MLP on the trunk's features, as in the InfoGAN paper.
class InfoganDiscriminatorImpl : public nn::Module {
 public:
  InfoganDiscriminatorImpl(int64_t channels, int64_t image_size, int64_t width, int64_t categories) {
    trunk_ = register_module("trunk", GanTrunk(channels, image_size, width));
    real_fake_ = register_module("real_fake", nn::Linear(trunk_->feature_dim(), 1));
    q_ = register_module("q", nn::Sequential(nn::Linear(trunk_->feature_dim(), kQHidden),
                                             nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)),
                                             nn::Linear(kQHidden, categories)));
  }
  torch::Tensor Features(const torch::Tensor& images) { return trunk_->forward(images); }
  torch::Tensor RealFake(const torch::Tensor& features) { return real_fake_->forward(features).squeeze(1); }
  torch::Tensor Code(const torch::Tensor& features) { return q_->forward(features); }

  std::vector<torch::Tensor> DParameters() {
    std::vector<torch::Tensor> p = trunk_->parameters();
    for (const auto& t : real_fake_->parameters()) p.push_back(t);
    return p;
  }
  std::vector<torch::Tensor> QParameters() {
    std::vector<torch::Tensor> p = trunk_->parameters();
    for (const auto& t : q_->parameters()) p.push_back(t);
    return p;
  }

 private:
  GanTrunk trunk_{nullptr};
  nn::Linear real_fake_{nullptr};
  nn::Sequential q_{nullptr};
};
TORCH_MODULE(InfoganDiscriminator);

class Infogan : public Model {
 public:
  explicit Infogan(const ModelContext& ctx)
      : categories_(ctx.spec->model_params.GetInt("categories")),
        settings_(GanSettings::From(ctx.spec->model_params)),
        metrics_(CatalogueEntry(ctx).metrics),
        input_(settings_.noise_dim, categories_),
        info_weight_(ctx.spec->train.loss.GetDouble("info")),
        generator_(input_.dim(), ctx.channels, ctx.image_size, settings_.feature_maps),
        discriminator_(ctx.channels, ctx.image_size, settings_.feature_maps, categories_),
        g_opt_(generator_->parameters(), AdamFrom(ctx.spec->train)),
        d_opt_(discriminator_->DParameters(), AdamFrom(ctx.spec->train)),
        q_opt_(discriminator_->QParameters(), AdamFrom(ctx.spec->train)) {
    InitDcgan(*generator_);
    InitDcgan(*discriminator_);
    generator_->to(ctx.device);
    discriminator_->to(ctx.device);
  }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor real = ToTanhRange(batch.images);
    const int64_t n = real.size(0);
    auto d_update = [&]() -> Metrics {
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        fake = generator_->forward(input_.Sample(ctx, n, real.device()).input);
      }
      torch::Tensor logits_real = discriminator_->RealFake(discriminator_->Features(real));
      torch::Tensor logits_fake = discriminator_->RealFake(discriminator_->Features(fake));
      torch::Tensor loss = BceWithLogits(logits_real, 1.0) + BceWithLogits(logits_fake, 0.0);
      ctx.Update(loss, d_opt_);
      return {{"d_loss", loss.item<double>()},
              {"d_acc_real", DiscriminatorAccuracy(logits_real, true)},
              {"d_acc_fake", DiscriminatorAccuracy(logits_fake, false)}};
    };
    auto g_update = [&]() -> Metrics {
      GeneratorInput::Draw drawn = input_.Sample(ctx, n, real.device());
      torch::Tensor fake = generator_->forward(drawn.input);
      double g_loss = 0;
      {
        FrozenParameters frozen(*discriminator_);
        torch::Tensor h = discriminator_->Features(fake);
        torch::Tensor loss = BceWithLogits(discriminator_->RealFake(h), 1.0) +
                             info_weight_ * torch::nn::functional::cross_entropy(discriminator_->Code(h), drawn.codes);
        ctx.Update(loss, g_opt_);
        g_loss = loss.item<double>();
      }
      // Q's own update on the same images, detached: only the trunk and the
      // Q head learn from it (G already had its share of the info term).
      torch::Tensor code_logits = discriminator_->Code(discriminator_->Features(fake.detach()));
      torch::Tensor info = torch::nn::functional::cross_entropy(code_logits, drawn.codes);
      ctx.Update(info_weight_ * info, q_opt_);
      return {{"g_loss", g_loss}, {"q_loss", info.item<double>()}, {"q_acc", ClassAccuracy(code_logits, drawn.codes)}};
    };
    return AlternateUpdates(settings_, d_update, g_update, metrics_);
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"generator", generator_.get()}, {"discriminator", discriminator_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"generator", &g_opt_}, {"discriminator", &d_opt_}, {"q", &q_opt_}};
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    const torch::Device device = in.images.device();
    const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);
    if (name == jobspec::grid::kCategorical) {
      // Row-major: noise fixed along a row, the code fixed down a column.
      torch::Tensor z = input_.FixedNoise(in.noise_seed, kCategoricalRows, device);
      torch::Tensor codes = torch::arange(categories_, long_options).repeat({kCategoricalRows});
      torch::Tensor images = generator_->forward(input_.Join(z.repeat_interleave(categories_, 0), codes));
      return TileBatch(FromTanhRange(images), kCategoricalRows, categories_);
    }
    if (name == jobspec::grid::kRandom) {
      torch::Tensor z = input_.FixedNoise(in.noise_seed, 32, device);
      torch::Tensor codes = torch::arange(32, long_options).remainder(categories_);
      return TileBatch(FromTanhRange(generator_->forward(input_.Join(z, codes))), 4, 8);
    }
    TORCH_CHECK(false, "infogan has no grid named '", name, "'");
  }

 private:
  int64_t categories_;
  GanSettings settings_;
  std::vector<std::string> metrics_;  // the catalogue's order
  GeneratorInput input_;
  double info_weight_;
  GanGenerator generator_;
  InfoganDiscriminator discriminator_;
  torch::optim::Adam g_opt_;
  torch::optim::Adam d_opt_;
  torch::optim::Adam q_opt_;
};

}  // namespace

std::unique_ptr<Model> CreateInfogan(const ModelContext& context) {
  return std::make_unique<Infogan>(context);
}

}  // namespace dfv::models
