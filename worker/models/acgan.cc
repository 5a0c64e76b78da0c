#include "worker/models/acgan.h"

#include "common/jobspec/catalogue.h"
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
        settings_(GanSettings::From(ctx.spec->model_params)),
        metrics_(CatalogueEntry(ctx).metrics),
        input_(settings_.noise_dim, num_classes_),
        class_weight_(ctx.spec->train.loss.GetDouble("class")),
        generator_(input_.dim(), ctx.channels, ctx.image_size, settings_.feature_maps),
        discriminator_(ctx.channels, ctx.image_size, settings_.feature_maps, num_classes_),
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
    auto d_update = [&]() -> Metrics {
      GeneratorInput::Draw wanted;
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        wanted = input_.Sample(ctx, n, real.device());
        fake = generator_->forward(wanted.input);
      }
      Heads on_real = discriminator_->forward(real);
      Heads on_fake = discriminator_->forward(fake);
      torch::Tensor real_class = torch::nn::functional::cross_entropy(on_real.classes, labels);
      torch::Tensor loss =
          BceWithLogits(on_real.real_fake, 1.0) + BceWithLogits(on_fake.real_fake, 0.0) +
          class_weight_ * (real_class + torch::nn::functional::cross_entropy(on_fake.classes, wanted.codes));
      ctx.Update(loss, d_opt_);
      return {{"d_loss", loss.item<double>()},
              {"class_loss", real_class.item<double>()},
              {"d_acc_real", DiscriminatorAccuracy(on_real.real_fake, true)},
              {"d_acc_fake", DiscriminatorAccuracy(on_fake.real_fake, false)},
              {"class_acc_real", ClassAccuracy(on_real.classes, labels)}};
    };
    auto g_update = [&]() -> Metrics {
      FrozenParameters frozen(*discriminator_);
      GeneratorInput::Draw wanted = input_.Sample(ctx, n, real.device());
      Heads on_fake = discriminator_->forward(generator_->forward(wanted.input));
      torch::Tensor loss = BceWithLogits(on_fake.real_fake, 1.0) +
                           class_weight_ * torch::nn::functional::cross_entropy(on_fake.classes, wanted.codes);
      ctx.Update(loss, g_opt_);
      return {{"g_loss", loss.item<double>()}, {"class_acc_fake", ClassAccuracy(on_fake.classes, wanted.codes)}};
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
    if (name == jobspec::grid::kPairs) {
      const torch::Device device = in.images.device();
      torch::Tensor z = input_.FixedNoise(in.noise_seed, kPairs, device);
      torch::Tensor top = torch::arange(kPairs, torch::TensorOptions().dtype(torch::kLong).device(device))
                              .remainder(num_classes_);
      torch::Tensor bottom = (top + 1).remainder(num_classes_);
      torch::Tensor images = generator_->forward(input_.Join(torch::cat({z, z}, 0), torch::cat({top, bottom}, 0)));
      return TileBatch(FromTanhRange(images), 2, kPairs);
    }
    TORCH_CHECK(false, "acgan has no grid named '", name, "'");
  }

 private:
  int64_t num_classes_;
  GanSettings settings_;
  std::vector<std::string> metrics_;  // the catalogue's order
  GeneratorInput input_;
  double class_weight_;
  GanGenerator generator_;
  AcganDiscriminator discriminator_;
  torch::optim::Adam g_opt_;
  torch::optim::Adam d_opt_;
};

}  // namespace

std::unique_ptr<Model> CreateAcgan(const ModelContext& context) { return std::make_unique<Acgan>(context); }

}  // namespace dfv::models
