#include "worker/data/image_folder.h"

// libjpeg's header needs FILE and size_t declared first.
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/png.h"
#include "common/status_macros.h"
#include "worker/data/sampler.h"

namespace dfv::data {
namespace {

namespace fs = std::filesystem;

constexpr char kPartitionFile[] = "list_eval_partition.txt";
constexpr char kCelebaImageDir[] = "img_align_celeba";
constexpr int kMaxThreads = 8;
constexpr int kTestPercent = 10;

// ---------------------------------------------------------------------------
// JPEG through libjpeg. Its errors arrive through a callback that must not
// return, so it longjmps back to the setjmp in the function that called
// libjpeg. The functions holding a setjmp touch only plain C data (the
// reader and a caller-owned buffer): the jump skips no destructor and reads
// no local changed after setjmp.

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegReader {
  jpeg_decompress_struct cinfo;
  JpegErrorManager error;
  bool created;
};

void OnJpegError(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// Warnings (e.g. "premature end of data") are not printed; a file that
// decodes is used as decoded, as every image library does.
void OnJpegMessage(j_common_ptr, int) {}

// Reads the header and picks the largest DCT downscale (1/2, 1/4, 1/8) that
// keeps the shorter side at least `min_side`. False on error (message in
// reader->error.message).
bool JpegReadHeader(JpegReader* reader, const unsigned char* data, unsigned long size, int min_side) {
  reader->created = false;
  reader->error.message[0] = '\0';
  reader->cinfo.err = jpeg_std_error(&reader->error.pub);
  reader->error.pub.error_exit = OnJpegError;
  reader->error.pub.emit_message = OnJpegMessage;
  if (setjmp(reader->error.jump)) return false;
  jpeg_create_decompress(&reader->cinfo);
  reader->created = true;
  jpeg_mem_src(&reader->cinfo, data, size);
  jpeg_read_header(&reader->cinfo, TRUE);
  reader->cinfo.out_color_space = JCS_RGB;  // grey and YCbCr convert; CMYK fails
  const unsigned side = std::min(reader->cinfo.image_width, reader->cinfo.image_height);
  unsigned denom = 1;
  while (denom < 8 && (side + 2 * denom - 1) / (2 * denom) >= static_cast<unsigned>(min_side)) denom *= 2;
  reader->cinfo.scale_num = 1;
  reader->cinfo.scale_denom = denom;
  jpeg_calc_output_dimensions(&reader->cinfo);
  return true;
}

// Decodes into `out`, output_width * output_height * 3 bytes. False on error.
bool JpegReadPixels(JpegReader* reader, unsigned char* out) {
  if (setjmp(reader->error.jump)) return false;
  jpeg_start_decompress(&reader->cinfo);
  const size_t stride = static_cast<size_t>(reader->cinfo.output_width) * 3;
  while (reader->cinfo.output_scanline < reader->cinfo.output_height) {
    JSAMPROW row = out + reader->cinfo.output_scanline * stride;
    jpeg_read_scanlines(&reader->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&reader->cinfo);
  return true;
}

absl::StatusOr<Image8> DecodeJpeg(const std::string& bytes, int min_side) {
  JpegReader reader;
  struct Destroy {
    JpegReader* r;
    ~Destroy() {
      if (r->created) jpeg_destroy_decompress(&r->cinfo);
    }
  } destroy{&reader};
  if (!JpegReadHeader(&reader, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), min_side)) {
    return absl::InvalidArgumentError(absl::StrCat("not a readable JPEG: ", reader.error.message));
  }
  if (reader.cinfo.out_color_components != 3) {
    return absl::InvalidArgumentError("JPEG does not convert to RGB");
  }
  Image8 image;
  image.width = static_cast<int>(reader.cinfo.output_width);
  image.height = static_cast<int>(reader.cinfo.output_height);
  image.channels = 3;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  if (!JpegReadPixels(&reader, image.pixels.data())) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", reader.error.message));
  }
  return image;
}

// ---------------------------------------------------------------------------

bool StartsWith(const std::string& bytes, const char* magic, size_t n) {
  return bytes.size() >= n && bytes.compare(0, n, magic, n) == 0;
}

// Decodes a JPEG or PNG file, centre-crops it to a square, resizes it to
// `size` and writes it as RGB planes (CHW) to `out`.
absl::Status DecodeInto(const std::string& path, int size, uint8_t* out) {
  DFV_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  absl::StatusOr<Image8> decoded;
  if (StartsWith(bytes, "\xFF\xD8\xFF", 3)) {
    decoded = DecodeJpeg(bytes, size);
  } else if (StartsWith(bytes, "\x89PNG\r\n\x1A\n", 8)) {
    decoded = DecodePng(bytes);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JPEG or PNG file"));
  }
  if (!decoded.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", decoded.status().message()));
  const Image8& image = *decoded;
  if (image.width < 1 || image.height < 1) return absl::InvalidArgumentError(absl::StrCat(path, ": empty image"));

  // The centred square, as planes, then the antialiased resize.
  const int side = std::min(image.width, image.height);
  const int x0 = (image.width - side) / 2, y0 = (image.height - side) / 2;
  ImageSet square;
  square.size = 1;
  square.channels = 3;
  square.height = square.width = side;
  square.pixels.resize(static_cast<size_t>(3) * side * side);
  for (int c = 0; c < 3; ++c) {
    const int source_channel = image.channels == 1 ? 0 : c;
    for (int y = 0; y < side; ++y) {
      const uint8_t* row = image.pixels.data() + (static_cast<size_t>(y0 + y) * image.width + x0) * image.channels;
      uint8_t* dst = square.pixels.data() + (static_cast<size_t>(c) * side + y) * side;
      for (int x = 0; x < side; ++x) dst[x] = row[x * image.channels + source_channel];
    }
  }
  ImageSet resized = ResizeImages(square, size, size);
  std::copy(resized.pixels.begin(), resized.pixels.end(), out);
  return absl::OkStatus();
}

// Decodes `files` (full paths) into `set`, which has them preallocated, on
// up to `threads` threads. The first failing file in list order wins, so
// the error does not depend on scheduling.
absl::Status DecodeAll(const std::vector<std::string>& files, int threads, ImageSet* set) {
  const int64_t n = static_cast<int64_t>(files.size());
  std::vector<absl::Status> errors(files.size());
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&]() {
    for (int64_t i = next++; i < n && !failed.load(std::memory_order_relaxed); i = next++) {
      errors[i] = DecodeInto(files[i], set->height, set->pixels.data() + i * set->ImageBytes());
      if (!errors[i].ok()) failed = true;
    }
  };
  std::vector<std::thread> pool;
  try {
    for (int t = 1; t < threads && t < n; ++t) pool.emplace_back(work);
  } catch (const std::system_error& e) {
    failed = true;
    for (auto& thread : pool) thread.join();
    return absl::ResourceExhaustedError(absl::StrCat("cannot start an image decoding thread: ", e.what()));
  }
  work();
  for (auto& thread : pool) thread.join();
  for (const absl::Status& status : errors) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// CelebA's partition file, if there is one: file name -> partition.
absl::StatusOr<std::map<std::string, int64_t>> ReadPartitions(const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::map<std::string, int64_t> partitions;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int64_t partition = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &partition) || partition < 0 || partition > 2) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_number,
                                                     ": expected \"<file> <0|1|2>\", got \"", line, "\""));
    }
    partitions[std::string(fields[0])] = partition;
  }
  return partitions;
}

ImageSet EmptySet(int64_t n, int size, int num_classes, const std::vector<std::string>& class_names) {
  ImageSet set;
  set.size = n;
  set.channels = 3;
  set.height = set.width = size;
  set.num_classes = num_classes;
  set.class_names = class_names;
  set.pixels.resize(static_cast<size_t>(n) * set.ImageBytes());
  set.labels.reserve(n);
  return set;
}

}  // namespace

absl::StatusOr<AttributeTable> ParseAttributeFile(const std::string& text, const std::string& source) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  // Drop trailing blank lines (a final newline, CRLF leftovers).
  while (!lines.empty() && absl::StripAsciiWhitespace(lines.back()).empty()) lines.pop_back();
  if (lines.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": needs a count line and an attribute-name line, found ", lines.size(), " lines"));
  }
  int64_t count = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(lines[0]), &count) || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":1: expected the number of images, got \"",
                                                   absl::StripAsciiWhitespace(lines[0]), "\""));
  }
  AttributeTable table;
  for (absl::string_view name : absl::StrSplit(lines[1], absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
    table.names.emplace_back(name);
  }
  if (table.names.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ":2: no attribute names"));
  const size_t columns = table.names.size();
  for (size_t i = 2; i < lines.size(); ++i) {
    std::vector<absl::string_view> fields = absl::StrSplit(lines[i], absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", i + 1, ": empty line inside the table"));
    }
    if (fields.size() != columns + 1) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", i + 1, ": ", fields[0], " has ",
                                                     fields.size() - 1, " values, expected ", columns,
                                                     " (one per attribute name on line 2)"));
    }
    table.files.emplace_back(fields[0]);
    for (size_t c = 1; c < fields.size(); ++c) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(fields[c], &v)) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", i + 1, ": value \"", fields[c], "\" of ",
                                                       table.names[c - 1], " is not an integer"));
      }
      table.values.push_back(v);
    }
  }
  if (static_cast<int64_t>(table.files.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": line 1 says ", count, " images but the table has ",
                                                   table.files.size(), " rows"));
  }
  return table;
}

absl::StatusOr<ImageFolderSplits> LoadImageFolder(const ImageFolderOptions& options) {
  if (options.image_size < 1 || options.image_size > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("image_folder: image size ", options.image_size,
                                                   " is outside [1, 4096]"));
  }
  if (options.attribute.empty()) {
    return absl::InvalidArgumentError("dataset.attribute is required for image_folder (the attribute file's "
                                      "column that is the class, e.g. Eyeglasses)");
  }
  std::error_code ec;
  if (!fs::is_directory(options.folder, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset.path: ", options.folder, " is not a folder"));
  }
  const fs::path attr_path = AttrFilePath(options.folder, options.attr_file);
  if (!fs::is_regular_file(attr_path, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset.attr_file: ", attr_path.string(), " not found"));
  }
  DFV_ASSIGN_OR_RETURN(std::string attr_text, ReadFileToString(attr_path.string()));
  DFV_ASSIGN_OR_RETURN(AttributeTable table, ParseAttributeFile(attr_text, attr_path.string()));

  // The class column and its values.
  const auto column_it = std::find(table.names.begin(), table.names.end(), options.attribute);
  if (column_it == table.names.end()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset.attribute: \"", options.attribute, "\" is not a column of ",
                                                   attr_path.string(), "; it has: ",
                                                   absl::StrJoin(table.names, ", ")));
  }
  const size_t column = static_cast<size_t>(column_it - table.names.begin());
  const size_t columns = table.names.size();
  std::set<int64_t> distinct;
  for (size_t r = 0; r < table.files.size(); ++r) distinct.insert(table.values[r * columns + column]);
  if (distinct.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset.attribute: \"", options.attribute, "\" takes ", distinct.size() == 1 ? "a single value" : "no value",
        " in ", attr_path.string(), "; a class attribute needs at least two"));
  }
  std::map<int64_t, int64_t> label_of;
  std::vector<std::string> class_names;
  for (int64_t value : distinct) {
    label_of[value] = static_cast<int64_t>(class_names.size());
    class_names.push_back(absl::StrCat(options.attribute, "=", value));
  }

  // Where the images are.
  for (const std::string& file : table.files) {
    absl::Status safe = ValidateRelativePath(file, "image name");
    if (!safe.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(attr_path.string(), ": image name \"", file, "\" is not a safe relative path: ", safe.message()));
    }
  }
  fs::path image_dir = options.folder;
  if (!fs::exists(image_dir / table.files[0], ec)) {
    image_dir = fs::path(options.folder) / kCelebaImageDir;
    if (!fs::exists(image_dir / table.files[0], ec)) {
      return absl::NotFoundError(absl::StrCat("dataset.path: image ", table.files[0], " (first row of ",
                                              attr_path.string(), ") is neither in ", options.folder, " nor in ",
                                              image_dir.string()));
    }
  }

  // Which rows go to which set.
  std::vector<bool> is_test(table.files.size(), false);
  fs::path partition_path = fs::path(options.folder) / kPartitionFile;
  if (!fs::is_regular_file(partition_path, ec)) partition_path = attr_path.parent_path() / kPartitionFile;
  if (fs::is_regular_file(partition_path, ec)) {
    DFV_ASSIGN_OR_RETURN(auto partitions, ReadPartitions(partition_path.string()));
    for (size_t r = 0; r < table.files.size(); ++r) {
      auto it = partitions.find(table.files[r]);
      if (it == partitions.end()) {
        return absl::InvalidArgumentError(absl::StrCat(partition_path.string(), " has no entry for ",
                                                       table.files[r], " (listed in ", attr_path.string(), ")"));
      }
      is_test[r] = it->second != 0;
    }
  } else {
    const int64_t n = static_cast<int64_t>(table.files.size());
    const int64_t test_count = (n * kTestPercent + 99) / 100;
    const std::vector<int64_t> order = EpochSampler::EpochPermutation(n, options.split_seed, 0);
    for (int64_t k = 0; k < test_count; ++k) is_test[order[k]] = true;
  }

  std::vector<size_t> rows[2];
  for (size_t r = 0; r < table.files.size(); ++r) rows[is_test[r] ? 1 : 0].push_back(r);
  const int64_t limits[2] = {options.train_limit, options.test_limit};
  const char* names[2] = {"training", "test"};
  const int threads = options.threads > 0
                          ? options.threads
                          : std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxThreads);
  ImageSet sets[2];
  for (int s = 0; s < 2; ++s) {
    if (limits[s] > 0 && static_cast<int64_t>(rows[s].size()) > limits[s]) rows[s].resize(limits[s]);
    if (rows[s].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("image_folder ", options.folder, ": the ", names[s],
                                                     " set is empty (", table.files.size(), " images listed)"));
    }
    sets[s] = EmptySet(static_cast<int64_t>(rows[s].size()), options.image_size,
                       static_cast<int>(class_names.size()), class_names);
    std::vector<std::string> paths;
    for (size_t r : rows[s]) {
      paths.push_back((image_dir / table.files[r]).string());
      sets[s].labels.push_back(label_of[table.values[r * columns + column]]);
    }
    DFV_RETURN_IF_ERROR(DecodeAll(paths, threads, &sets[s]));
    DFV_RETURN_IF_ERROR(ValidateImageSet(sets[s]));
  }
  return ImageFolderSplits{std::move(sets[0]), std::move(sets[1])};
}

std::string AttrFilePath(const std::string& folder, const std::string& attr_file) {
  return fs::path(attr_file).is_absolute() ? attr_file : (fs::path(folder) / attr_file).string();
}

absl::StatusOr<LoadedSplits> LoadImageFolderDataset(const jobspec::DatasetSpec& spec) {
  ImageFolderOptions folder;
  folder.folder = spec.path;
  folder.attr_file = spec.params.GetString("attr_file");
  folder.attribute = spec.params.GetString("attribute");
  folder.image_size = static_cast<int>(spec.image_size);  // decoded at the target size
  folder.split_seed = static_cast<uint64_t>(spec.params.GetInt("seed"));
  folder.train_limit = spec.train_limit;
  folder.test_limit = spec.test_limit;
  DFV_ASSIGN_OR_RETURN(ImageFolderSplits loaded, LoadImageFolder(folder));
  return LoadedSplits{std::move(loaded.train), std::move(loaded.test)};
}

}  // namespace dfv::data
