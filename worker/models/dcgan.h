// `dcgan` (seed 001): a generator from 100-d Gaussian noise (reshaped to
// 100x1x1, transposed convolutions, tanh) against a convolutional
// discriminator (sigmoid), both trained with binary cross-entropy and Adam
// (2e-4, betas 0.5 / 0.999 by default). Networks: gan_nets.h.
//
// One training step = model_params.d_steps discriminator updates (each on the
// step's real batch against fresh fakes) then model_params.g_steps generator
// updates (each on fresh noise, non-saturating loss -log D(G(z))): the D:G
// update ratio is d_steps:g_steps, 1:1 by default; seed 001 found 2:1 helpful.
//
// Metrics: d_loss (BCE on real plus BCE on fake), g_loss, d_acc_real and
// d_acc_fake (the share of real / fake images the discriminator classified
// correctly before its update), each averaged over the step's updates.
// Grid `random`: 32 samples (4 rows x 8) from noise fixed by
// GridInputs.noise_seed, so grids at successive steps are comparable.
// No encoder: Reconstruct and Encode return nothing.
#ifndef DFV_WORKER_MODELS_DCGAN_H_
#define DFV_WORKER_MODELS_DCGAN_H_

#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateDcgan(const ModelContext& context);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_DCGAN_H_
