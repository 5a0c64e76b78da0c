// `lord` (seed 003; Gabbay and Hoshen, "Demystifying Inter-Class
// Disentanglement", ICLR 2020): latent optimisation instead of an encoder.
// Every class has a learned class code (s) and every training image a learned
// content code (z); a generator maps (content, class) to the image, the
// class code entering through adaptive instance norm only.
//
// Stage 1 (latent optimisation), the first steps of the run: for a batch of
// training images x with dataset indices i and labels y,
//   out = G(content[i] + N(0, sigma^2), class[y])
//   loss = reconstruction * rec(out, x) + content_l2 * mean_b ||content[i]||^2
// where rec is L1, L2 or L1 + L2 (per-pixel means; model_params.
// reconstruction_loss) and sigma is model_params.content_noise. One Adam
// steps the generator at train.lr and both embeddings at train.lr *
// embedding_lr_scale.
// Stage 2 (amortisation), the last encoder_fraction of the run's steps: the
// embeddings are frozen; a class encoder and a content encoder learn to
// predict the learned codes from the image, and a copy of the stage-1
// generator is fine-tuned on their output:
//   loss = reconstruction * rec(G2(Ez(x), Es(x)), x) +
//          code_regression * [MSE(Ez(x), content[i]) + MSE(Es(x), class[y])]
// Test images are encoded, reconstructed and swapped through stage 2's
// encoders and generator. The stage boundary is derived from the job: total
// steps = min(epochs * floor(train_size / batch_size), max_steps when set),
// exactly the driver's count. Before stage 2 has run, the encoders (and so
// Encode, Reconstruct and the swap grid) are untrained.
//
// Learning rates: constant, or (model_params.lr_schedule: cosine) decayed per
// step from the initial rate to min_lr along a half cosine over each stage,
// set on the optimisers from StepContext::step (the driver has no schedule
// hook; this is what PyTorch's CosineAnnealingLR does per step).
//
// Grids: reconstruction (training images over their decodings from the
// learned codes, no noise), random_class (content codes of training images
// along the top crossed with learned class codes and random class codes drawn
// from a Gaussian fitted to the learned ones), noise (training images, then
// their decodings with content noise sigma = 0, 0.1, 0.3, 0.7, 1, one row
// each), swap (test images through the stage-2 encoders: row takes s, column
// takes z). The training images shown are the first 16 the model trained on;
// they are kept in the checkpoint so a resumed run shows the same ones.
//
// Metrics per step: loss, reconstruction, content_l2 (the penalty's value),
// code_regression (0 in stage 1), stage (1 or 2), lr (the generator's rate in
// stage 1, the encoders' in stage 2).
#ifndef DFV_WORKER_MODELS_LORD_H_
#define DFV_WORKER_MODELS_LORD_H_

#include <cstdint>
#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateLord(const ModelContext& context);

// Access to the learned codes, for tests and tools. A model built by
// CreateLord implements it (dynamic_cast from Model). Not thread-safe; call
// between TrainSteps on the training thread.
class LordControls {
 public:
  virtual ~LordControls() = default;

  // Decodes training images from their learned codes with the stage-1
  // generator: content codes of dataset `indices` ([N] int64) plus
  // N(0, content_noise^2) noise, class codes of `labels` ([N] int64).
  // Returns [N, C, H, W] in [0, 1], without gradient.
  virtual torch::Tensor DecodeLearnedCodes(const torch::Tensor& indices, const torch::Tensor& labels,
                                           double content_noise) = 0;

  // The first step of stage 2 (the run's total steps minus encoder_fraction
  // of them).
  virtual int64_t AmortizationStartStep() const = 0;
};

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_LORD_H_
