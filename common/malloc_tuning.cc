#include "common/malloc_tuning.h"

#include <malloc.h>

#include <limits>

#include "absl/strings/str_cat.h"

namespace dfv {

absl::Status KeepFreedMemoryInHeap(size_t mmap_threshold, size_t trim_threshold) {
  const size_t largest = static_cast<size_t>(std::numeric_limits<int>::max());
  if (mmap_threshold > largest || trim_threshold > largest) {
    return absl::InvalidArgumentError(absl::StrCat("malloc thresholds must fit mallopt's int: mmap ",
                                                   mmap_threshold, ", trim ", trim_threshold, " bytes"));
  }
  if (mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("glibc refused M_MMAP_THRESHOLD ", mmap_threshold, " bytes"));
  }
  if (mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("glibc refused M_TRIM_THRESHOLD ", trim_threshold, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status KeepFreedMemoryAsTheTrainer() {
  return KeepFreedMemoryInHeap(size_t{256} << 20, size_t{1} << 30);
}

}  // namespace dfv
