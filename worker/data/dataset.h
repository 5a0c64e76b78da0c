// LoadDataset: from a resolved DatasetSpec to the train and test ImageSets a
// trainer uses, with limits, resizing and channel conversion applied.
#ifndef DFV_WORKER_DATA_DATASET_H_
#define DFV_WORKER_DATA_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/image_set.h"

namespace dfv::data {

// The garment names of Fashion-MNIST, by label.
const std::vector<std::string>& FashionMnistClassNames();

// Loads the data set `spec` names:
//   fashion_mnist, mnist: the four IDX files in spec.path, each either
//     gzipped (`train-images-idx3-ubyte.gz`) or plain (`train-images-idx3-ubyte`,
//     also `train-images.idx3-ubyte`); labels must be 0..9. Class names are
//     the garment names or "0".."9".
//   sprites: GenerateSprites(spec.seed, ...) with spec.sprites_train and
//     spec.sprites_test images at spec.image_size.
// Then: keep the first train_limit / test_limit images (when > 0), resize to
// spec.image_size square (when different) and convert to spec.channels (when
// non-zero and different; done before resizing when it drops channels, after
// when it adds them, so fewer planes are resampled). Sprites outside the
// generator's 16..128 are generated at the nearest size and resized.
//
// Errors: INVALID_ARGUMENT for an unknown kind or out-of-range setting;
// NOT_FOUND naming the missing file; DATA_LOSS / INVALID_ARGUMENT naming a
// corrupt file (see idx.h). Blocking file I/O and CPU work on the calling
// thread (about a second for Fashion-MNIST); thread-compatible.
absl::StatusOr<DatasetSplits> LoadDataset(const jobspec::DatasetSpec& spec);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_DATASET_H_
