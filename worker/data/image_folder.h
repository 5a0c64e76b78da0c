// `image_folder`: a folder of JPEG or PNG images with a CelebA-style
// attribute file, one attribute of which is the class.
//
// The attribute file (CelebA's list_attr_celeba.txt layout): line 1 the
// number of images, line 2 the attribute names, then one line per image, the
// file name followed by one integer per attribute ("000001.jpg -1 1 1 ..."),
// separated by any run of spaces or tabs. A plain label file is the same with
// a single column (e.g. "label"). The classes are the distinct values of the
// chosen column in ascending order: CelebA's -1/1 give class 0 = -1 and
// class 1 = 1, named "Eyeglasses=-1" and "Eyeglasses=1".
//
// Images are looked up under the folder, or under folder/img_align_celeba
// (CelebA's archive layout), whichever holds the first listed file. Names
// must be relative paths of safe components (no "..", no leading '/' or '.').
// The format is recognised from the bytes: JPEG is decoded with libjpeg
// (libjpeg-turbo on Debian: SIMD, and DCT-domain downscaling by 1/2, 1/4 or
// 1/8 when the target is that much smaller, which matters for 200,000
// CelebA files), PNG with libpng (common/png.h). Each image is converted to
// RGB, cropped to its centred square and resized (antialiased, image_set.h's
// ResizeImages) to image_size x image_size.
//
// Split: when list_eval_partition.txt (CelebA's "file.jpg 0|1|2" lines) lies
// in the folder or beside the attribute file, partition 0 is the training
// set and partitions 1 and 2 (validation and test) the test set; every listed
// image must have an entry. Otherwise a seeded 90/10 split: a permutation of
// the rows drawn from split_seed (EpochSampler::EpochPermutation, portable
// across standard libraries) puts ceil(10%) of them in the test set. Both
// sets keep the attribute file's row order. train_limit / test_limit keep the
// first N of each set and only those are decoded.
#ifndef DFV_WORKER_DATA_IMAGE_FOLDER_H_
#define DFV_WORKER_DATA_IMAGE_FOLDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/data/dataset.h"
#include "worker/data/image_set.h"

namespace dfv::data {

struct ImageFolderOptions {
  // The folder of the images (dataset.path).
  std::string folder;
  // The attribute file, relative to `folder` unless absolute.
  std::string attr_file = "list_attr_celeba.txt";
  // The column whose values are the classes (dataset.attribute).
  std::string attribute;
  // Output images are image_size x image_size RGB; 1..4096.
  int image_size = 64;
  // Seed of the 90/10 split when there is no partition file.
  uint64_t split_seed = 1;
  // Keep only the first N images of each set (0 = all).
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  // Decoding threads; 0 = the hardware's concurrency, at most 8.
  int threads = 0;
};

// The parsed attribute file.
struct AttributeTable {
  std::vector<std::string> names;  // attribute names, in column order
  std::vector<std::string> files;  // image file names, in row order
  // files.size() x names.size() values, row-major.
  std::vector<int64_t> values;
};

// Parses `text` in the layout above; `source` names the file in errors.
// INVALID_ARGUMENT naming the line for a bad count, a short or long row, a
// value that is not an integer, or fewer/more rows than the count says.
absl::StatusOr<AttributeTable> ParseAttributeFile(const std::string& text, const std::string& source);

struct ImageFolderSplits {
  ImageSet train;
  ImageSet test;
};

// Loads the folder as described above. Errors name the field or the file:
// INVALID_ARGUMENT for an empty or unknown attribute (listing the attribute
// file's columns), an attribute with a single value, an unsafe file name, a
// corrupt or unsupported image, or an empty train or test set; NOT_FOUND for
// a missing folder, attribute file or image. Blocking I/O and CPU work; the
// decoding threads are joined before it returns. Thread-compatible.
absl::StatusOr<ImageFolderSplits> LoadImageFolder(const ImageFolderOptions& options);

// Where LoadImageFolder reads the attribute file: `attr_file` itself when
// absolute, else relative to `folder`.
std::string AttrFilePath(const std::string& folder, const std::string& attr_file);

// The `image_folder` DatasetLoader (dataset.h): LoadImageFolder of spec.path
// with the kind's own fields attr_file, attribute and seed (the split seed;
// spec.params), decoding at spec.image_size and only the first train_limit /
// test_limit images.
absl::StatusOr<LoadedSplits> LoadImageFolderDataset(const jobspec::DatasetSpec& spec);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_IMAGE_FOLDER_H_
