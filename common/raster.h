// Drawing on 8-bit images (common/png.h's Image8): filled rectangles, text in
// a built-in 5x7 bitmap font, and nearest-neighbour upscaling. Used for the
// labels of plots and for enlarging sample grids so a person can read them.
//
// The font has upper-case letters, digits, space and common punctuation
// (FontCharacters); lower-case letters are drawn with the upper-case glyphs,
// and any other character as a hollow box.
//
// All functions are pure or modify only the image they are given; drawing
// outside the image is clipped. Thread-compatible.
#ifndef DFV_COMMON_RASTER_H_
#define DFV_COMMON_RASTER_H_

#include <array>
#include <cstdint>
#include <string>

#include "common/png.h"

namespace dfv {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;
// Horizontal advance per character at scale 1 (one blank column between).
inline constexpr int kGlyphAdvance = kGlyphWidth + 1;

// The characters with a glyph of their own, in code order (lower-case
// letters share the upper-case glyphs).
std::string FontCharacters();

// The 7 rows of `c`'s glyph, bit 4 the leftmost column.
std::array<uint8_t, kGlyphHeight> GlyphRows(char c);

// Width in pixels of `text` drawn at `scale` (no trailing gap): 0 for an
// empty text.
int TextWidth(const std::string& text, int scale = 1);

// Fills the rectangle [x, x + width) x [y, y + height) with `colour` (its
// first image.channels entries; grey images take colour[0]).
void FillRect(Image8& image, int x, int y, int width, int height, const std::array<uint8_t, 3>& colour);

// Draws `text` with its top-left corner at (x, y), each font pixel a
// scale x scale square (scale < 1 counts as 1).
void DrawText(Image8& image, int x, int y, const std::string& text, const std::array<uint8_t, 3>& colour,
              int scale = 1);

// Every pixel of `image` repeated factor x factor times (factor < 1 counts as
// 1); a malformed image comes back unchanged.
Image8 UpscaleNearest(const Image8& image, int factor);

// The smallest integer factor >= 1 that makes an image `width` pixels wide at
// least `min_width` pixels wide (1 for a width <= 0).
int UpscaleFactorFor(int width, int min_width);

}  // namespace dfv

#endif  // DFV_COMMON_RASTER_H_
