#include "common/random_secret.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dfv {

absl::StatusOr<std::string> RandomHexSecret(size_t bytes) {
  if (bytes == 0 || bytes > 256) {
    return absl::InvalidArgumentError(absl::StrCat("RandomHexSecret: ", bytes, " bytes (1..256)"));
  }
  std::string raw(bytes, '\0');
  size_t filled = 0;
  while (filled < bytes) {
    // Up to 256 bytes come in one call once the pool is initialised; a
    // signal may still interrupt it.
    const ssize_t got = ::getrandom(raw.data() + filled, bytes - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    filled += static_cast<size_t>(got);
  }
  return absl::BytesToHexString(raw);
}

}  // namespace dfv
