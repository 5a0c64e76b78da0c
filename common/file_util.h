// File helpers with explicit error reporting. Everything dfv persists (job
// results, checkpoints, artifacts) goes through WriteFileAtomically so a crash
// never leaves a half-written file under the final name.
#ifndef DFV_COMMON_FILE_UTIL_H_
#define DFV_COMMON_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dfv {

// "WHAT PATH: strerror(err)" with the code that says what the caller can do:
// NOT_FOUND for ENOENT, PERMISSION_DENIED for EACCES and EPERM,
// RESOURCE_EXHAUSTED for ENOSPC and EDQUOT, INTERNAL otherwise.
absl::Status ErrnoStatus(std::string_view what, const std::string& path, int err);

// Writes `contents` to `path` atomically: a temporary file in the same folder
// is written, fsync'ed and renamed over `path`, then the folder is fsync'ed.
// Readers see either the old file or the complete new one.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Reads a whole file. NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Creates `path` and its parents (like mkdir -p).
absl::Status MakeDirs(const std::string& path);

// The bytes an unprivileged writer may still add to the file system that
// holds `path` (statvfs: f_bavail * f_frsize). NOT_FOUND when `path` does not
// exist.
absl::StatusOr<int64_t> AvailableBytes(const std::string& path);

// Appends to a file, creating it; used for logs such as metrics.csv where a
// torn final line is acceptable. Not atomic.
absl::Status AppendToFile(const std::string& path, std::string_view contents);

// True when `name` is safe as a single path component (letters, digits, '.',
// '_', '-', not starting with '.', at most 128 characters).
bool IsSafePathComponent(std::string_view name);

// Longest relative path ValidateRelativePath accepts, and most
// '/'-separated components in one.
inline constexpr size_t kMaxRelativePathBytes = 512;
inline constexpr int kMaxRelativePathDepth = 8;

// OK when `path` is a relative path of 1..kMaxRelativePathDepth safe
// components (IsSafePathComponent), at most kMaxRelativePathBytes bytes: no
// "..", not absolute, no empty component, so it can be joined below a folder
// without leaving it. INVALID_ARGUMENT otherwise, saying what is wrong and
// naming the path as `what` ("artifact name 'a/../b' has the unsafe
// component '..' ...").
absl::Status ValidateRelativePath(absl::string_view path, absl::string_view what);

// ValidateRelativePath for the name of one of a job's artifacts
// ("grids/swap-step00000500.png"): the coordinator stores it below the job's
// folder, dfvctl writes it below the download folder.
inline absl::Status ValidateArtifactName(absl::string_view name) {
  return ValidateRelativePath(name, "artifact name");
}

}  // namespace dfv

#endif  // DFV_COMMON_FILE_UTIL_H_
