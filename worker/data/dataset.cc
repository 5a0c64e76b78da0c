#include "worker/data/dataset.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/data_roots.h"
#include "common/status_macros.h"
#include "worker/data/image_folder.h"
#include "worker/data/registry.h"

namespace dfv::data {
namespace {

// The finishing step every kind shares.
absl::StatusOr<ImageSet> Finish(ImageSet set, int64_t limit, const jobspec::DatasetSpec& spec) {
  if (limit > 0 && limit < set.size) set = TakeFirst(set, limit);
  const int channels = spec.channels != 0 ? static_cast<int>(spec.channels) : set.channels;
  const int size = static_cast<int>(spec.image_size);
  // Resample the fewer planes: shrink channels before resizing, grow after.
  if (channels < set.channels) {
    DFV_ASSIGN_OR_RETURN(set, ConvertChannels(set, channels));
  }
  if (set.height != size || set.width != size) set = ResizeImages(set, size, size);
  if (channels > set.channels) {
    DFV_ASSIGN_OR_RETURN(set, ConvertChannels(set, channels));
  }
  DFV_RETURN_IF_ERROR(ValidateImageSet(set));
  return set;
}

}  // namespace

absl::StatusOr<DatasetSplits> LoadDataset(const jobspec::DatasetSpec& spec) {
  const DatasetLoader loader = FindDatasetLoader(spec.kind);
  if (loader == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("no loader for dataset.kind '", spec.kind, "' (registered: ",
                                                   absl::StrJoin(RegisteredDatasets(), ", "), ")"));
  }
  DFV_ASSIGN_OR_RETURN(LoadedSplits loaded, loader(spec));
  DFV_ASSIGN_OR_RETURN(ImageSet train, Finish(std::move(loaded.train), spec.train_limit, spec));
  DFV_ASSIGN_OR_RETURN(ImageSet test, Finish(std::move(loaded.test), spec.test_limit, spec));
  DatasetSplits splits;
  splits.train = std::make_shared<const ImageSet>(std::move(train));
  splits.test = std::make_shared<const ImageSet>(std::move(test));
  return splits;
}

absl::Status CheckDatasetUnderRoots(const jobspec::DatasetSpec& spec, const std::vector<std::string>& roots) {
  if (roots.empty()) return absl::InvalidArgumentError("no data roots to check dataset.path against");
  if (spec.path.empty()) return absl::OkStatus();  // generated: reads no file
  DFV_RETURN_IF_ERROR(CheckUnderDataRoots("dataset.path", spec.path, roots));
  // The one other field that names a file: image_folder's attribute file.
  if (spec.params.Has("attr_file")) {
    DFV_RETURN_IF_ERROR(
        CheckUnderDataRoots("dataset.attr_file", AttrFilePath(spec.path, spec.params.GetString("attr_file")), roots));
  }
  return absl::OkStatus();
}

}  // namespace dfv::data
