#include "worker/models/dcgan.h"

#include "common/jobspec/catalogue.h"
#include "worker/models/gan_nets.h"
#include "worker/models/grid.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

// Trunk plus one real/fake logit.
class DcganDiscriminatorImpl : public nn::Module {
 public:
  DcganDiscriminatorImpl(int64_t channels, int64_t image_size, int64_t width) {
    trunk_ = register_module("trunk", GanTrunk(channels, image_size, width));
    real_fake_ = register_module("real_fake", nn::Linear(trunk_->feature_dim(), 1));
  }
  torch::Tensor forward(const torch::Tensor& images) {
    return real_fake_->forward(trunk_->forward(images)).squeeze(1);
  }

 private:
  GanTrunk trunk_{nullptr};
  nn::Linear real_fake_{nullptr};
};
TORCH_MODULE(DcganDiscriminator);

class Dcgan : public Model {
 public:
  explicit Dcgan(const ModelContext& ctx)
      : settings_(GanSettings::From(ctx.spec->model_params)),
        metrics_(CatalogueEntry(ctx).metrics),
        input_(settings_.noise_dim, /*num_codes=*/0),
        generator_(input_.dim(), ctx.channels, ctx.image_size, settings_.feature_maps),
        discriminator_(ctx.channels, ctx.image_size, settings_.feature_maps),
        g_opt_(generator_->parameters(), AdamFrom(ctx.spec->train)),
        d_opt_(discriminator_->parameters(), AdamFrom(ctx.spec->train)) {
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
        torch::NoGradGuard no_grad;  // the discriminator's update needs no generator gradients
        fake = generator_->forward(input_.Sample(ctx, n, real.device()).input);
      }
      // Real and fake go through separately, so batch norm never mixes them
      // (DCGAN's practice).
      torch::Tensor logits_real = discriminator_->forward(real);
      torch::Tensor logits_fake = discriminator_->forward(fake);
      torch::Tensor loss = BceWithLogits(logits_real, 1.0) + BceWithLogits(logits_fake, 0.0);
      ctx.Update(loss, d_opt_);
      return {{"d_loss", loss.item<double>()},
              {"d_acc_real", DiscriminatorAccuracy(logits_real, true)},
              {"d_acc_fake", DiscriminatorAccuracy(logits_fake, false)}};
    };
    auto g_update = [&]() -> Metrics {
      FrozenParameters frozen(*discriminator_);
      torch::Tensor fake = generator_->forward(input_.Sample(ctx, n, real.device()).input);
      torch::Tensor loss = BceWithLogits(discriminator_->forward(fake), 1.0);
      ctx.Update(loss, g_opt_);
      return {{"g_loss", loss.item<double>()}};
    };
    return AlternateUpdates(settings_, d_update, g_update, metrics_);
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"generator", generator_.get()}, {"discriminator", discriminator_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"generator", &g_opt_}, {"discriminator", &d_opt_}};
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    if (name == jobspec::grid::kRandom) {
      torch::Tensor z = input_.FixedNoise(in.noise_seed, 32, in.images.device());
      return TileBatch(FromTanhRange(generator_->forward(z)), 4, 8);
    }
    TORCH_CHECK(false, "dcgan has no grid named '", name, "'");
  }

 private:
  GanSettings settings_;
  std::vector<std::string> metrics_;  // the catalogue's order
  GeneratorInput input_;
  GanGenerator generator_;
  DcganDiscriminator discriminator_;
  torch::optim::Adam g_opt_;
  torch::optim::Adam d_opt_;
};

}  // namespace

std::unique_ptr<Model> CreateDcgan(const ModelContext& context) { return std::make_unique<Dcgan>(context); }

}  // namespace dfv::models
