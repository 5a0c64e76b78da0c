#include "proto/enums.h"

namespace dfv::v1 {

std::string ArtifactKindName(ArtifactKind kind) {
  switch (kind) {
    case GRID: return "grid";
    case CHECKPOINT: return "checkpoint";
    case REPORT: return "report";
    case METRICS: return "metrics";
    case JOB_SPEC: return "job";
    case LOG: return "log";
    default: return "artifact";
  }
}

bool IsFinalState(JobState state) { return state == SUCCEEDED || state == FAILED || state == CANCELLED; }

}  // namespace dfv::v1
