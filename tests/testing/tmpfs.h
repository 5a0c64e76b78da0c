// A small tmpfs mounted over a folder for the length of a test: a real file
// system that fills up. Mounting needs root.
#ifndef DFV_TESTS_TESTING_TMPFS_H_
#define DFV_TESTS_TESTING_TMPFS_H_

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dfv::testing {

class ScopedTmpfs {
 public:
  // Mounts a tmpfs of `size` ("4m", "1m": mount's size= option) over the
  // existing folder `path`. FAILED_PRECONDITION when not root or when the
  // kernel refuses (the caller skips its test then).
  static absl::StatusOr<std::unique_ptr<ScopedTmpfs>> Mount(const std::string& path, const std::string& size) {
    if (::geteuid() != 0) return absl::FailedPreconditionError("mounting a tmpfs needs root");
    const std::string data = absl::StrCat("size=", size);
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, data.c_str()) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("cannot mount a tmpfs on ", path, ": ", std::strerror(errno)));
    }
    return std::unique_ptr<ScopedTmpfs>(new ScopedTmpfs(path));
  }
  // Detaches the mount (lazily, so open files do not keep it).
  ~ScopedTmpfs() { ::umount2(path_.c_str(), MNT_DETACH); }
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;

 private:
  explicit ScopedTmpfs(std::string path) : path_(std::move(path)) {}
  const std::string path_;
};

}  // namespace dfv::testing

#endif  // DFV_TESTS_TESTING_TMPFS_H_
