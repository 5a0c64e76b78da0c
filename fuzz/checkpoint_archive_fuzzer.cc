// Fuzz target: what lies behind a checkpoint's checksum. The input is a
// payload (a LibTorch archive, a zip); it is framed with a valid header
// (train::FrameCheckpoint) and loaded with LoadCheckpoint, so every mutation reaches
// LibTorch's archive reader and dfv's use of what it returns. The checks are
// CheckCheckpointLoad's (checkpoint_harness.h).
//
// Such a file is a crafted one (accidental corruption fails the CRC-32 and
// is what checkpoint_fuzzer.cc covers). LibTorch 1.13 is known to crash on
// some (fuzz/known/README.md); a crash here kills the trainer process only.
#include <cstddef>
#include <cstdint>

#include "fuzz/checkpoint_harness.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  dfv::fuzz::InitCheckpointHarness();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dfv::fuzz::CheckCheckpointPayloadLoad(dfv::fuzz::AsText(data, size));
  return 0;
}
