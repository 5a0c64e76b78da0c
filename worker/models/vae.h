// `vae` (seed 001): convolutional encoder to a mean and log-variance,
// reparameterised latent z, transposed-convolution decoder. Loss: squared
// error and KL, both summed over pixels / latent units and averaged over the
// batch, weighted by train.loss.{reconstruction, kl}.
#ifndef DFV_WORKER_MODELS_VAE_H_
#define DFV_WORKER_MODELS_VAE_H_

#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateVae(const ModelContext& context);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_VAE_H_
