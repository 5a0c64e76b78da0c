#include "server/retention.h"

#include <algorithm>
#include <numeric>

namespace dfv::server {

const char* DeleteReasonLabel(DeleteReason reason) {
  switch (reason) {
    case DeleteReason::kKeepLast:
      return "keep_last";
    case DeleteReason::kDeleted:
      return "deleted";
    case DeleteReason::kOrphan:
      return "orphan";
  }
  return "unknown";
}

void FreedSpace::Add(const FreedSpace& other) {
  for (int i = 0; i < kDeleteReasonCount; ++i) {
    files[i] += other.files[i];
    bytes[i] += other.bytes[i];
  }
}

int64_t FreedSpace::total_files() const { return std::accumulate(files.begin(), files.end(), int64_t{0}); }

int64_t FreedSpace::total_bytes() const { return std::accumulate(bytes.begin(), bytes.end(), int64_t{0}); }

std::vector<dfv::v1::ArtifactInfo> CheckpointsNewestFirst(
    const std::vector<dfv::v1::ArtifactInfo>& artifacts) {
  std::vector<dfv::v1::ArtifactInfo> checkpoints;
  for (const dfv::v1::ArtifactInfo& info : artifacts) {
    if (info.kind() == dfv::v1::CHECKPOINT) checkpoints.push_back(info);
  }
  std::sort(checkpoints.begin(), checkpoints.end(),
            [](const dfv::v1::ArtifactInfo& a, const dfv::v1::ArtifactInfo& b) {
              if (a.step() != b.step()) return a.step() > b.step();
              if (a.created_ms() != b.created_ms()) return a.created_ms() > b.created_ms();
              return a.name() > b.name();
            });
  return checkpoints;
}

std::vector<dfv::v1::ArtifactInfo> CheckpointsBeyondKeepLast(
    const std::vector<dfv::v1::ArtifactInfo>& artifacts, int64_t keep_last,
    const std::set<std::string>& protect) {
  const size_t keep = static_cast<size_t>(std::max<int64_t>(keep_last, 1));
  std::vector<dfv::v1::ArtifactInfo> checkpoints = CheckpointsNewestFirst(artifacts);
  std::vector<dfv::v1::ArtifactInfo> removed;
  for (size_t i = keep; i < checkpoints.size(); ++i) {
    if (protect.count(checkpoints[i].name()) == 0) removed.push_back(std::move(checkpoints[i]));
  }
  return removed;
}

}  // namespace dfv::server
