// Fuzz target: the IDX reader (worker/data/idx.h), plain and gzipped.
//
// Input: the bytes of an IDX file, written to a scratch file and read with
// ReadIdx (gzip is detected by zlib, so a gzip seed exercises inflation).
//
// Checks, beyond "no crash, no leak, no undefined behaviour": an accepted
// array holds exactly product(dims) bytes in 1..kMaxIdxDims dimensions and
// survives WriteIdx + ReadIdx unchanged, plain and gzipped; a refusal has
// one of the codes idx.h documents. An accepted N x H x W array is also
// loaded as an image set (with a labels file derived from it) and must give
// an ImageSet that ValidateImageSet accepts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "worker/data/idx.h"
#include "worker/data/image_set.h"

namespace {

using dfv::data::IdxArray;

bool DocumentedReadError(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kDataLoss;
}

void CheckRoundTrip(const IdxArray& array, bool gzip) {
  const std::string path = dfv::fuzz::ScratchDir() + (gzip ? "/rewritten.idx.gz" : "/rewritten.idx");
  const absl::Status written = dfv::data::WriteIdx(path, array, gzip);
  DFV_FUZZ_CHECK(written.ok(), "WriteIdx refused an array ReadIdx accepted: " + written.ToString());
  const absl::StatusOr<IdxArray> back = dfv::data::ReadIdx(path);
  DFV_FUZZ_CHECK(back.ok(), "ReadIdx refused what WriteIdx wrote: " + back.status().ToString());
  DFV_FUZZ_CHECK(back->dims == array.dims && back->data == array.data, "the round trip changed the array");
}

void CheckImageSet(const std::string& images_path, const IdxArray& images) {
  // One label per image, cycling through the pixel bytes so every label
  // value can occur. A header may claim up to 2^32 images of zero pixels (no
  // data at all); LoadIdxImageSet must refuse those, and a labels file of one
  // label is enough to ask it.
  IdxArray labels;
  const int64_t count =
      images.dims[0] <= static_cast<int64_t>(images.data.size()) ? images.dims[0] : 1;
  labels.dims = {count};
  labels.data.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < labels.data.size(); ++i) {
    labels.data[i] = images.data.empty() ? 0 : images.data[i % images.data.size()];
  }
  const std::string labels_path = dfv::fuzz::ScratchDir() + "/labels.idx";
  const absl::Status written = dfv::data::WriteIdx(labels_path, labels, /*gzip=*/false);
  DFV_FUZZ_CHECK(written.ok(), "WriteIdx refused a labels array: " + written.ToString());
  const absl::StatusOr<dfv::data::ImageSet> set = dfv::data::LoadIdxImageSet(images_path, labels_path);
  if (!set.ok()) {
    DFV_FUZZ_CHECK(set.status().code() == absl::StatusCode::kInvalidArgument, set.status().ToString());
    return;
  }
  const absl::Status valid = dfv::data::ValidateImageSet(*set);
  DFV_FUZZ_CHECK(valid.ok(), "LoadIdxImageSet returned an inconsistent set: " + valid.ToString());
  DFV_FUZZ_CHECK(set->size == images.dims[0] && set->height == images.dims[1] && set->width == images.dims[2],
                 "the image set's shape is not the file's");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dfv::fuzz::WriteScratchFile("input.idx", dfv::fuzz::AsText(data, size));
  const absl::StatusOr<IdxArray> array = dfv::data::ReadIdx(path);
  if (!array.ok()) {
    DFV_FUZZ_CHECK(DocumentedReadError(array.status().code()), array.status().ToString());
    return 0;
  }
  DFV_FUZZ_CHECK(!array->dims.empty() && array->dims.size() <= static_cast<size_t>(dfv::data::kMaxIdxDims),
                 "accepted an array with no or too many dimensions");
  int64_t elements = 1;
  for (int64_t d : array->dims) elements *= d;
  DFV_FUZZ_CHECK(static_cast<int64_t>(array->data.size()) == elements,
                 "accepted an array whose data is not product(dims) bytes");
  CheckRoundTrip(*array, /*gzip=*/false);
  CheckRoundTrip(*array, /*gzip=*/true);
  if (array->dims.size() == 3) CheckImageSet(path, *array);
  return 0;
}
