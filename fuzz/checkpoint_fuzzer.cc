// Fuzz target: the checkpoint reader (worker/train/checkpoint.h
// LoadCheckpoint), which a trainer runs on the checkpoint it resumes from,
// on whole files: dfv's framing (magic, CRC-32, length) and, for files that
// verify, the load into the model. The checks are CheckCheckpointLoad's
// (checkpoint_harness.h).
//
// Input: the bytes of a checkpoint file. Mutations almost never get past the
// CRC-32 (that is its job); checkpoint_archive_fuzzer.cc fuzzes what lies
// behind it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/checkpoint_harness.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  dfv::fuzz::InitCheckpointHarness();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dfv::fuzz::CheckCheckpointLoad(dfv::fuzz::AsText(data, size));
  return 0;
}
