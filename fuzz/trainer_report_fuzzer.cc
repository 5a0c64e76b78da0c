// Fuzz target: the decoder of the trainer's line protocol
// (worker/protocol/trainer_report.h), which the worker daemon runs on every
// line a trainer prints.
//
// Input: one line (the bytes as they are; the daemon splits at '\n' first,
// but the decoder must cope with anything).
//
// Checks, beyond "no crash, no leak, no undefined behaviour": a refusal is
// INVALID_ARGUMENT; an accepted report encodes to one line that decodes again
// and re-encodes to the same line; an accepted artifact's path is safe; an
// accepted error report never turns into an OK status.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "fuzz/fuzz_util.h"
#include "worker/protocol/trainer_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dfv::protocol::DecodeReport;
  using dfv::protocol::EncodeReport;
  const absl::StatusOr<dfv::v1::TrainerReport> report = DecodeReport(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!report.ok()) {
    DFV_FUZZ_CHECK(report.status().code() == absl::StatusCode::kInvalidArgument, report.status().ToString());
    return 0;
  }
  const std::string line = EncodeReport(*report);
  DFV_FUZZ_CHECK(line.find('\n') == std::string::npos, "EncodeReport made more than one line: " + line);
  const absl::StatusOr<dfv::v1::TrainerReport> again = DecodeReport(line);
  DFV_FUZZ_CHECK(again.ok(), "an encoded report does not decode: " + again.status().ToString());
  DFV_FUZZ_CHECK(EncodeReport(*again) == line, "encode(decode(line)) changed the line: " + line);
  if (report->has_artifact()) {
    const absl::Status path = dfv::ValidateRelativePath(report->artifact().path(), "artifact path");
    DFV_FUZZ_CHECK(path.ok(), "accepted an artifact with an unsafe path: " + path.ToString());
  }
  if (report->has_error()) {
    DFV_FUZZ_CHECK(!dfv::protocol::StatusFromError(report->error()).ok(), "an error report decoded as OK");
  }
  return 0;
}
