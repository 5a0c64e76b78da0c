// The framing of the trainer's reports (proto/trainer.proto): one
// v1::TrainerReport per line, in protobuf's JSON mapping, so a person can read
// the stream and a stray line from a library is recognised as not a report.
//
// Adding a report type touches the proto, the one place that emits it and
// the daemon's one place that consumes it (AssignmentRunner); this file
// changes only when the new type has a rule a decoder must check.
#ifndef DFV_WORKER_PROTOCOL_TRAINER_REPORT_H_
#define DFV_WORKER_PROTOCOL_TRAINER_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/trainer.pb.h"

namespace dfv::protocol {

// The value of every MetricsRow that holds the global samples per second of
// the log window (the trainer adds it after the model's metrics; the worker
// daemon's dfv_job_samples_per_second reads it).
inline constexpr char kSamplesPerSecondValue[] = "samples_per_second";

// The environment variable through which the daemon hands the trainer its
// attempt's rendezvous secret (not a flag: `ps` shows every process's
// arguments to every user, the environment only to the process's owner).
inline constexpr char kRendezvousSecretEnv[] = "DFV_RENDEZVOUS_SECRET";

// One line, without '\n'. Strings that are not valid UTF-8 lose their
// invalid bytes (protobuf's JSON printer drops them).
std::string EncodeReport(const v1::TrainerReport& report);

// INVALID_ARGUMENT (naming what is wrong and quoting the line's start) for a
// line that is not a TrainerReport in JSON, has no report set, an artifact
// without a kind or with a path that is not relative and safe (no "..", not
// absolute; common/file_util.h ValidateRelativePath), or a rendezvous address
// that is not HOST:PORT with the bound port (1..65535).
absl::StatusOr<v1::TrainerReport> DecodeReport(absl::string_view line);

// The line a worker daemon hands a prestarted trainer (without '\n'), and
// back. INVALID_ARGUMENT for a line that is not a PrestartedAssignment in
// JSON or has an env entry without '='.
std::string EncodePrestartedAssignment(const v1::PrestartedAssignment& assignment);
absl::StatusOr<v1::PrestartedAssignment> DecodePrestartedAssignment(absl::string_view line);

// The error report of a failed run, and back. A code outside absl's range
// decodes as UNKNOWN; an OK code as UNKNOWN too (a failure is never OK).
v1::TrainerReport ErrorReport(const absl::Status& status);
absl::Status StatusFromError(const v1::TrainerError& error);

}  // namespace dfv::protocol

#endif  // DFV_WORKER_PROTOCOL_TRAINER_REPORT_H_
