// Bearer tokens as dfv's clients send them and the coordinator reads them:
// the metadata key and prefix, and the one way a token is read from a file
// or from stdin (dfvctl --token-file, dfv-coordinator hash-token), so both
// sides agree on what the token is.
//
// A token is one line of printable ASCII without spaces (what
// `openssl rand -hex 32` prints); the first non-empty line counts, with
// surrounding whitespace (the newline) stripped. Tokens never appear in
// error messages.
#ifndef DFV_COMMON_RPC_BEARER_TOKEN_H_
#define DFV_COMMON_RPC_BEARER_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dfv::rpc {

// gRPC metadata key (lower case, as gRPC requires) and the value's prefix:
// "authorization: Bearer <token>".
inline constexpr char kAuthorizationKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

// The token in `text` (a token file's contents). INVALID_ARGUMENT, naming
// `source`, when there is no non-empty line or the line is not a token.
absl::StatusOr<std::string> TokenFromText(absl::string_view text, const std::string& source);

// Reads `path` and returns its token. NOT_FOUND / PERMISSION_DENIED (as
// the file system says) naming the file when it cannot be read;
// INVALID_ARGUMENT as TokenFromText.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_BEARER_TOKEN_H_
