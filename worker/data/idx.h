// The IDX file format (LeCun's MNIST layout), unsigned-byte arrays only:
//
//   bytes 0-1  zero
//   byte  2    element type, 0x08 = unsigned byte (the only one supported)
//   byte  3    number of dimensions d (1 for labels, 3 for images)
//   then d big-endian uint32 sizes, then the elements in row-major order.
//
// Labels files start 0x00000801, image files 0x00000803. Files may be gzipped
// or plain; the reader detects which (zlib reads both transparently).
//
// Errors (never exceptions): NOT_FOUND for a missing file; INVALID_ARGUMENT
// for a header that is not an unsigned-byte IDX header or is implausible;
// DATA_LOSS when the data is shorter or longer than the header promises or the
// gzip stream is corrupt. Every message names the file. All functions are
// thread-compatible (no shared state).
#ifndef DFV_WORKER_DATA_IDX_H_
#define DFV_WORKER_DATA_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/data/image_set.h"

namespace dfv::data {

// Headers claiming more elements than this are rejected before anything is
// read (4 GiB; the full MNIST training images are 47 MB).
inline constexpr int64_t kMaxIdxElements = int64_t{1} << 32;
inline constexpr int kMaxIdxDims = 4;

// An unsigned-byte IDX array.
struct IdxArray {
  std::vector<int64_t> dims;  // 1..kMaxIdxDims sizes, outermost first
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
};

// Reads an IDX file, gzipped or plain, and checks that the data holds exactly
// product(dims) bytes. Memory grows with the bytes actually present, so a
// lying header cannot make it allocate more than the file holds.
absl::StatusOr<IdxArray> ReadIdx(const std::string& path);

// Writes `array` to `path` atomically (temp file, fsync, rename), gzipped when
// `gzip` is true. INVALID_ARGUMENT when data.size() != product(dims) or dims
// are out of range.
absl::Status WriteIdx(const std::string& path, const IdxArray& array, bool gzip);

// Reads an images file (magic 0x00000803, N x H x W) and a labels file (magic
// 0x00000801, N) into a grey ImageSet. Checks that the counts agree and every
// label is < 256 (it is a byte), and sets num_classes to max label + 1 with
// the labels' decimal names; callers that know the data set overwrite them.
absl::StatusOr<ImageSet> LoadIdxImageSet(const std::string& images_path, const std::string& labels_path);

// Writes a grey ImageSet (channels must be 1, labels < 256) as an images file
// and a labels file, each atomically.
absl::Status WriteIdxImageSet(const ImageSet& set, const std::string& images_path,
                              const std::string& labels_path, bool gzip);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_IDX_H_
