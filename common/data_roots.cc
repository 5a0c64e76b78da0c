#include "common/data_roots.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dfv {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<fs::path> Resolve(const std::string& path, absl::string_view what) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  // weakly_canonical resolves the symlinks of the part that exists and
  // normalises the rest lexically, so `..` cannot climb out after a symlink.
  if (!ec) absolute = fs::weakly_canonical(absolute, ec);
  if (ec) return absl::InternalError(absl::StrCat(what, ": cannot resolve ", path, ": ", ec.message()));
  return absolute;
}

// Whether `path` is `root` or below it, component by component (both
// resolved, so neither has `.`, `..` or a trailing empty component that
// matters).
bool IsWithin(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r) {
    if (r->empty()) continue;  // "/usr/" ends with an empty component
    if (p == path.end() || *p != *r) return false;
    ++p;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveDataRoots(const std::vector<std::string>& roots) {
  std::vector<std::string> resolved;
  for (const std::string& root : roots) {
    if (root.empty()) return absl::InvalidArgumentError("--data-root: an empty folder name");
    absl::StatusOr<fs::path> r = Resolve(root, "--data-root");
    if (!r.ok()) return r.status();
    resolved.push_back(r->string());
  }
  return resolved;
}

absl::Status CheckUnderDataRoots(absl::string_view what, const std::string& path,
                                 const std::vector<std::string>& roots) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty"));
  if (roots.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no data roots to check it against"));
  absl::StatusOr<std::vector<std::string>> resolved_roots = ResolveDataRoots(roots);
  if (!resolved_roots.ok()) return resolved_roots.status();
  absl::StatusOr<fs::path> resolved = Resolve(path, what);
  if (!resolved.ok()) return resolved.status();
  for (const std::string& root : *resolved_roots) {
    if (IsWithin(*resolved, fs::path(root))) return absl::OkStatus();
  }
  const std::string shown = resolved->string() == path ? path : absl::StrCat(path, " (", resolved->string(), ")");
  return absl::PermissionDeniedError(absl::StrCat(what, ": ", shown, " lies outside this worker's data roots (",
                                                  absl::StrJoin(*resolved_roots, ", "),
                                                  "); a worker reads data only under its --data-root folders"));
}

}  // namespace dfv
