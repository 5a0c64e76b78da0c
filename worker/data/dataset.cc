#include "worker/data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/data/idx.h"
#include "worker/data/image_folder.h"
#include "worker/data/sprites.h"

namespace dfv::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMinImageSize = 8;
constexpr int64_t kMaxImageSize = 512;

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

const std::vector<std::string>& FashionMnistClassNames() {
  static const auto* names = new std::vector<std::string>{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return *names;
}

absl::StatusOr<DatasetSplits> LoadDataset(const jobspec::DatasetSpec& spec) {
  if (spec.image_size < kMinImageSize || spec.image_size > kMaxImageSize) {
    return absl::InvalidArgumentError(absl::StrCat("dataset.image_size ", spec.image_size, " is outside [",
                                                   kMinImageSize, ", ", kMaxImageSize, "]"));
  }
  if (spec.channels != 0 && spec.channels != 1 && spec.channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("dataset.channels must be 1 or 3, got ", spec.channels));
  }
  if (spec.train_limit < 0 || spec.test_limit < 0) {
    return absl::InvalidArgumentError("dataset.train_limit and dataset.test_limit must not be negative");
  }

  ImageSet train, test;
  if (spec.kind == "fashion_mnist" || spec.kind == "mnist") {
    if (spec.path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dataset.path is required for kind ", spec.kind));
    }
    std::vector<std::string> names;
    if (spec.kind == "fashion_mnist") {
      names = FashionMnistClassNames();
    } else {
      for (int d = 0; d < 10; ++d) names.push_back(std::to_string(d));
    }
    DFV_ASSIGN_OR_RETURN(train, LoadIdxSplit(spec.path, "train", spec.kind, names));
    DFV_ASSIGN_OR_RETURN(test, LoadIdxSplit(spec.path, "t10k", spec.kind, names));
    if (train.height != test.height || train.width != test.width) {
      return absl::DataLossError(absl::StrCat(spec.path, ": train images are ", train.height, "x", train.width,
                                              " but test images are ", test.height, "x", test.width));
    }
  } else if (spec.kind == "sprites") {
    if (spec.sprites_train <= 0 || spec.sprites_test <= 0) {
      return absl::InvalidArgumentError("dataset.sprites_train and dataset.sprites_test must be positive");
    }
    // Generate at the target size directly (sharper than resampling).
    const int size = static_cast<int>(std::clamp<int64_t>(spec.image_size, kSpriteMinImageSize,
                                                          kSpriteMaxImageSize));
    // Image i depends only on (seed, split, i), so a limit just generates fewer.
    auto count = [](int64_t n, int64_t limit) { return limit > 0 ? std::min(n, limit) : n; };
    DFV_ASSIGN_OR_RETURN(train, GenerateSprites(spec.seed, SpriteSplit::kTrain,
                                                count(spec.sprites_train, spec.train_limit), size));
    DFV_ASSIGN_OR_RETURN(test, GenerateSprites(spec.seed, SpriteSplit::kTest,
                                               count(spec.sprites_test, spec.test_limit), size));
  } else if (spec.kind == "image_folder") {
    ImageFolderOptions folder;
    folder.folder = spec.path;
    folder.attr_file = spec.attr_file;
    folder.attribute = spec.attribute;
    folder.image_size = static_cast<int>(spec.image_size);  // decoded at the target size
    folder.split_seed = spec.seed;
    folder.train_limit = spec.train_limit;
    folder.test_limit = spec.test_limit;
    DFV_ASSIGN_OR_RETURN(ImageFolderSplits loaded, LoadImageFolder(folder));
    train = std::move(loaded.train);
    test = std::move(loaded.test);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported dataset.kind '", spec.kind,
                                                   "' (supported: fashion_mnist, mnist, sprites, image_folder)"));
  }

  DatasetSplits splits;
  DFV_ASSIGN_OR_RETURN(ImageSet train_done, Finish(std::move(train), spec.train_limit, spec));
  DFV_ASSIGN_OR_RETURN(ImageSet test_done, Finish(std::move(test), spec.test_limit, spec));
  splits.train = std::make_shared<const ImageSet>(std::move(train_done));
  splits.test = std::make_shared<const ImageSet>(std::move(test_done));
  return splits;
}

}  // namespace dfv::data
