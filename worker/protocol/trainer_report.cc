#include "worker/protocol/trainer_report.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/rpc/rpc.h"

namespace dfv::protocol {
namespace {

constexpr size_t kQuotedBytes = 200;

absl::Status Invalid(absl::string_view line, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("trainer report: ", why, ": ", line.substr(0, kQuotedBytes)));
}

}  // namespace

std::string EncodeReport(const v1::TrainerReport& report) {
  std::string line;
  // Cannot fail for a message of this schema (no Any, no maps of messages);
  // the printer escapes newlines, so the result is one line.
  (void)google::protobuf::util::MessageToJsonString(report, &line);
  return line;
}

absl::StatusOr<v1::TrainerReport> DecodeReport(absl::string_view line) {
  v1::TrainerReport report;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &report);
  if (!parsed.ok()) return Invalid(line, std::string(parsed.message()));
  switch (report.report_case()) {
    case v1::TrainerReport::REPORT_NOT_SET:
      return Invalid(line, "no report set");
    case v1::TrainerReport::kArtifact: {
      const v1::TrainerArtifact& artifact = report.artifact();
      if (artifact.kind() == v1::ARTIFACT_KIND_UNSPECIFIED) return Invalid(line, "artifact without a kind");
      absl::Status path = ValidateRelativePath(artifact.path(), "artifact path");
      if (!path.ok()) return Invalid(line, path.message());
      break;
    }
    case v1::TrainerReport::kRendezvous: {
      const std::string& address = report.rendezvous().address();
      absl::StatusOr<rpc::HostPort> host_port = rpc::ParseHostPort(address, "rendezvous");
      if (!host_port.ok() || host_port->port == 0) {
        return Invalid(line, absl::StrCat("rendezvous address '", address,
                                          "' is not HOST:PORT with the bound port (1..65535)"));
      }
      break;
    }
    default:
      break;
  }
  return report;
}

std::string EncodePrestartedAssignment(const v1::PrestartedAssignment& assignment) {
  std::string line;
  (void)google::protobuf::util::MessageToJsonString(assignment, &line);  // as in EncodeReport
  return line;
}

absl::StatusOr<v1::PrestartedAssignment> DecodePrestartedAssignment(absl::string_view line) {
  v1::PrestartedAssignment assignment;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &assignment);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("prestarted assignment: ", std::string(parsed.message()), ": ",
                                                   line.substr(0, kQuotedBytes)));
  }
  for (const std::string& entry : assignment.env()) {
    if (entry.find('=') == std::string::npos || entry.front() == '=') {
      return absl::InvalidArgumentError(
          absl::StrCat("prestarted assignment: env entry '", entry.substr(0, 64), "' is not NAME=VALUE"));
    }
  }
  return assignment;
}

v1::TrainerReport ErrorReport(const absl::Status& status) {
  v1::TrainerReport report;
  report.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  report.mutable_error()->set_message(std::string(status.message()));
  return report;
}

absl::Status StatusFromError(const v1::TrainerError& error) {
  // absl's codes are gRPC's: 1 (CANCELLED) .. 16 (UNAUTHENTICATED).
  const bool known = error.code() >= 1 && error.code() <= 16;
  return absl::Status(known ? static_cast<absl::StatusCode>(error.code()) : absl::StatusCode::kUnknown,
                      error.message());
}

}  // namespace dfv::protocol
