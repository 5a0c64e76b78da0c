// The data sets stored as four IDX files (idx.h): `fashion_mnist` and
// `mnist`. spec.path holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each gzipped (`.gz`) or
// plain, also spelled with a dot (`train-images.idx3-ubyte`) as some MNIST
// mirrors do. Labels must be 0..9; train and test images must have one size.
// Class names are the garment names or "0".."9". Neither kind has fields of
// its own.
#ifndef DFV_WORKER_DATA_IDX_DATASET_H_
#define DFV_WORKER_DATA_IDX_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/dataset.h"

namespace dfv::data {

// The garment names of Fashion-MNIST, by label.
const std::vector<std::string>& FashionMnistClassNames();

// DatasetLoaders (dataset.h). NOT_FOUND naming the first spelling of a
// missing file and the others tried; DATA_LOSS / INVALID_ARGUMENT naming a
// corrupt file (idx.h), a label out of range or train and test sizes that
// differ. Thread-compatible.
absl::StatusOr<LoadedSplits> LoadFashionMnistDataset(const jobspec::DatasetSpec& spec);
absl::StatusOr<LoadedSplits> LoadMnistDataset(const jobspec::DatasetSpec& spec);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_IDX_DATASET_H_
