#include "worker/data/idx_dataset.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/data/idx.h"

namespace dfv::data {
namespace {

namespace fs = std::filesystem;

// The first existing spelling of an IDX file in `dir`: gzipped, plain, or
// with the dot that some MNIST mirrors use (train-images.idx3-ubyte).
absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& prefix,
                                        const std::string& suffix) {
  std::vector<std::string> tried;
  for (const char* sep : {"-", "."}) {
    for (const char* ext : {".gz", ""}) {
      fs::path p = fs::path(dir) / absl::StrCat(prefix, sep, suffix, ext);
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
      tried.push_back(p.string());
    }
  }
  return absl::NotFoundError(absl::StrCat("data file ", tried.front(), " not found (also tried ",
                                          absl::StrJoin(tried.begin() + 1, tried.end(), ", "), ")"));
}

absl::StatusOr<ImageSet> LoadIdxSplit(const std::string& dir, const std::string& split, const std::string& kind,
                                      const std::vector<std::string>& class_names) {
  DFV_ASSIGN_OR_RETURN(std::string images, FindIdxFile(dir, absl::StrCat(split, "-images"), "idx3-ubyte"));
  DFV_ASSIGN_OR_RETURN(std::string labels, FindIdxFile(dir, absl::StrCat(split, "-labels"), "idx1-ubyte"));
  DFV_ASSIGN_OR_RETURN(ImageSet set, LoadIdxImageSet(images, labels));
  for (size_t i = 0; i < set.labels.size(); ++i) {
    if (set.labels[i] >= static_cast<int64_t>(class_names.size())) {
      return absl::DataLossError(absl::StrCat(labels, ": label ", set.labels[i], " of item ", i,
                                              " is out of range for ", kind, " (0..", class_names.size() - 1,
                                              ")"));
    }
  }
  set.num_classes = static_cast<int>(class_names.size());
  set.class_names = class_names;
  return set;
}

absl::StatusOr<LoadedSplits> LoadIdxDataset(const jobspec::DatasetSpec& spec,
                                            const std::vector<std::string>& class_names) {
  LoadedSplits splits;
  DFV_ASSIGN_OR_RETURN(splits.train, LoadIdxSplit(spec.path, "train", spec.kind, class_names));
  DFV_ASSIGN_OR_RETURN(splits.test, LoadIdxSplit(spec.path, "t10k", spec.kind, class_names));
  const ImageSet& train = splits.train;
  const ImageSet& test = splits.test;
  if (train.height != test.height || train.width != test.width) {
    return absl::DataLossError(absl::StrCat(spec.path, ": train images are ", train.height, "x", train.width,
                                            " but test images are ", test.height, "x", test.width));
  }
  return splits;
}

}  // namespace

const std::vector<std::string>& FashionMnistClassNames() {
  static const auto* names = new std::vector<std::string>{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return *names;
}

absl::StatusOr<LoadedSplits> LoadFashionMnistDataset(const jobspec::DatasetSpec& spec) {
  return LoadIdxDataset(spec, FashionMnistClassNames());
}

absl::StatusOr<LoadedSplits> LoadMnistDataset(const jobspec::DatasetSpec& spec) {
  static const auto* digits = new std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return LoadIdxDataset(spec, *digits);
}

}  // namespace dfv::data
