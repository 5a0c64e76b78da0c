// `mathieu` (seeds 000 and 004; Mathieu et al. 2016 with a Szabo-style pair
// discriminator): an encoder to an unspecified code z (mean, log-variance,
// reparameterised) and a specified code s, a decoder(z, s), and a
// discriminator that sees two images stacked as channels and says whether
// they are a real same-class pair.
//
// One TrainStep is one iteration of seed 000's algorithm, on the driver's
// batch x1 (images), x2 (same_images: the class of x1) and x3 (other_images:
// another class):
//   A. auto-encoder (encoder + decoder stepped): reconstruct x1 from its own
//      s and from the same-class swap, rec * [MSE(dec(z1, s1), x1) +
//      MSE(dec(z1, s2), x1)] + kl * KL(z1) / (batch x pixels).
//   B. generator, `g_steps_per_d_step` times (encoder + decoder stepped, the
//      discriminator frozen): adversarial * [CE(D(xb, dec(za, sb)), real) +
//      CE(D(xb, dec(N(0, I), sb)), real)] + kl * KL(za) / (batch x pixels),
//      with (a, b) = (1, 3) on even repeats and (3, 1) on odd ones, so every
//      repeat crosses classes with fresh noise.
//   C. discriminator (encoder and decoder frozen): real pair (x1, x2), fake
//      pair (x1, dec(mu3, s1)); CE on both; stepped only while the accuracy it
//      had on the previous iteration is below `d_accuracy_limit` (when
//      `d_accuracy_gate` is on). Its accuracy on this batch is measured
//      either way and becomes the next iteration's "previous accuracy".
// So, with the gate open, the generator is updated g_steps_per_d_step times
// per discriminator update (seed 004's 2:1).
//
// With several ranks the previous accuracy is averaged across ranks
// (StepContext::MeanAcrossRanks, a collective every rank makes), so
// every rank takes the same gate decision and the discriminator stays in
// lockstep. The gate state and the update counters live in a module named
// "state", so checkpoints carry them and a resumed run gates identically.
//
// Metrics per iteration: reconstruction, kl, g_loss (the last repeat's
// adversarial terms), d_loss, d_acc (this batch), d_updates (0 or 1) and
// g_updates (the generator updates made).
#ifndef DFV_WORKER_MODELS_MATHIEU_H_
#define DFV_WORKER_MODELS_MATHIEU_H_

#include <cstdint>
#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

std::unique_ptr<Model> CreateMathieu(const ModelContext& context);

// The stabilising tricks' state, for tests and tools. A model built by
// CreateMathieu implements it (dynamic_cast from Model). Not thread-safe;
// call between TrainSteps on the training thread.
class MathieuControls {
 public:
  struct UpdateCounts {
    int64_t iterations = 0;     // TrainSteps run
    int64_t discriminator = 0;  // discriminator optimiser steps
    int64_t generator = 0;      // generator (adversarial) optimiser steps
    int64_t auto_encoder = 0;   // reconstruction optimiser steps
  };

  virtual ~MathieuControls() = default;

  // Totals since construction (restored from checkpoints).
  virtual UpdateCounts Counts() const = 0;

  // The discriminator accuracy the next TrainStep's gate compares with
  // d_accuracy_limit; 0 before the first iteration.
  virtual double PreviousAccuracy() const = 0;

  // Overrides the previous accuracy (in [0, 1]) the next TrainStep gates on.
  virtual void SetPreviousAccuracy(double accuracy) = 0;
};

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_MATHIEU_H_
