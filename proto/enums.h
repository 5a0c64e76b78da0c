// Facts about the wire enums that every program needs the same way: the
// display names dfvctl and the trainer's console show, and which job states
// are final.
#ifndef DFV_PROTO_ENUMS_H_
#define DFV_PROTO_ENUMS_H_

#include <string>

#include "proto/dfv.pb.h"

namespace dfv::v1 {

// "grid", "checkpoint", "report", "metrics", "job", "log"; "artifact" for
// ARTIFACT_KIND_UNSPECIFIED or a value this build does not know.
std::string ArtifactKindName(ArtifactKind kind);

// The name of the REPORT artifact holding a run's evaluation report (JSON),
// which the trainer writes and `dfvctl report` reads.
inline constexpr char kReportArtifactName[] = "report.json";

// SUCCEEDED, FAILED and CANCELLED: a job in one of them never changes again
// and its last event is the StateChange into it.
bool IsFinalState(JobState state);

}  // namespace dfv::v1

#endif  // DFV_PROTO_ENUMS_H_
