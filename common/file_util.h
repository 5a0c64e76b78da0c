// File helpers with explicit error reporting. Everything dfv persists (job
// results, checkpoints, artifacts) goes through WriteFileAtomically so a crash
// never leaves a half-written file under the final name.
#ifndef DFV_COMMON_FILE_UTIL_H_
#define DFV_COMMON_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv {

// Writes `contents` to `path` atomically: a temporary file in the same folder
// is written, fsync'ed and renamed over `path`, then the folder is fsync'ed.
// Readers see either the old file or the complete new one.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Reads a whole file. NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Creates `path` and its parents (like mkdir -p).
absl::Status MakeDirs(const std::string& path);

// Appends to a file, creating it; used for logs such as metrics.csv where a
// torn final line is acceptable. Not atomic.
absl::Status AppendToFile(const std::string& path, std::string_view contents);

// True when `name` is safe as a single path component (letters, digits, '.',
// '_', '-', not starting with '.', at most 128 characters).
bool IsSafePathComponent(std::string_view name);

}  // namespace dfv

#endif  // DFV_COMMON_FILE_UTIL_H_
