// LoadDataset: from a resolved DatasetSpec to the train and test ImageSets a
// trainer uses, with limits, resizing and channel conversion applied; and the
// interface every data set's loader implements.
//
// Adding a data set = one new file pair with its DatasetLoader, one line in
// registry.cc, its entry in the job schema's data set catalogue
// (common/jobspec/dataset_catalogue.cc) and its tests.
#ifndef DFV_WORKER_DATA_DATASET_H_
#define DFV_WORKER_DATA_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/image_set.h"

namespace dfv::data {

// A data set's own train and test images, before LoadDataset finishes them.
struct LoadedSplits {
  ImageSet train;
  ImageSet test;
};

// Reads (or generates) the data set of one kind. `spec` passed the job
// schema: spec.kind is the loader's kind, every range is checked, and
// spec.params holds exactly the fields of the kind's catalogue entry, so the
// loader re-checks none of them; it checks the data itself (missing or
// corrupt files, labels out of range). The images may have any size and 1 or
// 3 channels, with labels and class names set. A loader may apply
// spec.train_limit / spec.test_limit and spec.image_size itself when that
// saves work (LoadDataset applies them anyway). Blocking I/O and CPU work on
// the calling thread; errors as absl::Status, never exceptions.
using DatasetLoader = absl::StatusOr<LoadedSplits> (*)(const jobspec::DatasetSpec& spec);

// Loads the data set `spec` names with the loader registered for spec.kind
// (registry.h; each kind's header says what it reads). Then, in one place for
// every kind: keep the first train_limit / test_limit images (when > 0),
// resize to spec.image_size square (when different) and convert to
// spec.channels (when non-zero and different; done before resizing when it
// drops channels, after when it adds them, so fewer planes are resampled).
//
// `spec` must have passed the job schema (ranges are not re-checked).
// Errors: INVALID_ARGUMENT for a kind with no loader; the loader's errors
// (NOT_FOUND naming a missing file, DATA_LOSS / INVALID_ARGUMENT naming a
// corrupt one). Blocking file I/O and CPU work on the calling thread (about a
// second for Fashion-MNIST); thread-compatible.
absl::StatusOr<DatasetSplits> LoadDataset(const jobspec::DatasetSpec& spec);

// Checks, opening nothing, that every file or folder the loader of `spec`
// would read lies under `roots` (common/data_roots.h): dataset.path and, for
// image_folder, dataset.attr_file (which may be absolute). Generated kinds
// (sprites) read nothing and pass. PERMISSION_DENIED naming the field, the
// path and the roots; INVALID_ARGUMENT when `roots` is empty. Thread-safe.
absl::Status CheckDatasetUnderRoots(const jobspec::DatasetSpec& spec, const std::vector<std::string>& roots);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_DATASET_H_
