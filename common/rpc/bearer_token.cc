#include "common/rpc/bearer_token.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace dfv::rpc {
namespace {

// Longer than any token a person or openssl makes; keeps metadata small.
constexpr size_t kMaxTokenBytes = 4096;

}  // namespace

absl::StatusOr<std::string> TokenFromText(absl::string_view text, const std::string& source) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (line.size() > kMaxTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": the token is longer than ",
                                                     kMaxTokenBytes, " bytes"));
    }
    for (char c : line) {
      // What gRPC sends as a metadata value, without spaces; the token
      // itself is not quoted back.
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": the token must be printable ASCII without spaces (e.g. from "
                    "`openssl rand -hex 32`)"));
      }
    }
    return std::string(line);
  }
  return absl::InvalidArgumentError(absl::StrCat(source, ": no token (the file is empty)"));
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("cannot read token file: ", text.status().message()));
  }
  return TokenFromText(*text, absl::StrCat("token file ", path));
}

}  // namespace dfv::rpc
