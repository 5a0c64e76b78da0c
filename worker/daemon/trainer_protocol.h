// The line protocol between a trainer subprocess and its worker daemon. The
// trainer (`dfv-worker trainer`) writes one JSON object per line on stdout;
// the daemon decodes each line into what it forwards to the coordinator.
//
//   {"type":"started","step":0,"total_steps":5622}
//   {"type":"metrics","step":100,"epoch":0,"values":[["loss",0.12],...]}
//   {"type":"progress","step":140,"total_steps":5622,"epoch":0,
//    "samples_per_second":1200.5,"eta_seconds":290.1}
//   {"type":"artifact","kind":"grid","path":"grids/swap-step00000500.png","step":500}
//   {"type":"message","text":"resumed from ... at step 500"}
//   {"type":"rendezvous","address":"127.0.0.1:41234"}   (rank 0 of a multi-rank job,
//    once its rendezvous listens; the daemon publishes it to the coordinator)
//   {"type":"finished","steps":5622}
//   {"type":"error","code":"NOT_FOUND","message":"dataset.path: ..."}
//
// An error whose code is UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED (a peer
// rank died, a collective broke, the rendezvous timed out) makes the rank's
// FAILED outcome retryable: the coordinator requeues the job under its
// restart policy instead of failing it.
//
// No LibTorch here: the daemon links this without the training code.
#ifndef DFV_WORKER_DAEMON_TRAINER_PROTOCOL_H_
#define DFV_WORKER_DAEMON_TRAINER_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/dfv.pb.h"

namespace dfv::daemon {

// Encoders (used by the trainer process). Each returns one line without '\n'.
std::string EncodeStarted(int64_t step, int64_t total_steps);
std::string EncodeMetrics(int64_t step, int64_t epoch,
                          const std::vector<std::pair<std::string, double>>& values);
std::string EncodeProgress(const v1::Progress& progress);
// `kind` is one of "grid", "checkpoint", "report", "metrics", "job", "log".
std::string EncodeArtifact(const std::string& kind, const std::string& path, int64_t step);
std::string EncodeMessage(const std::string& text);
std::string EncodeFinished(int64_t steps);
// Rank 0 of a multi-rank job: where the other ranks meet it.
std::string EncodeRendezvous(const std::string& address);
std::string EncodeError(const absl::Status& status);

// One decoded line.
struct TrainerLine {
  enum class Type { kStarted, kMetrics, kProgress, kArtifact, kMessage, kFinished, kError, kRendezvous };
  Type type = Type::kMessage;
  // For kStarted, kMetrics, kProgress and kMessage: the event to forward
  // (payload set; seq and time are the coordinator's).
  v1::JobEvent event;
  // For kArtifact: what the trainer wrote, relative to its run folder.
  v1::ArtifactKind artifact_kind = v1::ARTIFACT_KIND_UNSPECIFIED;
  std::string artifact_path;
  int64_t step = 0;  // kArtifact, kStarted, kFinished
  // For kError: the trainer's failure.
  absl::Status error;
  // For kRendezvous: HOST:PORT, port > 0 (checked when decoding).
  std::string rendezvous_address;
};

// INVALID_ARGUMENT for a line that is not one of the objects above (bad
// JSON, unknown type, missing or mistyped field, unsafe artifact path).
absl::StatusOr<TrainerLine> DecodeTrainerLine(const std::string& line);

// "grid" -> GRID, ...; ARTIFACT_KIND_UNSPECIFIED for an unknown name.
v1::ArtifactKind ArtifactKindFromName(const std::string& name);

// True for a relative path whose every '/'-separated component is safe
// (common/file_util.h IsSafePathComponent): no "..", no absolute path.
bool IsSafeRelativePath(const std::string& path);

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_TRAINER_PROTOCOL_H_
