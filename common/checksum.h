// Checksums for persisted files (checkpoints, artifacts). CRC-32 (zlib) is
// enough to detect truncation and bit rot; it is not a security measure.
#ifndef DFV_COMMON_CHECKSUM_H_
#define DFV_COMMON_CHECKSUM_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dfv {

uint32_t Crc32(std::string_view data);

// Incremental form: start with Crc32Update(0, first), then feed the rest.
uint32_t Crc32Update(uint32_t crc, std::string_view data);

// "crc32:xxxxxxxx", the form checksums take in manifests and events.
std::string Crc32Hex(uint32_t crc);

// The CRC a Crc32Hex string holds ("crc32:" and eight hex digits, either
// case). INVALID_ARGUMENT naming the text otherwise.
absl::StatusOr<uint32_t> ParseCrc32Hex(const std::string& checksum);

}  // namespace dfv

#endif  // DFV_COMMON_CHECKSUM_H_
