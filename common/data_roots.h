// Data roots: the folders a worker's trainers may read data sets from. A job
// names its data set's folder (dataset.path); a worker that runs jobs from
// other people reads only under the folders its operator allowed, so a job
// cannot make it read /etc or another job's files.
#ifndef DFV_COMMON_DATA_ROOTS_H_
#define DFV_COMMON_DATA_ROOTS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv {

// Makes each root absolute (relative ones against the current directory) and
// resolves its symlinks (std::filesystem::weakly_canonical: a root that does
// not exist yet is normalised lexically). INVALID_ARGUMENT for an empty root;
// INTERNAL when the file system cannot be asked. Thread-safe.
absl::StatusOr<std::vector<std::string>> ResolveDataRoots(const std::vector<std::string>& roots);

// OK when `path` (relative ones against the current directory), with every
// symlink and `..` resolved, is one of `roots` or lies under one, comparing
// whole path components (/data2 is not under /data). `roots` are resolved
// here too, so callers may pass them as given. A path that does not exist is
// judged by where it would be (its existing prefix resolved, the rest
// normalised); the loader then reports it missing. Opens no file.
// PERMISSION_DENIED naming `what` (e.g. "dataset.path"), the path, where it
// resolves to and the allowed roots; INVALID_ARGUMENT for an empty path or
// no roots. Thread-safe.
absl::Status CheckUnderDataRoots(absl::string_view what, const std::string& path,
                                 const std::vector<std::string>& roots);

}  // namespace dfv

#endif  // DFV_COMMON_DATA_ROOTS_H_
