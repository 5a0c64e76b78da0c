#include "worker/models/mathieu.h"

#include <optional>
#include <utility>
#include <vector>

#include "worker/models/nets.h"
#include "worker/models/split_codes.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

constexpr int64_t kReal = 1;
constexpr int64_t kFake = 0;

// Szabo et al.'s pair discriminator: the two images stacked as channels,
// 5x5 stride-2 convolutions 2C -> 32 -> 64 -> 128 (plus 128 -> 256 from 48
// pixels, as ConvEncoder deepens) with instance norm and LeakyReLU(0.2), and
// a linear layer to two logits (index 1 = real pair). 28x28: 512 features.
class PairDiscriminatorImpl : public nn::Module {
 public:
  PairDiscriminatorImpl(int64_t channels, int64_t image_size) {
    std::vector<int64_t> widths = {32, 64, 128};
    if (image_size >= 48) widths.push_back(256);
    int64_t in = 2 * channels;
    int64_t size = image_size;
    for (int64_t out : widths) {
      // No bias before the instance norm (see ConvEncoderImpl in nets.cc).
      layers_->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 5).stride(2).padding(1).bias(false)));
      layers_->push_back(nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out).affine(false).track_running_stats(false)));
      layers_->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
      in = out;
      size = (size + 2 - 5) / 2 + 1;
    }
    register_module("layers", layers_);
    output_ = register_module("output", nn::Linear(in * size * size, 2));
  }
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b) {
    return output_->forward(layers_->forward(torch::cat({a, b}, 1)).flatten(1));
  }

 private:
  nn::Sequential layers_;
  nn::Linear output_{nullptr};
};
TORCH_MODULE(PairDiscriminator);

// What the gate and the counters need across iterations, as buffers so the
// checkpoint carries them (a resumed run must take the same gate decisions).
class GateStateImpl : public nn::Module {
 public:
  GateStateImpl() {
    previous_accuracy = register_buffer("previous_accuracy", torch::zeros({1}, torch::kFloat64));
    // iterations, discriminator, generator, auto_encoder
    counts = register_buffer("update_counts", torch::zeros({4}, torch::kInt64));
  }
  torch::Tensor previous_accuracy;
  torch::Tensor counts;
};
TORCH_MODULE(GateState);

// Turns off gradients of a module's parameters for a scope: the frozen
// network still passes gradients through to its inputs, but computes none
// for its own weights.
class FreezeScope {
 public:
  explicit FreezeScope(nn::Module& module) : params_(module.parameters()) {
    for (auto& p : params_) p.set_requires_grad(false);
  }
  ~FreezeScope() {
    for (auto& p : params_) p.set_requires_grad(true);
  }
  FreezeScope(const FreezeScope&) = delete;
  FreezeScope& operator=(const FreezeScope&) = delete;

 private:
  std::vector<torch::Tensor> params_;
};

class Mathieu : public Model, public MathieuControls {
 public:
  explicit Mathieu(const ModelContext& ctx)
      : z_dim_(ctx.spec->model_params.GetInt("style_dim")),
        s_dim_(ctx.spec->model_params.GetInt("class_dim")),
        gate_enabled_(ctx.spec->model_params.GetBool("d_accuracy_gate")),
        accuracy_limit_(ctx.spec->model_params.GetDouble("d_accuracy_limit")),
        g_steps_(ctx.spec->model_params.GetInt("g_steps_per_d_step")),
        reconstruction_coef_(ctx.spec->train.loss.GetDouble("reconstruction")),
        kl_coef_(ctx.spec->train.loss.GetDouble("kl")),
        adversarial_coef_(ctx.spec->train.loss.GetDouble("adversarial")),
        encoder_(ctx.channels, ctx.image_size, z_dim_, s_dim_),
        decoder_(z_dim_, s_dim_, ctx.channels, ctx.image_size),
        discriminator_(ctx.channels, ctx.image_size),
        auto_encoder_opt_(ConcatParameters(encoder_->parameters(), decoder_->parameters()), AdamFrom(ctx.spec->train)),
        generator_opt_(ConcatParameters(encoder_->parameters(), decoder_->parameters()), AdamFrom(ctx.spec->train)),
        discriminator_opt_(discriminator_->parameters(), AdamFrom(ctx.spec->train)) {
    InitNormal(*encoder_, 0.05);
    InitNormal(*decoder_, 0.05);
    InitNormal(*discriminator_, 0.05);
    encoder_->to(ctx.device);
    decoder_->to(ctx.device);
    discriminator_->to(ctx.device);
  }

  bool NeedsSameClassPairs() const override { return true; }
  bool NeedsOtherClass() const override { return true; }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    const torch::Tensor& x1 = batch.images;
    const torch::Tensor& x2 = batch.same_images;
    const torch::Tensor& x3 = batch.other_images;
    const int64_t n = x1.size(0);
    const double elements = static_cast<double>(x1.numel());  // batch x pixels
    const auto long_options = torch::TensorOptions().dtype(torch::kInt64).device(x1.device());
    const torch::Tensor real = torch::full({n}, kReal, long_options);
    const torch::Tensor fake = torch::full({n}, kFake, long_options);

    // A. Reconstruction from the image's own s and from its same-class
    // partner's s (one encoder pass over both; instance norm is per sample).
    SplitCodes c12 = encoder_->forward(torch::cat({x1, x2}, 0));
    torch::Tensor mu1 = c12.mu.slice(0, 0, n), logvar1 = c12.logvar.slice(0, 0, n);
    torch::Tensor z1 = Reparameterize(mu1, logvar1, ctx.NormalLike(mu1));
    torch::Tensor recon = decoder_->forward(torch::cat({z1, z1}, 0), c12.s);
    torch::Tensor rec = torch::mse_loss(recon.slice(0, 0, n), x1) + torch::mse_loss(recon.slice(0, n), x1);
    torch::Tensor kl = KlDivergenceSum(mu1, logvar1) / elements;
    ctx.Update(reconstruction_coef_ * rec + kl_coef_ * kl, auto_encoder_opt_);
    counts()[3] += 1;

    // B. Generator: cross-class swaps and N(0, I) styles must pass as real
    // same-class pairs; the discriminator's weights get no gradient.
    torch::Tensor g_loss;
    for (int64_t repeat = 0; repeat < g_steps_; ++repeat) {
      const bool even = repeat % 2 == 0;
      const torch::Tensor& style_source = even ? x1 : x3;
      const torch::Tensor& class_source = even ? x3 : x1;
      SplitCodes c = encoder_->forward(torch::cat({style_source, class_source}, 0));
      torch::Tensor mu = c.mu.slice(0, 0, n), logvar = c.logvar.slice(0, 0, n);
      torch::Tensor s = c.s.slice(0, n);
      torch::Tensor z = Reparameterize(mu, logvar, ctx.NormalLike(mu));
      torch::Tensor z_prior = ctx.Normal(n, {z_dim_}, x1.device());
      torch::Tensor generated = decoder_->forward(torch::cat({z, z_prior}, 0), torch::cat({s, s}, 0));
      torch::Tensor adversarial;
      {
        FreezeScope frozen(*discriminator_);
        torch::Tensor logits = discriminator_->forward(torch::cat({class_source, class_source}, 0), generated);
        adversarial = torch::cross_entropy_loss(logits.slice(0, 0, n), real) +
                      torch::cross_entropy_loss(logits.slice(0, n), real);
        torch::Tensor kl_g = KlDivergenceSum(mu, logvar) / elements;
        ctx.Update(adversarial_coef_ * adversarial + kl_coef_ * kl_g, generator_opt_);
      }
      g_loss = adversarial.detach();
      counts()[2] += 1;
    }

    // C. Discriminator, with the encoder and decoder frozen (no graph through
    // them at all): real (x1, x2), fake (x1, dec(mu3, s1)).
    torch::Tensor fake_images;
    {
      torch::NoGradGuard no_grad;
      SplitCodes c = encoder_->forward(torch::cat({x3, x1}, 0));
      fake_images = decoder_->forward(c.mu.slice(0, 0, n), c.s.slice(0, n));
    }
    const bool train_discriminator = !gate_enabled_ || PreviousAccuracy() < accuracy_limit_;
    torch::Tensor d_loss, logits;
    {
      // Without an update the forward pass only measures accuracy.
      std::optional<torch::NoGradGuard> measure_only;
      if (!train_discriminator) measure_only.emplace();
      logits = discriminator_->forward(torch::cat({x1, x1}, 0), torch::cat({x2, fake_images}, 0));
      d_loss = torch::cross_entropy_loss(logits.slice(0, 0, n), real) +
               torch::cross_entropy_loss(logits.slice(0, n), fake);
    }
    const torch::Tensor correct = logits.detach().argmax(1).eq(torch::cat({real, fake}, 0));
    const torch::Tensor accuracy = correct.to(torch::kFloat32).mean();
    if (train_discriminator) {
      ctx.Update(d_loss, discriminator_opt_);
      counts()[1] += 1;
    }
    // Every rank takes the same gate decision next iteration.
    SetPreviousAccuracy(ctx.MeanAcrossRanks({accuracy.item<double>()})[0]);
    counts()[0] += 1;

    return {{"reconstruction", rec.item<double>()},
            {"kl", kl.item<double>()},
            {"g_loss", g_loss.item<double>()},
            {"d_loss", d_loss.item<double>()},
            {"d_acc", accuracy.item<double>()},
            {"d_updates", train_discriminator ? 1.0 : 0.0},
            {"g_updates", static_cast<double>(g_steps_)}};
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"encoder", encoder_.get()},
            {"decoder", decoder_.get()},
            {"discriminator", discriminator_.get()},
            {"state", state_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"auto_encoder", &auto_encoder_opt_},
            {"generator", &generator_opt_},
            {"discriminator", &discriminator_opt_}};
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
    return SplitCodesGrid("mathieu", name, in, encoder_, decoder_);
  }

  UpdateCounts Counts() const override {
    const torch::Tensor c = state_->counts;
    return {c[0].item<int64_t>(), c[1].item<int64_t>(), c[2].item<int64_t>(), c[3].item<int64_t>()};
  }

  double PreviousAccuracy() const override { return state_->previous_accuracy.item<double>(); }

  void SetPreviousAccuracy(double accuracy) override {
    torch::NoGradGuard no_grad;
    state_->previous_accuracy.fill_(accuracy);
  }

 private:
  torch::Tensor counts() { return state_->counts; }


  int64_t z_dim_, s_dim_;
  bool gate_enabled_;
  double accuracy_limit_;
  int64_t g_steps_;
  double reconstruction_coef_, kl_coef_, adversarial_coef_;
  SplitEncoder encoder_;
  SplitDecoder decoder_;
  PairDiscriminator discriminator_;
  GateState state_;
  torch::optim::Adam auto_encoder_opt_;
  torch::optim::Adam generator_opt_;
  torch::optim::Adam discriminator_opt_;
};

}  // namespace

std::unique_ptr<Model> CreateMathieu(const ModelContext& context) { return std::make_unique<Mathieu>(context); }

}  // namespace dfv::models
