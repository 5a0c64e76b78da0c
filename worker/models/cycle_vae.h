// `cycle_vae` (seed 002, Jha et al. 2018): an encoder to an unspecified code
// z (mean, log-variance) and a specified code s, and a decoder(z, s).
//
// Forward cycle (encoder and decoder stepped): x1, x2 of one class swap s and
// are reconstructed: 2 * [MSE(dec(z1, s2), x1) + MSE(dec(z2, s1), x2)] +
// 3 * [KL(z1) + KL(z2)], each KL divided by batch x pixels.
// Reverse cycle (encoder stepped): one z ~ N(0, I) decoded with the (detached)
// s of two unrelated images, re-encoded; 10 * mean |mu(E(dec(z, s1))) -
// mu(E(dec(z, s2)))|. Coefficients come from train.loss.
#ifndef DFV_WORKER_MODELS_CYCLE_VAE_H_
#define DFV_WORKER_MODELS_CYCLE_VAE_H_

#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateCycleVae(const ModelContext& context);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_CYCLE_VAE_H_
