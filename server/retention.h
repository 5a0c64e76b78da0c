// What the coordinator's artifact retention removes, decided from the
// artifact index alone (pure functions, no I/O), and how much it freed.
//
// Rules (the Coordinator applies them):
// - checkpoint.keep_last: when a job's checkpoint upload commits, its
//   checkpoints beyond the newest keep_last are removed, in the same
//   transaction; `dfvctl gc` applies the rule to every job again.
// - A checkpoint a resume needs is never removed: the one the live attempt
//   resumed from, and the one chosen for a queued job's next attempt.
// - `dfvctl delete JOB` removes every artifact of a finished job.
// - `dfvctl gc` also removes orphans: files under the artifact folder that
//   the index does not list (left by a crash between a file's rename and its
//   index row's commit).
//
// Thread-safety: the functions are pure; FreedSpace is a plain value.
#ifndef DFV_SERVER_RETENTION_H_
#define DFV_SERVER_RETENTION_H_

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "proto/dfv.pb.h"

namespace dfv::server {

// Why artifacts were removed: the `reason` label of
// dfv_artifact_deleted_bytes_total and dfv_artifacts_deleted_total, and the
// rows of `dfvctl gc`.
enum class DeleteReason {
  kKeepLast,  // beyond the job's checkpoint.keep_last
  kDeleted,   // dfvctl delete
  kOrphan,    // a file the index does not list
};
inline constexpr int kDeleteReasonCount = 3;
inline constexpr DeleteReason kDeleteReasons[kDeleteReasonCount] = {
    DeleteReason::kKeepLast, DeleteReason::kDeleted, DeleteReason::kOrphan};
// "keep_last", "deleted", "orphan".
const char* DeleteReasonLabel(DeleteReason reason);

// Files and bytes removed, by reason.
struct FreedSpace {
  std::array<int64_t, kDeleteReasonCount> files{};
  std::array<int64_t, kDeleteReasonCount> bytes{};

  void Add(DeleteReason reason, int64_t file_count, int64_t byte_count) {
    files[static_cast<int>(reason)] += file_count;
    bytes[static_cast<int>(reason)] += byte_count;
  }
  void Add(const FreedSpace& other);
  int64_t total_files() const;
  int64_t total_bytes() const;
};

// The CHECKPOINT artifacts among `artifacts`, newest first: the highest step
// first, then the newest created_ms, then the name (so the order is total).
// This is the order a resume tries them in.
std::vector<dfv::v1::ArtifactInfo> CheckpointsNewestFirst(
    const std::vector<dfv::v1::ArtifactInfo>& artifacts);

// The checkpoints keep_last removes: those after the first `keep_last` of
// CheckpointsNewestFirst, except any named in `protect`. keep_last < 1
// counts as 1 (the newest checkpoint is always kept).
std::vector<dfv::v1::ArtifactInfo> CheckpointsBeyondKeepLast(
    const std::vector<dfv::v1::ArtifactInfo>& artifacts, int64_t keep_last,
    const std::set<std::string>& protect);

}  // namespace dfv::server

#endif  // DFV_SERVER_RETENTION_H_
