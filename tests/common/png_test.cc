#include "common/png.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_util.h"

namespace dfv {
namespace {

Image8 Gradient(int w, int h, int c) {
  Image8 img{w, h, c, {}};
  img.pixels.resize(static_cast<size_t>(w) * h * c);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 7) % 256);
  return img;
}

TEST(PngTest, GreyRoundTripIsExact) {
  Image8 in = Gradient(29, 17, 1);
  auto bytes = EncodePng(in);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto out = DecodePng(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->width, 29);
  EXPECT_EQ(out->height, 17);
  EXPECT_EQ(out->channels, 1);
  EXPECT_EQ(out->pixels, in.pixels);
}

TEST(PngTest, RgbFileRoundTripIsExact) {
  Image8 in = Gradient(64, 40, 3);
  std::string path = (std::filesystem::path(::testing::TempDir()) / "rgb_roundtrip.png").string();
  ASSERT_TRUE(WritePngFile(path, in).ok());
  auto out = ReadPngFile(path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->channels, 3);
  EXPECT_EQ(out->pixels, in.pixels);
}

TEST(PngTest, RejectsMalformedImageAndGarbage) {
  Image8 bad{4, 4, 3, std::vector<uint8_t>(10)};
  EXPECT_EQ(EncodePng(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePng("definitely not a png").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv
