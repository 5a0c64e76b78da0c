#include "common/raster.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace dfv {
namespace {

Image8 Blank(int width, int height, int channels) {
  Image8 image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.pixels.assign(static_cast<size_t>(width) * height * channels, 255);
  return image;
}

int InkPixels(const Image8& image) {
  int ink = 0;
  for (size_t i = 0; i < image.pixels.size(); i += image.channels) ink += image.pixels[i] != 255;
  return ink;
}

TEST(RasterTest, EveryGlyphIsDistinctAndSpaceIsBlank) {
  const std::string chars = FontCharacters();
  EXPECT_GE(chars.size(), 36u + 20u);  // letters, digits and punctuation
  std::set<std::array<uint8_t, kGlyphHeight>> seen;
  for (char c : chars) {
    const auto rows = GlyphRows(c);
    if (c == ' ') {
      EXPECT_EQ(rows, (std::array<uint8_t, kGlyphHeight>{}));
    } else {
      EXPECT_TRUE(seen.insert(rows).second) << "glyph of '" << c << "' repeats another";
    }
  }
  // Lower case shares the capitals; an unknown character is a box.
  EXPECT_EQ(GlyphRows('q'), GlyphRows('Q'));
  EXPECT_EQ(GlyphRows('\x01'), GlyphRows('~'));
  EXPECT_EQ(seen.count(GlyphRows('~')), 0u);
}

TEST(RasterTest, DrawTextInksTheGlyphsAtTheirPlace) {
  EXPECT_EQ(TextWidth(""), 0);
  EXPECT_EQ(TextWidth("AB"), 11);
  EXPECT_EQ(TextWidth("AB", 3), 33);
  Image8 image = Blank(40, 20, 3);
  DrawText(image, 2, 3, "I", {0, 0, 0});
  // 'I' has 11 ink pixels: two bars of 3 and a stem of 5.
  EXPECT_EQ(InkPixels(image), 11);
  // Top bar at row 3, columns 3..5.
  for (int x = 3; x <= 5; ++x) EXPECT_EQ(image.pixels[(3 * 40 + x) * 3], 0) << x;
  Image8 big = Blank(40, 30, 1);
  DrawText(big, 0, 0, "I", {0, 0, 0}, 2);
  EXPECT_EQ(InkPixels(big), 44);
  // Clipped at the border, never outside the buffer.
  Image8 small = Blank(4, 4, 3);
  DrawText(small, -2, -3, "W8", {10, 20, 30}, 3);
  EXPECT_EQ(small.pixels.size(), 48u);
}

TEST(RasterTest, UpscaleRepeatsEveryPixel) {
  Image8 image = Blank(2, 1, 3);
  image.pixels = {1, 2, 3, 4, 5, 6};
  Image8 up = UpscaleNearest(image, 3);
  ASSERT_EQ(up.width, 6);
  ASSERT_EQ(up.height, 3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 6; ++x) {
      const uint8_t* p = &up.pixels[(y * 6 + x) * 3];
      const int src = x / 3;
      EXPECT_EQ(p[0], 1 + 3 * src);
      EXPECT_EQ(p[2], 3 + 3 * src);
    }
  }
  EXPECT_EQ(UpscaleNearest(image, 1).pixels, image.pixels);
  EXPECT_EQ(UpscaleNearest(image, 0).width, 2);
  EXPECT_EQ(UpscaleFactorFor(100, 256), 3);
  EXPECT_EQ(UpscaleFactorFor(128, 256), 2);
  EXPECT_EQ(UpscaleFactorFor(300, 256), 1);
  EXPECT_EQ(UpscaleFactorFor(0, 256), 1);
}

}  // namespace
}  // namespace dfv
