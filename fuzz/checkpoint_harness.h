// What the two checkpoint fuzz targets (checkpoint_fuzzer.cc: whole files;
// checkpoint_archive_fuzzer.cc: payloads) and the tool that writes their
// seeds (checkpoint_seed_main.cc) share: the model checkpoints are loaded
// into, and the checks on LoadCheckpoint. Torch-free header; the library
// (checkpoint_harness.cc) links LibTorch.
#ifndef DFV_FUZZ_CHECKPOINT_HARNESS_H_
#define DFV_FUZZ_CHECKPOINT_HARNESS_H_

#include <memory>
#include <string>
#include <string_view>

namespace dfv::models {
class Model;
}  // namespace dfv::models

namespace dfv::fuzz {

// One intra-op thread (libFuzzer calls a target from one thread). Call once
// before the first load.
void InitCheckpointHarness();

// A small DCGAN (a few thousand parameters, two Adam optimisers), built the
// same way on every call (fixed seed). Aborts if it cannot be built.
std::unique_ptr<models::Model> BuildCheckpointFuzzModel();

// The canonical YAML of the job the model is built from.
const std::string& CheckpointFuzzJobYaml();

// Writes `file` to a scratch file and loads it with LoadCheckpoint into a
// freshly built model, then aborts (DFV_FUZZ_CHECK) if the outcome breaks
// checkpoint.h's contract: a refusal must be DATA_LOSS or INVALID_ARGUMENT;
// a file whose header or checksum does not verify must be refused and leave
// the model untouched; a load that succeeds must leave every parameter and
// buffer with the shape and type the model was built with (a checkpoint of
// another shape must be refused, not installed). Returns whether it loaded.
bool CheckCheckpointLoad(std::string_view file);

// CheckCheckpointLoad of the file SaveCheckpoint would write for `payload`
// (train::FrameCheckpoint): every payload gets past the checksum.
bool CheckCheckpointPayloadLoad(std::string_view payload);

}  // namespace dfv::fuzz

#endif  // DFV_FUZZ_CHECKPOINT_HARNESS_H_
