// A new file written front to back once, then made durable: what the
// coordinator does with every upload.
//
// With `direct` set, the bytes bypass the page cache (O_DIRECT): they are
// gathered in an aligned buffer and each full buffer goes from there to the
// device. A large checkpoint then costs no copy into the page cache (on a
// fresh VM, faulting in those pages was most of the coordinator's CPU during
// an upload) and leaves nothing for the final fsync to write back, and the
// checkpoints the coordinator rarely reads do not push other files out of the
// cache. The tail that does not fill an aligned block is written through the
// page cache at Finish. Where the file system refuses direct I/O (tmpfs,
// some network file systems) the writer falls back to ordinary writes, the
// same bytes either way.
#ifndef DFV_COMMON_SEQUENTIAL_FILE_H_
#define DFV_COMMON_SEQUENTIAL_FILE_H_

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv {

class SequentialFileWriter {
 public:
  // Alignment of direct writes' buffer, length and offset: a page, which
  // covers every logical block size Linux devices use.
  static constexpr size_t kDirectAlignment = 4096;
  // Bytes gathered before one direct write.
  static constexpr size_t kDirectBufferBytes = size_t{1} << 20;

  // Creates `path`, which must not exist (O_EXCL), mode 0644. Errors name the
  // path; ENOSPC and EDQUOT are RESOURCE_EXHAUSTED, EACCES and EPERM
  // PERMISSION_DENIED.
  static absl::StatusOr<std::unique_ptr<SequentialFileWriter>> Create(const std::string& path, bool direct);

  // Closes the file if Finish did not; the file stays (the caller removes
  // what it does not keep).
  ~SequentialFileWriter();
  SequentialFileWriter(const SequentialFileWriter&) = delete;
  SequentialFileWriter& operator=(const SequentialFileWriter&) = delete;

  absl::Status Append(std::string_view data);
  // Writes what is gathered, fsyncs and closes. Call once.
  absl::Status Finish();

  // Whether writes still bypass the page cache (false when not asked for or
  // after a fallback).
  bool direct() const { return direct_; }

 private:
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  // Direct I/O when `buffer` is set (O_DIRECT already on for `fd`).
  SequentialFileWriter(std::string path, int fd, std::unique_ptr<char, FreeDeleter> buffer);
  absl::Status WriteAll(std::string_view data);
  // Turns O_DIRECT off for the rest of the file.
  absl::Status StopDirect();

  const std::string path_;
  int fd_;
  bool direct_;
  std::unique_ptr<char, FreeDeleter> buffer_;  // kDirectBufferBytes, aligned; null unless direct at Create
  size_t buffered_ = 0;
};

}  // namespace dfv

#endif  // DFV_COMMON_SEQUENTIAL_FILE_H_
