// glibc malloc settings for processes whose large buffers come and go in a
// steady rhythm: a trainer's activations and gradients every step, the
// coordinator's upload messages. With glibc's defaults a block above the
// (dynamic) mmap threshold is mmapped fresh and unmapped on free, and freed
// memory at the top of the heap is trimmed back to the kernel, so the same
// pages fault in and are zeroed again at every step: a sixth of a cycle_vae
// step's time on the 2-core development machine (perf), a third to half of
// its wall time (bench/step_vs_python.sh, "Python kept" shows the same on
// the Python side). Keeping such blocks in the heap leaves the peak resident
// memory as it was (the step needs it anyway) and stops the refaulting.
#ifndef DFV_COMMON_MALLOC_TUNING_H_
#define DFV_COMMON_MALLOC_TUNING_H_

#include <cstddef>

#include "absl/status/status.h"

namespace dfv {

// Serves blocks up to `mmap_threshold` bytes from the heap (larger ones are
// still mmapped) and returns free memory at the heap's top to the kernel
// only beyond `trim_threshold` bytes. Call early in main, before other
// threads start. INVALID_ARGUMENT for a value mallopt's int cannot hold, or
// naming the setting glibc refused.
absl::Status KeepFreedMemoryInHeap(size_t mmap_threshold, size_t trim_threshold);

// dfv-trainer's settings: KeepFreedMemoryInHeap with blocks up to 256 MiB (a
// step's largest activations stay far below) and 1 GiB of trim threshold.
// The benchmarks that time the trainer's kernels call it too;
// bench/step_vs_python.sh's kept_malloc gives the Python reference the same.
absl::Status KeepFreedMemoryAsTheTrainer();

}  // namespace dfv

#endif  // DFV_COMMON_MALLOC_TUNING_H_
