#include "common/jobspec/catalogue.h"

namespace dfv::jobspec {
namespace {

using F = FieldSchema;

// A loss coefficient: a weight >= 0 on one term of the model's loss.
FieldSchema Coefficient(std::string name, double default_value, std::string doc) {
  return F::Float(std::move(name), std::move(doc)).Min(0).Default(default_value);
}

std::vector<ModelInfo> BuildCatalogue() {
  std::vector<ModelInfo> models;

  models.push_back(ModelInfo{
      "vae",
      "seed 001",
      "convolutional VAE: encoder -> (mu, log-variance), reparameterised z, transposed-conv decoder",
      {F::Int("latent_dim", "size of the latent code z").Default(int64_t{100}).Range(1, 4096)},
      {Coefficient("reconstruction", 1.0, "weight of the summed MSE reconstruction term"),
       Coefficient("kl", 1.0, "weight of the summed KL divergence term")},
      TrainDefaults{1e-3, {0.9, 0.999}, 64},
      {grid::kReconstruction, grid::kRandom},
      {"loss", "reconstruction", "kl", "mse"},
  });

  models.push_back(ModelInfo{
      "cycle_vae",
      "seed 002",
      "cycle-consistent VAE: encoder -> z (unspecified, mu and log-variance) and s (specified); "
      "decoder(z, s)",
      {F::Int("style_dim", "size of z, the unspecified (style) code").Default(int64_t{16}).Range(1, 4096),
       F::Int("class_dim", "size of s, the specified (class) code").Default(int64_t{16}).Range(1, 4096),
       F::Enum("reverse_pairs", {"other_class", "independent"},
               "the two images whose s the reverse cycle decodes with one sampled z: an image and one of "
               "another class (other_class), or two independent images of the batch, as the reference "
               "implementation's two independent batches (independent)")
           .Default(std::string("other_class"))},
      {Coefficient("reconstruction", 2.0, "weight of the forward-cycle reconstruction terms"),
       Coefficient("reverse_cycle", 10.0, "weight of the reverse-cycle L1 term on z"),
       Coefficient("kl", 10.0,
                   "weight of the KL terms on z (the reference uses 3; 10 leaves less class in z, "
                   "see docs/reproduction.md)")},
      TrainDefaults{1e-4, {0.9, 0.999}, 64},
      {grid::kReconstruction, grid::kSwap, grid::kInterpolation},
      {"loss", "reconstruction", "kl", "reverse_cycle"},
  });

  // The GAN family (seed 001): 2e-4, betas (0.5, 0.999) and batch 64 for
  // every optimiser; the same update schedule and network width settings.
  const auto gan_params = [](int64_t noise_dim, std::vector<FieldSchema> extra) {
    std::vector<FieldSchema> params = {
        F::Int("noise_dim", "Gaussian noise variables of the generator's input")
            .Default(noise_dim).Range(1, 4096),
        F::Int("d_steps", "discriminator updates per training step; with g_steps, the D:G update ratio")
            .Default(int64_t{1}).Range(1, 100),
        F::Int("g_steps", "generator updates per training step, after the discriminator's")
            .Default(int64_t{1}).Range(1, 100),
        F::Int("feature_maps", "network width: channels of the generator's last hidden layer and of the "
                               "discriminator's first, doubling per layer (DCGAN: 64)")
            .Default(int64_t{64}).Range(4, 1024)};
    for (FieldSchema& field : extra) params.push_back(std::move(field));
    return params;
  };
  const TrainDefaults gan_train{2e-4, {0.5, 0.999}, 64};

  models.push_back(ModelInfo{
      "dcgan",
      "seed 001",
      "DCGAN: generator from Gaussian noise through transposed convolutions (tanh) against a "
      "convolutional discriminator (sigmoid), BCE; grid random: 4x8 samples from fixed noise",
      gan_params(100, {}),
      {},
      gan_train,
      {grid::kRandom},
      {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"},
  });

  models.push_back(ModelInfo{
      "acgan",
      "seed 001",
      "ACGAN: generator from noise + one-hot class; discriminator with a real/fake head (BCE) and a "
      "class head (cross-entropy); grid pairs: 2 rows x 16 columns, column j one noise vector, "
      "class j mod K on top and class (j+1) mod K below",
      gan_params(100, {}),
      {Coefficient("class", 1.0, "weight of the class cross-entropy terms (real and fake for D, fake for G)")},
      gan_train,
      {grid::kPairs},
      {"d_loss", "g_loss", "class_loss", "d_acc_real", "d_acc_fake", "class_acc_real", "class_acc_fake"},
  });

  models.push_back(ModelInfo{
      "infogan",
      "seed 001",
      "InfoGAN: generator from a categorical code + noise; D (real/fake, BCE) and Q (code, "
      "cross-entropy) share a trunk; optimisers for G, D and Q; grid categorical: rows = noise, "
      "columns = code values; grid random: 4x8 samples, code i mod categories",
      gan_params(62, {F::Int("categories", "values of the categorical code c").Default(int64_t{10}).Range(2, 100)}),
      {Coefficient("info", 1.0, "weight of the cross-entropy (mutual information) term for G and Q")},
      gan_train,
      {grid::kCategorical, grid::kRandom},
      {"d_loss", "g_loss", "q_loss", "d_acc_real", "d_acc_fake", "q_acc"},
  });

  models.push_back(ModelInfo{
      "mathieu",
      "seeds 000, 004",
      "Mathieu et al. with a pair discriminator: encoder -> z (mu, log-variance) and s; decoder(z, s); "
      "D on image pairs (real = same class); reconstruction from same-class swaps, adversarial loss on "
      "dec(z1, s3) and dec(N(0, I), s3); D trained only below an accuracy limit, G more often than D",
      {F::Int("style_dim", "size of z, the unspecified (style) code").Default(int64_t{16}).Range(1, 4096),
       F::Int("class_dim", "size of s, the specified (class) code").Default(int64_t{16}).Range(1, 4096),
       F::Bool("d_accuracy_gate", "train the discriminator only while its accuracy on the previous "
                                  "batch is below d_accuracy_limit (seed 004)")
           .Default(true),
       F::Float("d_accuracy_limit", "the gate's accuracy limit").Default(0.8).Min(0, true).Max(1),
       F::Int("g_steps_per_d_step", "generator updates per discriminator update (seed 004: 2)")
           .Default(int64_t{2}).Range(1, 16)},
      {Coefficient("reconstruction", 1.0, "weight of the two reconstruction MSE terms"),
       Coefficient("kl", 1.0, "weight of the KL term on z (divided by batch x pixels)"),
       Coefficient("adversarial", 1.0, "weight of the generator's two cross-entropy terms")},
      TrainDefaults{1e-4, {0.5, 0.999}, 64},
      {grid::kReconstruction, grid::kSwap, grid::kInterpolation},
      {"reconstruction", "kl", "g_loss", "d_loss", "d_acc", "d_updates", "g_updates"},
  });

  models.push_back(ModelInfo{
      "lord",
      "seed 003",
      "LORD-style latent optimisation: learned class codes (s) and per-image content codes (z) with "
      "Gaussian noise, an AdaIN generator, L1/L2 loss; then encoders amortise the codes for test images",
      {F::Int("content_dim", "size of z, the per-image content code").Default(int64_t{16}).Range(1, 4096),
       F::Int("class_dim", "size of s, the per-class code").Default(int64_t{16}).Range(1, 4096),
       F::Float("content_noise", "std of the Gaussian noise added to content codes in training")
           .Default(0.3).Min(0).Max(100),
       F::Enum("reconstruction_loss", {"l1", "l2", "l1+l2"}, "per-pixel reconstruction loss")
           .Default(std::string("l1+l2")),
       F::Float("embedding_lr_scale", "learning rate of both code tables = train.lr times this (LORD: 10)")
           .Default(1.0).Min(0, true).Max(1000),
       F::Enum("lr_schedule", {"constant", "cosine"},
               "learning rates: constant, or a half cosine to min_lr over each stage")
           .Default(std::string("constant")),
       F::Float("min_lr", "the cosine schedule's final learning rate").Default(1e-5).Min(0).Max(1),
       F::Float("encoder_fraction", "share of the run's last steps spent on stage 2 (the encoders)")
           .Default(0.2).Min(0, true).Max(0.9),
       F::Float("encoder_lr", "Adam learning rate of stage 2 (encoders and generator copy)")
           .Default(1e-3).Min(0, true).Max(10)},
      {Coefficient("reconstruction", 1.0, "weight of the reconstruction loss (both stages)"),
       Coefficient("content_l2", 1e-4, "weight of the content codes' squared L2 norm (stage 1)"),
       Coefficient("code_regression", 10.0, "weight of the encoders' MSE to the learned codes (stage 2)")},
      TrainDefaults{1e-3, {0.9, 0.999}, 32},
      {grid::kReconstruction, grid::kRandomClass, grid::kNoise, grid::kSwap},
      {"loss", "reconstruction", "content_l2", "code_regression", "stage", "lr"},
  });

  return models;
}

}  // namespace

const std::vector<ModelInfo>& ModelCatalogue() {
  static const std::vector<ModelInfo>* const kCatalogue = new std::vector<ModelInfo>(BuildCatalogue());
  return *kCatalogue;
}

const ModelInfo* FindModel(std::string_view name) {
  for (const ModelInfo& model : ModelCatalogue()) {
    if (model.name == name) return &model;
  }
  return nullptr;
}

std::vector<std::string> ModelNames() {
  std::vector<std::string> names;
  for (const ModelInfo& model : ModelCatalogue()) names.push_back(model.name);
  return names;
}

}  // namespace dfv::jobspec
