#include "worker/daemon/trainer_protocol.h"

#include "common/rpc/rpc.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace dfv::daemon {
namespace {

using nlohmann::json;

std::string Dump(const json& j) {
  // Replace invalid UTF-8 rather than throw: messages may quote file bytes.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusCode CodeFromName(const std::string& name) {
  for (int c = 0; c <= 16; ++c) {
    auto code = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

std::string EncodeStarted(int64_t step, int64_t total_steps) {
  return Dump({{"type", "started"}, {"step", step}, {"total_steps", total_steps}});
}

std::string EncodeMetrics(int64_t step, int64_t epoch,
                          const std::vector<std::pair<std::string, double>>& values) {
  json list = json::array();
  for (const auto& [name, value] : values) list.push_back(json::array({name, value}));
  return Dump({{"type", "metrics"}, {"step", step}, {"epoch", epoch}, {"values", list}});
}

std::string EncodeProgress(const v1::Progress& p) {
  return Dump({{"type", "progress"},
               {"step", p.step()},
               {"total_steps", p.total_steps()},
               {"epoch", p.epoch()},
               {"samples_per_second", p.samples_per_second()},
               {"eta_seconds", p.eta_seconds()}});
}

std::string EncodeArtifact(const std::string& kind, const std::string& path, int64_t step) {
  return Dump({{"type", "artifact"}, {"kind", kind}, {"path", path}, {"step", step}});
}

std::string EncodeMessage(const std::string& text) { return Dump({{"type", "message"}, {"text", text}}); }

std::string EncodeFinished(int64_t steps) { return Dump({{"type", "finished"}, {"steps", steps}}); }

std::string EncodeRendezvous(const std::string& address) {
  return Dump({{"type", "rendezvous"}, {"address", address}});
}

std::string EncodeError(const absl::Status& status) {
  return Dump({{"type", "error"},
               {"code", absl::StatusCodeToString(status.code())},
               {"message", std::string(status.message())}});
}

v1::ArtifactKind ArtifactKindFromName(const std::string& name) {
  if (name == "grid") return v1::GRID;
  if (name == "checkpoint") return v1::CHECKPOINT;
  if (name == "report") return v1::REPORT;
  if (name == "metrics") return v1::METRICS;
  if (name == "job") return v1::JOB_SPEC;
  if (name == "log") return v1::LOG;
  return v1::ARTIFACT_KIND_UNSPECIFIED;
}

bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path.size() > 512 || path.front() == '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (!IsSafePathComponent(std::string(part))) return false;
  }
  return true;
}

absl::StatusOr<TrainerLine> DecodeTrainerLine(const std::string& line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("trainer line is not a JSON object: ", line.substr(0, 200)));
  }
  // nlohmann throws on a type mismatch; turn that into a Status here.
  try {
    const std::string type = j.at("type").get<std::string>();
    TrainerLine out;
    if (type == "started") {
      out.type = TrainerLine::Type::kStarted;
      out.step = j.at("step").get<int64_t>();
      // "This rank is training": the coordinator turns the job RUNNING once
      // every rank has said so.
      out.event.mutable_state()->set_state(v1::RUNNING);
      out.event.mutable_state()->set_reason(
          absl::StrCat("training from step ", out.step, " of ", j.at("total_steps").get<int64_t>()));
    } else if (type == "metrics") {
      out.type = TrainerLine::Type::kMetrics;
      auto* row = out.event.mutable_metrics();
      row->set_step(j.at("step").get<int64_t>());
      row->set_epoch(j.at("epoch").get<int64_t>());
      for (const json& pair : j.at("values")) {
        auto* value = row->add_values();
        value->set_name(pair.at(0).get<std::string>());
        value->set_value(pair.at(1).get<double>());
      }
    } else if (type == "progress") {
      out.type = TrainerLine::Type::kProgress;
      auto* p = out.event.mutable_progress();
      p->set_step(j.at("step").get<int64_t>());
      p->set_total_steps(j.at("total_steps").get<int64_t>());
      p->set_epoch(j.at("epoch").get<int64_t>());
      p->set_samples_per_second(j.at("samples_per_second").get<double>());
      p->set_eta_seconds(j.at("eta_seconds").get<double>());
    } else if (type == "artifact") {
      out.type = TrainerLine::Type::kArtifact;
      const std::string kind = j.at("kind").get<std::string>();
      out.artifact_kind = ArtifactKindFromName(kind);
      if (out.artifact_kind == v1::ARTIFACT_KIND_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat("trainer line: unknown artifact kind '", kind, "'"));
      }
      out.artifact_path = j.at("path").get<std::string>();
      if (!IsSafeRelativePath(out.artifact_path)) {
        return absl::InvalidArgumentError(
            absl::StrCat("trainer line: unsafe artifact path '", out.artifact_path, "'"));
      }
      out.step = j.at("step").get<int64_t>();
    } else if (type == "message") {
      out.type = TrainerLine::Type::kMessage;
      out.event.mutable_message()->set_text(j.at("text").get<std::string>());
    } else if (type == "rendezvous") {
      out.type = TrainerLine::Type::kRendezvous;
      out.rendezvous_address = j.at("address").get<std::string>();
      absl::StatusOr<rpc::HostPort> parsed = rpc::ParseHostPort(out.rendezvous_address, "rendezvous");
      if (!parsed.ok() || parsed->port == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("trainer line: rendezvous address '", out.rendezvous_address,
                         "' is not HOST:PORT with the bound port (1..65535)"));
      }
    } else if (type == "finished") {
      out.type = TrainerLine::Type::kFinished;
      out.step = j.at("steps").get<int64_t>();
    } else if (type == "error") {
      out.type = TrainerLine::Type::kError;
      absl::StatusCode code = CodeFromName(j.at("code").get<std::string>());
      if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
      out.error = absl::Status(code, j.at("message").get<std::string>());
    } else {
      return absl::InvalidArgumentError(absl::StrCat("trainer line: unknown type '", type, "'"));
    }
    return out;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("trainer line: ", e.what(), ": ", line.substr(0, 200)));
  }
}

}  // namespace dfv::daemon
