// `acgan` (seed 001): a class-conditional DCGAN. The generator's input is
// Gaussian noise concatenated with a one-hot class vector; the discriminator
// has a real/fake head (sigmoid, BCE) and a class head beside it (softmax,
// cross-entropy: the data sets here have one multi-class label, where seed
// 001's single binary attribute had a sigmoid). Networks: gan_nets.h.
//
// One training step = model_params.d_steps discriminator updates, then
// model_params.g_steps generator updates (as dcgan.h), with these losses:
//   D: BCE(real -> 1) + BCE(fake -> 0)
//      + loss.class * (CE(class head(real), label) + CE(class head(fake), c))
//   G: BCE(fake -> 1) + loss.class * CE(class head(fake), c)
// where fakes are generated for classes c drawn uniformly.
//
// Metrics: d_loss, g_loss, class_loss (the class head's CE on real images),
// d_acc_real, d_acc_fake, class_acc_real (class head accuracy on the real
// batch) and class_acc_fake (the share of generated images the class head
// assigns to the class they were generated for, from the generator updates).
//
// Grid `pairs`: 2 rows x 16 columns; column j is one pair generated from the
// same noise vector j (fixed by GridInputs.noise_seed) with class j mod K in
// the top row and class (j + 1) mod K in the bottom row (K classes), so the
// top row sweeps the classes in label order and the bottom row is the next
// class for the same noise. No encoder: Reconstruct and Encode return nothing.
#ifndef DFV_WORKER_MODELS_ACGAN_H_
#define DFV_WORKER_MODELS_ACGAN_H_

#include <memory>

#include "worker/models/model.h"

namespace dfv::models {

// Needs context.num_classes >= 2.
std::unique_ptr<Model> CreateAcgan(const ModelContext& context);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_ACGAN_H_
