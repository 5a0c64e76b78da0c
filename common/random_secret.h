// Secrets from the kernel's CSPRNG (getrandom(2)), e.g. the per-attempt
// rendezvous secret the coordinator hands to a job's ranks.
#ifndef DFV_COMMON_RANDOM_SECRET_H_
#define DFV_COMMON_RANDOM_SECRET_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace dfv {

// `bytes` random bytes as 2 * `bytes` lowercase hex characters. Blocks only
// while the kernel's pool is not yet initialised (early boot). INTERNAL when
// getrandom fails; INVALID_ARGUMENT for 0 or more than 256 bytes.
// Thread-safe.
absl::StatusOr<std::string> RandomHexSecret(size_t bytes);

}  // namespace dfv

#endif  // DFV_COMMON_RANDOM_SECRET_H_
