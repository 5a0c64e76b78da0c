#include "worker/models/infogan.h"

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
        noise_dim_(ctx.spec->model_params.GetInt("noise_dim")),
        d_steps_(ctx.spec->model_params.GetInt("d_steps")),
        g_steps_(ctx.spec->model_params.GetInt("g_steps")),
        info_weight_(ctx.spec->train.loss.GetDouble("info")),
        generator_(noise_dim_ + categories_, ctx.channels, ctx.image_size,
                   ctx.spec->model_params.GetInt("feature_maps")),
        discriminator_(ctx.channels, ctx.image_size, ctx.spec->model_params.GetInt("feature_maps"), categories_),
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
    const torch::Device device = real.device();
    double d_loss = 0, acc_real = 0, acc_fake = 0;
    for (int64_t i = 0; i < d_steps_; ++i) {
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        fake = Generate(ctx.Normal(n, {noise_dim_}, real.device()), ctx.RandInt(categories_, n, device));
      }
      torch::Tensor logits_real = discriminator_->RealFake(discriminator_->Features(real));
      torch::Tensor logits_fake = discriminator_->RealFake(discriminator_->Features(fake));
      torch::Tensor loss = BceWithLogits(logits_real, 1.0) + BceWithLogits(logits_fake, 0.0);
      ctx.Update(loss, d_opt_);
      d_loss += loss.item<double>();
      acc_real += DiscriminatorAccuracy(logits_real, true);
      acc_fake += DiscriminatorAccuracy(logits_fake, false);
    }
    double g_loss = 0, q_loss = 0, q_acc = 0;
    for (int64_t i = 0; i < g_steps_; ++i) {
      torch::Tensor codes = ctx.RandInt(categories_, n, device);
      torch::Tensor fake = Generate(ctx.Normal(n, {noise_dim_}, real.device()), codes);
      {
        FrozenParameters frozen(*discriminator_);
        torch::Tensor h = discriminator_->Features(fake);
        torch::Tensor loss = BceWithLogits(discriminator_->RealFake(h), 1.0) +
                             info_weight_ * torch::nn::functional::cross_entropy(discriminator_->Code(h), codes);
        ctx.Update(loss, g_opt_);
        g_loss += loss.item<double>();
      }
      // Q's own update on the same images, detached: only the trunk and the
      // Q head learn from it (G already had its share of the info term).
      torch::Tensor code_logits = discriminator_->Code(discriminator_->Features(fake.detach()));
      torch::Tensor info = torch::nn::functional::cross_entropy(code_logits, codes);
      ctx.Update(info_weight_ * info, q_opt_);
      q_loss += info.item<double>();
      q_acc += ClassAccuracy(code_logits, codes);
    }
    const double d = static_cast<double>(d_steps_), g = static_cast<double>(g_steps_);
    return {{"d_loss", d_loss / d},         {"g_loss", g_loss / g},     {"q_loss", q_loss / g},
            {"d_acc_real", acc_real / d},   {"d_acc_fake", acc_fake / d}, {"q_acc", q_acc / g}};
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
    if (name == "categorical") {
      // Row-major: noise fixed along a row, the code fixed down a column.
      torch::Tensor z = SeededNoise(in.noise_seed, kCategoricalRows, noise_dim_, device);
      torch::Tensor codes = torch::arange(categories_, long_options).repeat({kCategoricalRows});
      torch::Tensor images = Generate(z.repeat_interleave(categories_, 0), codes);
      return TileBatch(FromTanhRange(images), kCategoricalRows, categories_);
    }
    if (name == "random") {
      torch::Tensor z = SeededNoise(in.noise_seed, 32, noise_dim_, device);
      torch::Tensor codes = torch::arange(32, long_options).remainder(categories_);
      return TileBatch(FromTanhRange(Generate(z, codes)), 4, 8);
    }
    TORCH_CHECK(false, "infogan has no grid named '", name, "'");
  }

 private:
  torch::Tensor Generate(const torch::Tensor& noise, const torch::Tensor& codes) {
    return generator_->forward(torch::cat({noise, OneHot(codes, categories_)}, 1));
  }

  int64_t categories_, noise_dim_, d_steps_, g_steps_;
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
