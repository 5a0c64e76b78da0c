#include "common/raster.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace dfv {
namespace {

// One glyph: its character and 7 rows of 5 columns ('#' ink, '.' paper),
// drawn for this file, so a glyph can be read and corrected by eye.
struct Glyph {
  char c;
  const char* rows[kGlyphHeight];
};

// clang-format off
constexpr Glyph kGlyphs[] = {
  {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
  {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},
  {'"', {".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."}},
  {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},
  {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
  {'&', {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}},
  {'\'', {"..#..", "..#..", ".....", ".....", ".....", ".....", "....."}},
  {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
  {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
  {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},
  {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
  {',', {".....", ".....", ".....", ".....", "..##.", "..#..", ".#..."}},
  {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
  {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
  {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
  {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
  {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
  {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
  {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
  {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
  {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
  {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
  {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
  {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
  {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
  {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
  {';', {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}},
  {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},
  {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
  {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},
  {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
  {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
  {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
  {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
  {'D', {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}},
  {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
  {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
  {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
  {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
  {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
  {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
  {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
  {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
  {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
  {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
  {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
  {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
  {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
  {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
  {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
  {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
  {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
  {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
  {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
  {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
  {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
  {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
  {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
  {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
  {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
  {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
};
// clang-format on

// What a character without a glyph looks like.
constexpr Glyph kMissing = {'\0', {"#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"}};

const Glyph& FindGlyph(char c) {
  const char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kGlyphs) {
    if (g.c == upper) return g;
  }
  return kMissing;
}

bool WellFormed(const Image8& image) {
  return image.width > 0 && image.height > 0 && (image.channels == 1 || image.channels == 3) &&
         image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels;
}

void SetPixel(Image8& image, int x, int y, const std::array<uint8_t, 3>& colour) {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  uint8_t* p = &image.pixels[(static_cast<size_t>(y) * image.width + x) * image.channels];
  for (int c = 0; c < image.channels; ++c) p[c] = colour[c];
}

}  // namespace

std::string FontCharacters() {
  std::string all;
  for (const Glyph& g : kGlyphs) all.push_back(g.c);
  return all;
}

std::array<uint8_t, kGlyphHeight> GlyphRows(char c) {
  const Glyph& g = FindGlyph(c);
  std::array<uint8_t, kGlyphHeight> rows{};
  for (int r = 0; r < kGlyphHeight; ++r) {
    for (int col = 0; col < kGlyphWidth; ++col) {
      if (g.rows[r][col] == '#') rows[r] |= static_cast<uint8_t>(1u << (kGlyphWidth - 1 - col));
    }
  }
  return rows;
}

int TextWidth(const std::string& text, int scale) {
  scale = std::max(scale, 1);
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kGlyphAdvance - 1) * scale;
}

void FillRect(Image8& image, int x, int y, int width, int height, const std::array<uint8_t, 3>& colour) {
  if (!WellFormed(image)) return;
  const int x0 = std::max(x, 0), y0 = std::max(y, 0);
  const int x1 = std::min(x + width, image.width), y1 = std::min(y + height, image.height);
  for (int py = y0; py < y1; ++py) {
    for (int px = x0; px < x1; ++px) SetPixel(image, px, py, colour);
  }
}

void DrawText(Image8& image, int x, int y, const std::string& text, const std::array<uint8_t, 3>& colour,
              int scale) {
  if (!WellFormed(image)) return;
  scale = std::max(scale, 1);
  for (size_t i = 0; i < text.size(); ++i) {
    const std::array<uint8_t, kGlyphHeight> rows = GlyphRows(text[i]);
    const int gx = x + static_cast<int>(i) * kGlyphAdvance * scale;
    for (int r = 0; r < kGlyphHeight; ++r) {
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (rows[r] & (1u << (kGlyphWidth - 1 - col))) {
          FillRect(image, gx + col * scale, y + r * scale, scale, scale, colour);
        }
      }
    }
  }
}

Image8 UpscaleNearest(const Image8& image, int factor) {
  if (factor <= 1 || !WellFormed(image)) return image;
  Image8 out;
  out.width = image.width * factor;
  out.height = image.height * factor;
  out.channels = image.channels;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * out.channels);
  const size_t in_row = static_cast<size_t>(image.width) * image.channels;
  const size_t out_row = static_cast<size_t>(out.width) * out.channels;
  for (int y = 0; y < image.height; ++y) {
    uint8_t* dst = &out.pixels[static_cast<size_t>(y) * factor * out_row];
    const uint8_t* src = &image.pixels[static_cast<size_t>(y) * in_row];
    for (int x = 0; x < image.width; ++x) {
      for (int k = 0; k < factor; ++k) {
        std::memcpy(dst + (static_cast<size_t>(x) * factor + k) * image.channels,
                    src + static_cast<size_t>(x) * image.channels, image.channels);
      }
    }
    // The other factor - 1 rows repeat the first.
    for (int k = 1; k < factor; ++k) std::memcpy(dst + k * out_row, dst, out_row);
  }
  return out;
}

int UpscaleFactorFor(int width, int min_width) {
  if (width <= 0 || min_width <= width) return 1;
  return (min_width + width - 1) / width;
}

}  // namespace dfv
