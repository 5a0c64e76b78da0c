#include "common/sequential_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv {

absl::StatusOr<std::unique_ptr<SequentialFileWriter>> SequentialFileWriter::Create(const std::string& path,
                                                                                  bool direct) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", path, errno);
  std::unique_ptr<char, FreeDeleter> buffer;
  if (direct) buffer.reset(static_cast<char*>(std::aligned_alloc(kDirectAlignment, kDirectBufferBytes)));
  // Turned on after the file exists: a file system that refuses O_DIRECT
  // says so here (EINVAL), and the file is written through the page cache.
  const int flags = ::fcntl(fd, F_GETFL);
  if (buffer == nullptr || flags < 0 || ::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) buffer.reset();
  return std::unique_ptr<SequentialFileWriter>(new SequentialFileWriter(path, fd, std::move(buffer)));
}

SequentialFileWriter::SequentialFileWriter(std::string path, int fd, std::unique_ptr<char, FreeDeleter> buffer)
    : path_(std::move(path)), fd_(fd), direct_(buffer != nullptr), buffer_(std::move(buffer)) {}

SequentialFileWriter::~SequentialFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SequentialFileWriter::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("write ", path_, ": already finished"));
  while (direct_ && !data.empty()) {
    const size_t n = std::min(data.size(), kDirectBufferBytes - buffered_);
    std::memcpy(buffer_.get() + buffered_, data.data(), n);
    buffered_ += n;
    data.remove_prefix(n);
    if (buffered_ == kDirectBufferBytes) {
      // A full buffer is aligned in address, length and file offset.
      const std::string_view full(buffer_.get(), buffered_);
      buffered_ = 0;
      DFV_RETURN_IF_ERROR(WriteAll(full));
    }
  }
  if (data.empty()) return absl::OkStatus();
  // Not direct, or no longer (a fallback): what was gathered goes first.
  if (buffered_ > 0) {
    const std::string_view gathered(buffer_.get(), buffered_);
    buffered_ = 0;
    DFV_RETURN_IF_ERROR(WriteAll(gathered));
  }
  return WriteAll(data);
}

absl::Status SequentialFileWriter::Finish() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("finish ", path_, ": already finished"));
  absl::Status status;
  if (buffered_ > 0) {
    // The aligned part directly, then the tail through the page cache.
    const size_t aligned = buffered_ / kDirectAlignment * kDirectAlignment;
    status = WriteAll(std::string_view(buffer_.get(), aligned));
    if (status.ok() && direct_) status = StopDirect();
    if (status.ok()) status = WriteAll(std::string_view(buffer_.get() + aligned, buffered_ - aligned));
    buffered_ = 0;
  }
  if (status.ok() && ::fsync(fd_) != 0) status = ErrnoStatus("fsync", path_, errno);
  if (::close(fd_) != 0 && status.ok()) status = ErrnoStatus("close", path_, errno);
  fd_ = -1;
  return status;
}

absl::Status SequentialFileWriter::WriteAll(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct_) {
      // The device wants a larger alignment than kDirectAlignment, or the
      // file system takes O_DIRECT at open but not at write: the same bytes
      // go through the page cache.
      DFV_RETURN_IF_ERROR(StopDirect());
      continue;
    }
    if (n < 0) return ErrnoStatus("write", path_, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SequentialFileWriter::StopDirect() {
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
    return ErrnoStatus("fcntl(F_SETFL, no O_DIRECT)", path_, errno);
  }
  direct_ = false;
  return absl::OkStatus();
}

}  // namespace dfv
