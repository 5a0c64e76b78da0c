// Checkpoints: every module and optimiser of a model, the step, the epoch,
// the torch RNG state and the job's canonical YAML, in one file.
//
// File layout: "DFVCKPT1", a little-endian uint32 CRC-32 of the payload, a
// little-endian uint64 payload length, then the payload (a LibTorch archive).
// Files are written atomically (temp, fsync, rename), so a file under its
// final name is complete; the checksum catches later corruption.
#ifndef DFV_WORKER_TRAIN_CHECKPOINT_H_
#define DFV_WORKER_TRAIN_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "worker/models/model.h"

namespace dfv::train {

struct TrainState {
  int64_t step = 0;   // steps completed
  int64_t epoch = 0;  // epoch the next step belongs to
};

// Serialises `model` and `state` (plus the global torch RNG state) and writes
// them to `path` atomically. Errors from LibTorch or the file system come back
// as a Status.
absl::Status SaveCheckpoint(const std::string& path, models::Model& model, const TrainState& state,
                            const std::string& job_yaml);

struct LoadedCheckpoint {
  TrainState state;
  std::string job_yaml;
};

// Verifies and loads `path` into `model` (which must have been built from the
// same job) and restores the torch RNG state. DATA_LOSS for a truncated or
// corrupt file, INVALID_ARGUMENT for a file that is not a dfv checkpoint or
// does not match the model; `model` is untouched unless the checksum verified.
absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path, models::Model& model);

// OK when a checkpoint written by the job `checkpoint_job_yaml` (what
// LoadCheckpoint returns) can resume `spec`: the same model, image size and
// channel count (channels only when both name one). INVALID_ARGUMENT naming
// the checkpoint `path` and what differs otherwise; OK when the checkpoint
// carries no job (written by a tool).
absl::Status CheckCheckpointFitsJob(const std::string& checkpoint_job_yaml, const jobspec::JobSpec& spec,
                                    const std::string& path);

// Bytes before the payload: magic, CRC-32 and length.
inline constexpr size_t kCheckpointHeaderBytes = 8 + 4 + 8;

// The file SaveCheckpoint writes for `payload` (a LibTorch archive): the
// header above, then the payload. For tools and tests that make checkpoint
// files; LoadCheckpoint accepts its result when the payload is a matching
// archive.
std::string FrameCheckpoint(std::string_view payload);

// "step-00001234.ckpt".
std::string CheckpointFileName(int64_t step);

// Checkpoints in `dir`, oldest first (by step in the name).
std::vector<std::string> ListCheckpoints(const std::string& dir);

// Deletes all but the newest `keep_last` checkpoints in `dir`.
absl::Status PruneCheckpoints(const std::string& dir, int64_t keep_last);

// The newest checkpoint in `dir` whose header and checksum verify, or
// NOT_FOUND. Corrupt newer files are skipped (and reported in the log).
absl::StatusOr<std::string> NewestValidCheckpoint(const std::string& dir);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_CHECKPOINT_H_
