#include "worker/models/lord.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/jobspec/catalogue.h"
#include "worker/models/conv_transpose.h"
#include "worker/models/grid.h"
#include "worker/models/nets.h"

namespace dfv::models {
namespace {

namespace nn = torch::nn;

constexpr int64_t kGridImages = 16;   // training images the grids show
constexpr int64_t kSwapSide = 8;      // swap and random_class grids: 8 x 8 cells
constexpr double kNoiseGridSigmas[] = {0.0, 0.1, 0.3, 0.7, 1.0};
constexpr double kPi = 3.14159265358979323846;

// The generator: the content code through two linear layers into a
// [128, b, b] map, then 4x4 stride-2 transposed convolutions 128 -> 64 -> 32
// -> C (sizes as DeconvTrunk: 2 -> 6 -> 14 -> 28 at 28 pixels, otherwise
// doubling from ceil(S / 8) and cropped to S). The class code enters only
// through adaptive instance norm after the first two transposed convolutions:
// per channel, normalised features * (1 + gamma) + beta, with gamma and beta
// a linear function of the class code, as in LORD's generator.
class AdaInGeneratorImpl : public nn::Module {
 public:
  AdaInGeneratorImpl(int64_t content_dim, int64_t class_dim, int64_t channels, int64_t image_size)
      : image_size_(image_size), base_(DeconvTrunkImpl::BaseFor(image_size)) {
    const int64_t pad = image_size == 28 ? 0 : 1;
    fc1_ = register_module("fc1", nn::Linear(content_dim, 256));
    fc2_ = register_module("fc2", nn::Linear(256, 128 * base_ * base_));
    up1_ = register_module("up1", ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(128, kWidth1, 4).stride(2).padding(pad)));
    up2_ = register_module("up2", ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(kWidth1, kWidth2, 4).stride(2).padding(pad)));
    out_ = register_module("out", ConvTranspose2dOneDnn(nn::ConvTranspose2dOptions(kWidth2, channels, 4).stride(2).padding(1)));
    modulation_ = register_module("modulation", nn::Linear(class_dim, 2 * (kWidth1 + kWidth2)));
  }

  torch::Tensor forward(const torch::Tensor& content, const torch::Tensor& class_code) {
    std::vector<torch::Tensor> ada = modulation_->forward(class_code).split_with_sizes(
        {kWidth1, kWidth1, kWidth2, kWidth2}, 1);
    torch::Tensor h = torch::leaky_relu(fc1_->forward(content), 0.2);
    h = torch::leaky_relu(fc2_->forward(h), 0.2).view({-1, 128, base_, base_});
    h = torch::leaky_relu(AdaIn(up1_->forward(h), ada[0], ada[1]), 0.2);
    h = torch::leaky_relu(AdaIn(up2_->forward(h), ada[2], ada[3]), 0.2);
    torch::Tensor y = out_->forward(h);
    const int64_t produced = y.size(-1);
    if (produced != image_size_) {
      const int64_t off = (produced - image_size_) / 2;
      y = y.slice(2, off, off + image_size_).slice(3, off, off + image_size_);
    }
    return torch::sigmoid(y);
  }

 private:
  static constexpr int64_t kWidth1 = 64;
  static constexpr int64_t kWidth2 = 32;

  static torch::Tensor AdaIn(const torch::Tensor& x, const torch::Tensor& gamma, const torch::Tensor& beta) {
    torch::Tensor normalised = torch::instance_norm(x, {}, {}, {}, {}, /*use_input_stats=*/true, 0.0, 1e-5,
                                                    /*cudnn_enabled=*/false);
    return normalised * (1 + gamma.unsqueeze(2).unsqueeze(3)) + beta.unsqueeze(2).unsqueeze(3);
  }

  int64_t image_size_;
  int64_t base_;
  nn::Linear fc1_{nullptr}, fc2_{nullptr}, modulation_{nullptr};
  ConvTranspose2dOneDnn up1_{nullptr}, up2_{nullptr}, out_{nullptr};
};
TORCH_MODULE(AdaInGenerator);

// Stage 2's encoders: ConvEncoder, then a 256-unit hidden layer and the code.
class CodeEncoderImpl : public nn::Module {
 public:
  CodeEncoderImpl(int64_t channels, int64_t image_size, int64_t code_dim) {
    trunk_ = register_module("trunk", ConvEncoder(channels, image_size));
    hidden_ = register_module("hidden", nn::Linear(trunk_->feature_dim(), 256));
    out_ = register_module("out", nn::Linear(256, code_dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return out_->forward(torch::leaky_relu(hidden_->forward(trunk_->forward(x)), 0.2));
  }

 private:
  ConvEncoder trunk_{nullptr};
  nn::Linear hidden_{nullptr}, out_{nullptr};
};
TORCH_MODULE(CodeEncoder);

// The learned codes: one class code per class, one content code per
// training image (indexed by the data set index the loader reports).
class LatentCodesImpl : public nn::Module {
 public:
  LatentCodesImpl(int64_t num_classes, int64_t class_dim, int64_t train_size, int64_t content_dim) {
    class_codes = register_module("class_codes", nn::Embedding(num_classes, class_dim));
    content_codes = register_module("content_codes", nn::Embedding(train_size, content_dim));
    torch::NoGradGuard no_grad;
    // LORD's initialisation: small uniform codes.
    class_codes->weight.uniform_(-0.05, 0.05);
    content_codes->weight.uniform_(-0.05, 0.05);
  }
  nn::Embedding class_codes{nullptr};
  nn::Embedding content_codes{nullptr};
};
TORCH_MODULE(LatentCodes);

// State that must survive a checkpoint: whether stage 2 has copied the
// generator yet, and the training images the grids show.
class LordStateImpl : public nn::Module {
 public:
  LordStateImpl(int64_t channels, int64_t image_size) {
    amortization_started = register_buffer("amortization_started", torch::zeros({1}, torch::kInt64));
    grid_count = register_buffer("grid_count", torch::zeros({1}, torch::kInt64));
    grid_images = register_buffer("grid_images", torch::zeros({kGridImages, channels, image_size, image_size}));
    grid_indices = register_buffer("grid_indices", torch::zeros({kGridImages}, torch::kInt64));
    grid_labels = register_buffer("grid_labels", torch::zeros({kGridImages}, torch::kInt64));
  }
  torch::Tensor amortization_started, grid_count, grid_images, grid_indices, grid_labels;
};
TORCH_MODULE(LordState);

void SetLearningRate(torch::optim::Optimizer& optimizer, size_t group, double lr) {
  static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[group].options()).lr(lr);
}

// The driver's step count for this job (see trainer.cc): epochs times whole
// global batches per epoch, capped by max_steps.
int64_t TotalSteps(const ModelContext& ctx) {
  const jobspec::TrainSpec& train = ctx.spec->train;
  int64_t total = train.epochs * (ctx.train_size / train.batch_size);
  if (train.max_steps > 0) total = std::min(total, train.max_steps);
  return total;
}

class Lord : public Model, public LordControls {
 public:
  explicit Lord(const ModelContext& ctx)
      : content_dim_(ctx.spec->model_params.GetInt("content_dim")),
        class_dim_(ctx.spec->model_params.GetInt("class_dim")),
        content_noise_(ctx.spec->model_params.GetDouble("content_noise")),
        loss_kind_(ctx.spec->model_params.GetString("reconstruction_loss")),
        cosine_(ctx.spec->model_params.GetString("lr_schedule") == "cosine"),
        min_lr_(ctx.spec->model_params.GetDouble("min_lr")),
        generator_lr_(ctx.spec->train.lr),
        embedding_lr_(ctx.spec->train.lr * ctx.spec->model_params.GetDouble("embedding_lr_scale")),
        encoder_lr_(ctx.spec->model_params.GetDouble("encoder_lr")),
        reconstruction_coef_(ctx.spec->train.loss.GetDouble("reconstruction")),
        content_l2_coef_(ctx.spec->train.loss.GetDouble("content_l2")),
        code_regression_coef_(ctx.spec->train.loss.GetDouble("code_regression")),
        num_classes_(ctx.num_classes),
        device_(ctx.device),
        generator_(content_dim_, class_dim_, ctx.channels, ctx.image_size),
        codes_(ctx.num_classes, class_dim_, std::max<int64_t>(ctx.train_size, 1), content_dim_),
        content_encoder_(ctx.channels, ctx.image_size, content_dim_),
        class_encoder_(ctx.channels, ctx.image_size, class_dim_),
        amortized_generator_(content_dim_, class_dim_, ctx.channels, ctx.image_size),
        state_(ctx.channels, ctx.image_size),
        latent_opt_(LatentGroups(ctx), torch::optim::AdamOptions(generator_lr_)),
        amortized_opt_(ConcatParameters(ConcatParameters(content_encoder_->parameters(), class_encoder_->parameters()),
                              amortized_generator_->parameters()),
                       torch::optim::AdamOptions(encoder_lr_).betas({ctx.spec->train.betas[0], ctx.spec->train.betas[1]})) {
    const int64_t total = TotalSteps(ctx);
    const double fraction = ctx.spec->model_params.GetDouble("encoder_fraction");
    const int64_t stage2 = std::max<int64_t>(1, std::llround(fraction * static_cast<double>(total)));
    amortization_start_ = std::max<int64_t>(std::min<int64_t>(1, total), total - stage2);
    total_steps_ = total;
    generator_->to(device_);
    codes_->to(device_);
    content_encoder_->to(device_);
    class_encoder_->to(device_);
    amortized_generator_->to(device_);
  }

  Metrics TrainStep(const data::Batch& batch, StepContext& ctx) override {
    RememberGridImages(batch);
    return ctx.step < amortization_start_ ? LatentStep(batch, ctx) : AmortizedStep(batch, ctx);
  }

  std::vector<std::pair<std::string, nn::Module*>> Modules() override {
    return {{"generator", generator_.get()},
            {"codes", codes_.get()},
            {"content_encoder", content_encoder_.get()},
            {"class_encoder", class_encoder_.get()},
            {"amortized_generator", amortized_generator_.get()},
            {"state", state_.get()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> Optimizers() override {
    return {{"latent", &latent_opt_}, {"amortized", &amortized_opt_}};
  }

  torch::Tensor Reconstruct(const torch::Tensor& images) override {
    return amortized_generator_->forward(content_encoder_->forward(images), class_encoder_->forward(images));
  }

  std::map<std::string, torch::Tensor> Encode(const torch::Tensor& images) override {
    return {{"s", class_encoder_->forward(images)}, {"z", content_encoder_->forward(images)}};
  }

  torch::Tensor Decode(const torch::Tensor& s, const torch::Tensor& z) override {
    return amortized_generator_->forward(z, s);
  }

  torch::Tensor RenderGrid(const std::string& name, const GridInputs& in) override {
    if (name == jobspec::grid::kSwap) {
      // Rows take s (class encoder) from the left column, columns take z
      // (content encoder) from the top row.
      torch::Tensor rows = in.images.slice(0, 0, kSwapSide), cols = in.images.slice(0, kSwapSide, 2 * kSwapSide);
      torch::Tensor s = class_encoder_->forward(rows).repeat_interleave(kSwapSide, 0);
      torch::Tensor z = content_encoder_->forward(cols).repeat({kSwapSide, 1});
      return SwapGrid(rows, cols, amortized_generator_->forward(z, s));
    }
    // The other grids show training images through their learned codes;
    // before any training step there are none, so the test images stand in
    // through the encoders.
    const int64_t shown = state_->grid_count.item<int64_t>();
    torch::Tensor images, indices, labels;
    if (shown > 0) {
      images = state_->grid_images.slice(0, 0, shown).to(device_);
      indices = state_->grid_indices.slice(0, 0, shown).to(device_);
      labels = state_->grid_labels.slice(0, 0, shown).to(device_);
    }
    auto gen = at::detail::createCPUGenerator(in.noise_seed);
    if (name == jobspec::grid::kReconstruction) {
      if (shown == 0) {
        torch::Tensor x = in.images.slice(0, 0, kGridImages);
        return ReconstructionGrid(x, Reconstruct(x));
      }
      return ReconstructionGrid(images, Decode(indices, labels, torch::Tensor()));
    }
    if (name == jobspec::grid::kNoise) {
      TORCH_CHECK(shown > 0, "lord: the noise grid needs a training step first");
      torch::Tensor eps = torch::randn({shown, content_dim_}, gen).to(device_);
      std::vector<torch::Tensor> rows = {images};
      for (double sigma : kNoiseGridSigmas) rows.push_back(Decode(indices, labels, eps * sigma));
      return TileBatch(torch::cat(rows, 0), static_cast<int64_t>(rows.size()), shown);
    }
    if (name == jobspec::grid::kRandomClass) {
      TORCH_CHECK(shown > 0, "lord: the random_class grid needs a training step first");
      return RandomClassGrid(images, indices, labels, gen);
    }
    TORCH_CHECK(false, "lord has no grid named '", name, "'");
  }

  torch::Tensor DecodeLearnedCodes(const torch::Tensor& indices, const torch::Tensor& labels,
                                   double content_noise) override {
    torch::NoGradGuard no_grad;
    torch::Tensor noise;
    if (content_noise > 0) noise = torch::randn({indices.size(0), content_dim_}).to(device_) * content_noise;
    return Decode(indices.to(device_), labels.to(device_), noise);
  }

  int64_t AmortizationStartStep() const override { return amortization_start_; }

 private:
  // Generator and embeddings in one Adam (one update per step), with the
  // embeddings at their own rate.
  std::vector<torch::optim::OptimizerParamGroup> LatentGroups(const ModelContext& ctx) {
    const std::vector<double>& betas = ctx.spec->train.betas;
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(generator_->parameters(),
                        std::make_unique<torch::optim::AdamOptions>(
                            torch::optim::AdamOptions(generator_lr_).betas({betas[0], betas[1]})));
    groups.emplace_back(codes_->parameters(),
                        std::make_unique<torch::optim::AdamOptions>(
                            torch::optim::AdamOptions(embedding_lr_).betas({betas[0], betas[1]})));
    return groups;
  }

  // A half cosine from `initial` (at `step` 0) to min_lr (at `steps`), or
  // `initial` throughout without the schedule.
  double ScheduledRate(double initial, int64_t step, int64_t steps) const {
    if (!cosine_ || steps <= 0) return initial;
    const double progress = std::clamp(static_cast<double>(step) / static_cast<double>(steps), 0.0, 1.0);
    const double floor = std::min(min_lr_, initial);
    return floor + (initial - floor) * 0.5 * (1.0 + std::cos(kPi * progress));
  }

  torch::Tensor ReconstructionLoss(const torch::Tensor& output, const torch::Tensor& target) const {
    if (loss_kind_ == "l1") return torch::l1_loss(output, target);
    if (loss_kind_ == "l2") return torch::mse_loss(output, target);
    return torch::l1_loss(output, target) + torch::mse_loss(output, target);
  }

  // Stage-1 decoding of learned codes; `noise` (undefined for none) is added
  // to the content codes.
  torch::Tensor Decode(const torch::Tensor& indices, const torch::Tensor& labels, const torch::Tensor& noise) {
    torch::Tensor content = codes_->content_codes->forward(indices);
    if (noise.defined()) content = content + noise;
    return generator_->forward(content, codes_->class_codes->forward(labels));
  }

  Metrics LatentStep(const data::Batch& batch, StepContext& ctx) {
    const torch::Tensor& x = batch.images;
    const double generator_lr = ScheduledRate(generator_lr_, ctx.step, amortization_start_);
    SetLearningRate(latent_opt_, 0, generator_lr);
    SetLearningRate(latent_opt_, 1, ScheduledRate(embedding_lr_, ctx.step, amortization_start_));

    torch::Tensor content = codes_->content_codes->forward(batch.indices);
    torch::Tensor noisy = content_noise_ > 0 ? content + content_noise_ * ctx.NormalLike(content) : content;
    torch::Tensor output = generator_->forward(noisy, codes_->class_codes->forward(batch.labels));
    torch::Tensor rec = ReconstructionLoss(output, x);
    torch::Tensor penalty = content.pow(2).sum(1).mean();
    torch::Tensor loss = reconstruction_coef_ * rec + content_l2_coef_ * penalty;
    ctx.Update(loss, latent_opt_);
    return {{"loss", loss.item<double>()},
            {"reconstruction", rec.item<double>()},
            {"content_l2", penalty.item<double>()},
            {"code_regression", 0.0},
            {"stage", 1.0},
            {"lr", generator_lr}};
  }

  Metrics AmortizedStep(const data::Batch& batch, StepContext& ctx) {
    if (state_->amortization_started.item<int64_t>() == 0) {
      // Stage 2 starts from the stage-1 generator; the original stays as it
      // was so the learned-code grids keep showing stage 1's result.
      torch::NoGradGuard no_grad;
      auto source = generator_->parameters();
      auto target = amortized_generator_->parameters();
      for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
      state_->amortization_started.fill_(1);
    }
    const torch::Tensor& x = batch.images;
    const double lr = ScheduledRate(encoder_lr_, ctx.step - amortization_start_, total_steps_ - amortization_start_);
    SetLearningRate(amortized_opt_, 0, lr);

    torch::Tensor target_content, target_class, penalty;
    {
      torch::NoGradGuard no_grad;
      target_content = codes_->content_codes->forward(batch.indices);
      target_class = codes_->class_codes->forward(batch.labels);
      penalty = target_content.pow(2).sum(1).mean();
    }
    torch::Tensor content = content_encoder_->forward(x);
    torch::Tensor class_code = class_encoder_->forward(x);
    torch::Tensor rec = ReconstructionLoss(amortized_generator_->forward(content, class_code), x);
    torch::Tensor regression = torch::mse_loss(content, target_content) + torch::mse_loss(class_code, target_class);
    torch::Tensor loss = reconstruction_coef_ * rec + code_regression_coef_ * regression;
    ctx.Update(loss, amortized_opt_);
    return {{"loss", loss.item<double>()},
            {"reconstruction", rec.item<double>()},
            {"content_l2", penalty.item<double>()},
            {"code_regression", regression.item<double>()},
            {"stage", 2.0},
            {"lr", lr}};
  }

  // Keeps the first kGridImages training images (with index and label) for
  // the learned-code grids.
  void RememberGridImages(const data::Batch& batch) {
    const int64_t have = state_->grid_count.item<int64_t>();
    if (have >= kGridImages) return;
    const int64_t take = std::min(kGridImages - have, batch.images.size(0));
    torch::NoGradGuard no_grad;
    state_->grid_images.slice(0, have, have + take).copy_(batch.images.slice(0, 0, take).to(torch::kCPU));
    state_->grid_indices.slice(0, have, have + take).copy_(batch.indices.slice(0, 0, take).to(torch::kCPU));
    state_->grid_labels.slice(0, have, have + take).copy_(batch.labels.slice(0, 0, take).to(torch::kCPU));
    state_->grid_count.fill_(have + take);
  }

  // Top row: up to 8 training images, whose content codes the columns use.
  // Rows: the learned class codes of up to 4 classes spread over the label
  // range (headed by a shown image of that class when there is one), then
  // random class codes from a per-dimension Gaussian fitted to the learned
  // class codes (headed by a blank cell).
  torch::Tensor RandomClassGrid(const torch::Tensor& images, const torch::Tensor& indices,
                                const torch::Tensor& labels, at::Generator& gen) {
    const int64_t cols = std::min<int64_t>(kSwapSide, images.size(0));
    const int64_t learned_rows = std::min<int64_t>(num_classes_, kSwapSide / 2);
    const int64_t random_rows = kSwapSide - learned_rows;

    torch::Tensor class_table = codes_->class_codes->weight;
    std::vector<int64_t> classes;
    for (int64_t r = 0; r < learned_rows; ++r) classes.push_back(r * num_classes_ / learned_rows);
    torch::Tensor learned = class_table.index_select(
        0, torch::tensor(classes, torch::TensorOptions().dtype(torch::kInt64)).to(device_));
    torch::Tensor mean = class_table.mean(0, /*keepdim=*/true);
    torch::Tensor stddev = num_classes_ > 1 ? class_table.std(0, /*unbiased=*/true, /*keepdim=*/true)
                                            : torch::ones_like(mean);
    torch::Tensor random = mean + stddev * torch::randn({random_rows, class_dim_}, gen).to(device_);
    torch::Tensor row_codes = torch::cat({learned, random}, 0);  // [8, class_dim]

    torch::Tensor content = codes_->content_codes->forward(indices.slice(0, 0, cols));
    torch::Tensor decoded = generator_->forward(content.repeat({kSwapSide, 1}),
                                                row_codes.repeat_interleave(cols, 0));

    torch::Tensor cpu_labels = labels.to(torch::kCPU);
    std::vector<torch::Tensor> cells;
    cells.emplace_back();  // blank corner
    for (int64_t c = 0; c < cols; ++c) cells.push_back(images[c]);
    for (int64_t r = 0; r < kSwapSide; ++r) {
      torch::Tensor header;
      if (r < learned_rows) {
        for (int64_t i = 0; i < cpu_labels.size(0); ++i) {
          if (cpu_labels[i].item<int64_t>() == classes[r]) {
            header = images[i];
            break;
          }
        }
      }
      cells.push_back(header);
      for (int64_t c = 0; c < cols; ++c) cells.push_back(decoded[r * cols + c]);
    }
    return TileGrid(cells, kSwapSide + 1, cols + 1);
  }

  int64_t content_dim_, class_dim_;
  double content_noise_;
  std::string loss_kind_;
  bool cosine_;
  double min_lr_, generator_lr_, embedding_lr_, encoder_lr_;
  double reconstruction_coef_, content_l2_coef_, code_regression_coef_;
  int64_t num_classes_;
  torch::Device device_;
  AdaInGenerator generator_;
  LatentCodes codes_;
  CodeEncoder content_encoder_;
  CodeEncoder class_encoder_;
  AdaInGenerator amortized_generator_;
  LordState state_;
  torch::optim::Adam latent_opt_;
  torch::optim::Adam amortized_opt_;
  int64_t amortization_start_ = 0;
  int64_t total_steps_ = 0;
};

}  // namespace

std::unique_ptr<Model> CreateLord(const ModelContext& context) { return std::make_unique<Lord>(context); }

}  // namespace dfv::models
