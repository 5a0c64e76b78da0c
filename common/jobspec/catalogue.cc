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
      {"reconstruction", "random"},
  });

  models.push_back(ModelInfo{
      "cycle_vae",
      "seed 002",
      "cycle-consistent VAE: encoder -> z (unspecified, mu and log-variance) and s (specified); "
      "decoder(z, s)",
      {F::Int("style_dim", "size of z, the unspecified (style) code").Default(int64_t{16}).Range(1, 4096),
       F::Int("class_dim", "size of s, the specified (class) code").Default(int64_t{16}).Range(1, 4096)},
      {Coefficient("reconstruction", 2.0, "weight of the forward-cycle reconstruction terms"),
       Coefficient("reverse_cycle", 10.0, "weight of the reverse-cycle L1 term on z"),
       Coefficient("kl", 3.0, "weight of the KL terms on z")},
      TrainDefaults{1e-4, {0.9, 0.999}, 64},
      {"reconstruction", "swap", "interpolation"},
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
