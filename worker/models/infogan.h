// `infogan` (seed 001): a GAN whose generator input is one categorical code c
// (model_params.categories values, 10 by default, one-hot) concatenated with
// model_params.noise_dim Gaussian noise variables (62), and whose
// discriminator D and recognition network Q share one convolutional trunk: D
// is a real/fake head (sigmoid, BCE), Q a small MLP head predicting c
// (softmax, cross-entropy). Networks: gan_nets.h.
//
// Three Adam optimisers (train.lr, train.betas; 2e-4, 0.5 / 0.999 by
// default), as seed 001: G over the generator, D over trunk + real/fake head,
// Q over trunk + Q head. One training step = model_params.d_steps D updates,
// then model_params.g_steps rounds of
//   G: BCE(D(G(z, c)) -> 1) + loss.info * CE(Q(G(z, c)), c)
//   Q: loss.info * CE(Q(G(z, c)), c) on the same, detached, images
// The CE term is InfoGAN's variational bound on the mutual information
// between c and the image: G and Q both minimise it, so c ends up controlling
// a salient factor of the images.
//
// Metrics: d_loss, g_loss (including its info term), q_loss (the CE of Q's
// update), d_acc_real, d_acc_fake and q_acc (the share of codes Q recovers).
// Grids: `categorical`: 10 rows x `categories` columns, row r one noise
// vector, column k the code value k (the seed's code sweep); `random`: 32
// samples (4 x 8), sample i with code i mod categories. Noise is fixed by
// GridInputs.noise_seed. No encoder: Reconstruct and Encode return nothing.
#ifndef DFV_WORKER_MODELS_INFOGAN_H_
#define DFV_WORKER_MODELS_INFOGAN_H_

#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateInfogan(const ModelContext& context);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_INFOGAN_H_
