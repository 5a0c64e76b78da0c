#include "worker/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv::data {
namespace {

constexpr uint8_t kUnsignedByteType = 0x08;
constexpr size_t kReadChunk = size_t{1} << 20;
// Initial reservation cap: beyond this the buffer grows with what is read.
constexpr int64_t kMaxReserve = int64_t{64} << 20;

struct GzCloser {
  void operator()(gzFile f) const {
    if (f != nullptr) gzclose(f);
  }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

std::string DimsString(const std::vector<int64_t>& dims) { return absl::StrJoin(dims, "x"); }

// Reads up to `n` bytes; returns the count, or DATA_LOSS if zlib reports an
// error (a corrupt or truncated gzip stream).
absl::StatusOr<size_t> GzReadSome(gzFile f, const std::string& path, uint8_t* out, size_t n) {
  size_t total = 0;
  while (total < n) {
    unsigned want = static_cast<unsigned>(std::min(n - total, kReadChunk));
    int got = gzread(f, out + total, want);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      return absl::DataLossError(absl::StrCat(path, ": read failed (", msg ? msg : "unknown zlib error",
                                              errnum == Z_ERRNO ? absl::StrCat(": ", std::strerror(errno)) : "",
                                              "); the file is corrupt or truncated"));
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  // gzread returns a short count (not -1) on some truncated gzip streams; the
  // error is only visible through gzerror.
  int errnum = Z_OK;
  const char* msg = gzerror(f, &errnum);
  if (errnum != Z_OK && errnum != Z_STREAM_END) {
    return absl::DataLossError(absl::StrCat(path, ": gzip stream is corrupt or truncated (",
                                            msg ? msg : "unknown zlib error", ")"));
  }
  return total;
}

absl::Status CheckDims(const std::vector<int64_t>& dims, const std::string& what) {
  if (dims.empty() || static_cast<int>(dims.size()) > kMaxIdxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", dims.size(), " dimensions, expected 1 to ", kMaxIdxDims));
  }
  int64_t elements = 1;
  for (int64_t d : dims) {
    if (d < 0 || d > kMaxIdxElements) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": dimension size ", d, " is out of range"));
    }
    if (d != 0 && elements > kMaxIdxElements / d) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": dimensions ", DimsString(dims),
                                                     " exceed the limit of ", kMaxIdxElements, " elements"));
    }
    elements *= d;
  }
  return absl::OkStatus();
}

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t p = 1;
  for (int64_t d : dims) p *= d;
  return p;
}

// Gzip-compresses `data` in memory (zlib's deflate with a gzip wrapper).
absl::StatusOr<std::string> GzipCompress(const std::string& data, const std::string& path) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError(absl::StrCat(path, ": deflateInit2 failed"));
  }
  std::string out;
  std::vector<unsigned char> buf(kReadChunk);
  size_t offset = 0;
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    if (zs.avail_in == 0 && offset < data.size()) {
      size_t n = std::min(data.size() - offset, size_t{1} << 30);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + offset));
      zs.avail_in = static_cast<uInt>(n);
      offset += n;
    }
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    ret = deflate(&zs, offset == data.size() ? Z_FINISH : Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
      deflateEnd(&zs);
      return absl::InternalError(absl::StrCat(path, ": deflate failed (", ret, ")"));
    }
    out.append(reinterpret_cast<char*>(buf.data()), buf.size() - zs.avail_out);
  }
  deflateEnd(&zs);
  return out;
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdx(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    return absl::NotFoundError(absl::StrCat("IDX file ", path, " does not exist"));
  }
  if (!std::filesystem::is_regular_file(st)) {
    return absl::InvalidArgumentError(absl::StrCat("IDX file ", path, " is not a regular file"));
  }
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) {
    return absl::UnavailableError(absl::StrCat("cannot open IDX file ", path, ": ", std::strerror(errno)));
  }
  gzbuffer(file.get(), 1 << 17);

  uint8_t magic[4];
  DFV_ASSIGN_OR_RETURN(size_t got, GzReadSome(file.get(), path, magic, 4));
  if (got < 4) {
    return absl::DataLossError(absl::StrCat(path, ": ", got, " bytes is too short for an IDX header"));
  }
  const uint32_t magic_value = (uint32_t{magic[0]} << 24) | (uint32_t{magic[1]} << 16) |
                               (uint32_t{magic[2]} << 8) | magic[3];
  if (magic[0] != 0 || magic[1] != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not an IDX file (magic 0x%08x; expected 0x00000801 for labels or 0x00000803 for images)", path,
        magic_value));
  }
  if (magic[2] != kUnsignedByteType) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: IDX element type 0x%02x is not supported (magic 0x%08x; only 0x08, unsigned byte)", path, magic[2],
        magic_value));
  }
  const int ndims = magic[3];
  if (ndims < 1 || ndims > kMaxIdxDims) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: IDX header declares %d dimensions (magic 0x%08x); expected 1 to %d", path, ndims, magic_value,
        kMaxIdxDims));
  }
  uint8_t dim_bytes[4 * kMaxIdxDims];
  DFV_ASSIGN_OR_RETURN(got, GzReadSome(file.get(), path, dim_bytes, 4 * static_cast<size_t>(ndims)));
  if (got < 4 * static_cast<size_t>(ndims)) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header (", ndims, " dimension sizes expected)"));
  }
  IdxArray array;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* b = dim_bytes + 4 * d;
    array.dims.push_back((int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3]);
  }
  DFV_RETURN_IF_ERROR(CheckDims(array.dims, path));
  const int64_t expected = Product(array.dims);

  // Grow with the data actually present rather than trusting the header.
  array.data.reserve(static_cast<size_t>(std::min(expected, kMaxReserve)));
  int64_t total = 0;
  while (total < expected) {
    size_t want = static_cast<size_t>(std::min<int64_t>(expected - total, kReadChunk));
    array.data.resize(static_cast<size_t>(total) + want);
    DFV_ASSIGN_OR_RETURN(size_t n, GzReadSome(file.get(), path, array.data.data() + total, want));
    total += static_cast<int64_t>(n);
    if (n < want) break;
  }
  array.data.resize(static_cast<size_t>(total));
  if (total < expected) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: the header declares ", DimsString(array.dims), " = ",
                                            expected, " bytes of data but the file holds only ", total));
  }
  uint8_t extra[4096];
  DFV_ASSIGN_OR_RETURN(size_t trailing, GzReadSome(file.get(), path, extra, sizeof(extra)));
  if (trailing > 0) {
    int64_t more = static_cast<int64_t>(trailing);
    while (trailing == sizeof(extra)) {  // count the rest for the message
      DFV_ASSIGN_OR_RETURN(trailing, GzReadSome(file.get(), path, extra, sizeof(extra)));
      more += static_cast<int64_t>(trailing);
    }
    return absl::DataLossError(absl::StrCat(path, ": the header declares ", DimsString(array.dims), " = ", expected,
                                            " bytes of data but the file holds ", more,
                                            " more (wrong header or trailing garbage)"));
  }
  return array;
}

absl::Status WriteIdx(const std::string& path, const IdxArray& array, bool gzip) {
  DFV_RETURN_IF_ERROR(CheckDims(array.dims, path));
  if (static_cast<int64_t>(array.data.size()) != Product(array.dims)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", array.data.size(), " bytes of data for dims ",
                                                   DimsString(array.dims)));
  }
  std::string bytes;
  bytes.reserve(4 + 4 * array.dims.size() + array.data.size());
  bytes.push_back(0);
  bytes.push_back(0);
  bytes.push_back(static_cast<char>(kUnsignedByteType));
  bytes.push_back(static_cast<char>(array.dims.size()));
  for (int64_t d : array.dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  bytes.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  if (gzip) {
    DFV_ASSIGN_OR_RETURN(bytes, GzipCompress(bytes, path));
  }
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<ImageSet> LoadIdxImageSet(const std::string& images_path, const std::string& labels_path) {
  DFV_ASSIGN_OR_RETURN(IdxArray images, ReadIdx(images_path));
  if (images.dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expected an images file (magic 0x00000803, N x rows x columns), got magic 0x%08x", images_path,
        0x800u + static_cast<unsigned>(images.dims.size())));
  }
  DFV_ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(labels_path));
  if (labels.dims.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected a labels file (magic 0x00000801, N), got magic 0x%08x", labels_path,
                        0x800u + static_cast<unsigned>(labels.dims.size())));
  }
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n) {
    return absl::InvalidArgumentError(absl::StrCat("images file ", images_path, " holds ", n,
                                                   " images but labels file ", labels_path, " holds ",
                                                   labels.dims[0], " labels"));
  }
  if (n == 0 || images.dims[1] == 0 || images.dims[2] == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": no images (dims ", DimsString(images.dims), ")"));
  }
  if (images.dims[1] > 65536 || images.dims[2] > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": implausible image size ", images.dims[1], "x", images.dims[2]));
  }
  ImageSet set;
  set.size = n;
  set.channels = 1;
  set.height = static_cast<int>(images.dims[1]);
  set.width = static_cast<int>(images.dims[2]);
  set.pixels = std::move(images.data);
  // Labels are single bytes, so every label is < 256 by construction.
  set.labels.assign(labels.data.begin(), labels.data.end());
  int64_t max_label = *std::max_element(set.labels.begin(), set.labels.end());
  set.num_classes = static_cast<int>(max_label) + 1;
  for (int c = 0; c < set.num_classes; ++c) set.class_names.push_back(std::to_string(c));
  return set;
}

absl::Status WriteIdxImageSet(const ImageSet& set, const std::string& images_path, const std::string& labels_path,
                              bool gzip) {
  DFV_RETURN_IF_ERROR(ValidateImageSet(set));
  if (set.channels != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": IDX image files hold grey images; the set has ", set.channels, " channels"));
  }
  if (set.num_classes > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": IDX labels are bytes; ", set.num_classes, " classes do not fit"));
  }
  IdxArray images{{set.size, set.height, set.width}, set.pixels};
  IdxArray labels{{set.size}, std::vector<uint8_t>(set.labels.begin(), set.labels.end())};
  DFV_RETURN_IF_ERROR(WriteIdx(images_path, images, gzip));
  return WriteIdx(labels_path, labels, gzip);
}

}  // namespace dfv::data
