#include "worker/models/acgan.h"

#include "worker/models/gan_nets.h"
#include "worker/models/grid.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

constexpr int64_t kPairs = 16;

struct Heads {
  torch::Tensor real_fake;  // [N] logits
  torch::Tensor classes;    // [N, K] logits
};

// One trunk, two heads: real/fake and class.
class AcganDiscriminatorImpl : public nn::Module {
 public:
  AcganDiscriminatorImpl(int64_t channels, int64_t image_size, int64_t width, int64_t num_classes) {
    trunk_ = register_module("trunk", GanTrunk(channels, image_size, width));
    real_fake_ = register_module("real_fake", nn::Linear(trunk_->feature_dim(), 1));
    classes_ = register_module("classes", nn::Linear(trunk_->feature_dim(), num_classes));
  }
  Heads forward(const torch::Tensor& images) {
    torch::Tensor h = trunk_->forward(images);
    return {real_fake_->forward(h).squeeze(1), classes_->forward(h)};
  }

 private:
  GanTrunk trunk_{nullptr};
  nn::Linear real_fake_{nullptr}, classes_{nullptr};
};
TORCH_MODULE(AcganDiscriminator);

int64_t CheckedClasses(const ModelContext& ctx) {
  TORCH_CHECK(ctx.num_classes >= 2, "acgan needs a labelled data set with at least 2 classes, got ",
              ctx.num_classes);
  return ctx.num_classes;
}

class Acgan : public Model {
 public:
  explicit Acgan(const ModelContext& ctx)
      : num_classes_(CheckedClasses(ctx)),
        noise_dim_(ctx.spec->model_params.GetInt("noise_dim")),
        d_steps_(ctx.spec->model_params.GetInt("d_steps")),
        g_steps_(ctx.spec->model_params.GetInt("g_steps")),
        class_weight_(ctx.spec->train.loss.GetDouble("class")),
        generator_(noise_dim_ + num_classes_, ctx.channels, ctx.image_size,
                   ctx.spec->model_params.GetInt("feature_maps")),
        discriminator_(ctx.channels, ctx.image_size, ctx.spec->model_params.GetInt("feature_maps"), num_classes_),
        g_opt_(generator_->parameters(), AdamFrom(ctx.spec->train)),
        d_opt_(discriminator_->parameters(), AdamFrom(ctx.spec->train)) {
    InitDcgan(*generator_);
    InitDcgan(*discriminator_);
    generator_->to(ctx.device);
    discriminator_->to(ctx.device);
  }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor real = ToTanhRange(batch.images);
    const torch::Tensor& labels = batch.labels;
    TORCH_CHECK(labels.defined() && labels.max().item<int64_t>() < num_classes_ && labels.min().item<int64_t>() >= 0,
                "acgan: batch labels must lie in [0, ", num_classes_, ")");
    const int64_t n = real.size(0);
    double d_loss = 0, class_loss = 0, acc_real = 0, acc_fake = 0, class_acc_real = 0;
    for (int64_t i = 0; i < d_steps_; ++i) {
      torch::Tensor wanted = ctx.RandInt(num_classes_, n, labels.device());
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        fake = Generate(ctx.Normal(n, {noise_dim_}, real.device()), wanted);
      }
      Heads on_real = discriminator_->forward(real);
      Heads on_fake = discriminator_->forward(fake);
      torch::Tensor real_class = torch::nn::functional::cross_entropy(on_real.classes, labels);
      torch::Tensor loss = BceWithLogits(on_real.real_fake, 1.0) + BceWithLogits(on_fake.real_fake, 0.0) +
                           class_weight_ * (real_class + torch::nn::functional::cross_entropy(on_fake.classes, wanted));
      ctx.Update(loss, d_opt_);
      d_loss += loss.item<double>();
      class_loss += real_class.item<double>();
      acc_real += DiscriminatorAccuracy(on_real.real_fake, true);
      acc_fake += DiscriminatorAccuracy(on_fake.real_fake, false);
      class_acc_real += ClassAccuracy(on_real.classes, labels);
    }
    double g_loss = 0, class_acc_fake = 0;
    {
      FrozenParameters frozen(*discriminator_);
      for (int64_t i = 0; i < g_steps_; ++i) {
        torch::Tensor wanted = ctx.RandInt(num_classes_, n, labels.device());
        Heads on_fake = discriminator_->forward(Generate(ctx.Normal(n, {noise_dim_}, real.device()), wanted));
        torch::Tensor loss = BceWithLogits(on_fake.real_fake, 1.0) +
                             class_weight_ * torch::nn::functional::cross_entropy(on_fake.classes, wanted);
        ctx.Update(loss, g_opt_);
        g_loss += loss.item<double>();
        class_acc_fake += ClassAccuracy(on_fake.classes, wanted);
      }
    }
    const double d = static_cast<double>(d_steps_), g = static_cast<double>(g_steps_);
    return {{"d_loss", d_loss / d},         {"g_loss", g_loss / g},
            {"class_loss", class_loss / d}, {"d_acc_real", acc_real / d},
            {"d_acc_fake", acc_fake / d},   {"class_acc_real", class_acc_real / d},
            {"class_acc_fake", class_acc_fake / g}};
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"generator", generator_.get()}, {"discriminator", discriminator_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"generator", &g_opt_}, {"discriminator", &d_opt_}};
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    if (name == "pairs") {
      const torch::Device device = in.images.device();
      torch::Tensor z = SeededNoise(in.noise_seed, kPairs, noise_dim_, device);
      torch::Tensor top = torch::arange(kPairs, torch::TensorOptions().dtype(torch::kLong).device(device))
                              .remainder(num_classes_);
      torch::Tensor bottom = (top + 1).remainder(num_classes_);
      torch::Tensor images = Generate(torch::cat({z, z}, 0), torch::cat({top, bottom}, 0));
      return TileBatch(FromTanhRange(images), 2, kPairs);
    }
    TORCH_CHECK(false, "acgan has no grid named '", name, "'");
  }

 private:
  torch::Tensor Generate(const torch::Tensor& noise, const torch::Tensor& classes) {
    return generator_->forward(torch::cat({noise, OneHot(classes, num_classes_)}, 1));
  }

  int64_t num_classes_, noise_dim_, d_steps_, g_steps_;
  double class_weight_;
  GanGenerator generator_;
  AcganDiscriminator discriminator_;
  torch::optim::Adam g_opt_;
  torch::optim::Adam d_opt_;
};

}  // namespace

std::unique_ptr<Model> CreateAcgan(const ModelContext& context) { return std::make_unique<Acgan>(context); }

}  // namespace dfv::models
