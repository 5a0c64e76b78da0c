// dfv-checkpoint-fuzz-seed: the valid seeds of the checkpoint fuzz targets.
//
//   dfv-checkpoint-fuzz-seed write fuzz/corpus
//   dfv-checkpoint-fuzz-seed check fuzz/corpus
//
// `write` saves a checkpoint of the targets' model (checkpoint_harness.h)
// with the real writer (SaveCheckpoint), after one training step so the Adam
// state is there too, as checkpoint/valid.ckpt, and its payload (the bytes
// after the header) as checkpoint_archive/valid.pt. `check` exits 1 unless
// both load: a CTest test runs it on the committed seeds, so a change to the
// model or the format that makes them stale (and the fuzzing shallow) fails
// the suite until they are written again.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_util.h"
#include "fuzz/checkpoint_harness.h"
#include "worker/models/model.h"
#include "worker/step/step_context.h"
#include "worker/train/checkpoint.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "dfv-checkpoint-fuzz-seed: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string verb = argc == 3 ? argv[1] : "";
  if (verb != "write" && verb != "check") {
    std::fprintf(stderr, "usage: %s write|check CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string file = std::string(argv[2]) + "/checkpoint/valid.ckpt";
  const std::string payload = std::string(argv[2]) + "/checkpoint_archive/valid.pt";
  dfv::fuzz::InitCheckpointHarness();
  std::unique_ptr<dfv::models::Model> model = dfv::fuzz::BuildCheckpointFuzzModel();
  if (verb == "check") {
    const absl::StatusOr<dfv::train::LoadedCheckpoint> loaded = dfv::train::LoadCheckpoint(file, *model);
    if (!loaded.ok()) return Fail(file + " does not load into the fuzz model: " + loaded.status().ToString());
    const absl::StatusOr<std::string> bytes = dfv::ReadFileToString(file);
    const absl::StatusOr<std::string> archive = dfv::ReadFileToString(payload);
    if (!bytes.ok() || !archive.ok() || dfv::train::FrameCheckpoint(*archive) != *bytes) {
      return Fail(payload + " is not the payload of " + file);
    }
    std::printf("%s and %s load (step %ld)\n", file.c_str(), payload.c_str(),
                static_cast<long>(loaded->state.step));
    return 0;
  }
  dfv::data::Batch batch;
  batch.images = torch::rand({8, 1, 16, 16});
  batch.labels = torch::arange(8) % 4;
  dfv::step::StepContext context(nullptr);
  context.BeginStep(1, 0);
  model->TrainStep(batch, context);
  absl::Status status =
      dfv::train::SaveCheckpoint(file, *model, {1, 0}, dfv::fuzz::CheckpointFuzzJobYaml());
  if (!status.ok()) return Fail(status.ToString());
  const absl::StatusOr<std::string> bytes = dfv::ReadFileToString(file);
  if (!bytes.ok()) return Fail(bytes.status().ToString());
  status = dfv::WriteFileAtomically(payload, std::string_view(*bytes).substr(dfv::train::kCheckpointHeaderBytes));
  if (!status.ok()) return Fail(status.ToString());
  std::printf("wrote %s and %s\n", file.c_str(), payload.c_str());
  return 0;
}
