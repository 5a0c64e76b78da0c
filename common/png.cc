#include "common/png.h"

#include <png.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv {

absl::StatusOr<std::string> EncodePng(const Image8& image) {
  if (image.width <= 0 || image.height <= 0 || (image.channels != 1 && image.channels != 3)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot encode a ", image.width, "x", image.height,
                                                   "x", image.channels, " image as PNG"));
  }
  size_t expected = static_cast<size_t>(image.width) * image.height * image.channels;
  if (image.pixels.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("image has ", image.pixels.size(),
                                                   " bytes, expected ", expected));
  }
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    std::string msg = png.message;
    png_image_free(&png);
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", msg));
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    std::string msg = png.message;
    png_image_free(&png);
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", msg));
  }
  out.resize(size);
  return out;
}

absl::StatusOr<Image8> DecodePng(const std::string& bytes) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    std::string msg = png.message;
    png_image_free(&png);
    return absl::InvalidArgumentError(absl::StrCat("not a readable PNG: ", msg));
  }
  bool grey = (png.format & PNG_FORMAT_FLAG_COLOR) == 0;
  png.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image8 image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.channels = grey ? 1 : 3;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    std::string msg = png.message;
    png_image_free(&png);
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", msg));
  }
  return image;
}

absl::Status WritePngFile(const std::string& path, const Image8& image) {
  DFV_ASSIGN_OR_RETURN(std::string bytes, EncodePng(image));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<Image8> ReadPngFile(const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  auto image = DecodePng(bytes);
  if (!image.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", image.status().message()));
  }
  return image;
}

}  // namespace dfv
