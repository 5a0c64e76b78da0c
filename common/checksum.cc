#include "common/checksum.h"

#include <zlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dfv {

uint32_t Crc32Update(uint32_t crc, std::string_view data) {
  // zlib takes uInt lengths; feed large buffers in pieces.
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  size_t left = data.size();
  uLong c = crc;
  while (left > 0) {
    uInt n = left > (1u << 30) ? (1u << 30) : static_cast<uInt>(left);
    c = crc32(c, p, n);
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(c);
}

uint32_t Crc32(std::string_view data) { return Crc32Update(0, data); }

std::string Crc32Hex(uint32_t crc) { return absl::StrFormat("crc32:%08x", crc); }

absl::StatusOr<uint32_t> ParseCrc32Hex(const std::string& checksum) {
  constexpr absl::string_view kPrefix = "crc32:";
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("checksum '", checksum, "' is not crc32:<8 hex digits>"));
  };
  if (!absl::StartsWith(checksum, kPrefix)) return bad();
  const std::string hex = checksum.substr(kPrefix.size());
  if (hex.size() != 8) return bad();
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return bad();
  }
  uint32_t value = 0;
  if (!absl::SimpleHexAtoi(hex, &value)) return bad();
  return value;
}

}  // namespace dfv
