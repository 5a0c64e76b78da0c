#include "client/format.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"

namespace dfv::client {
namespace {

double SecondsBetween(int64_t from_ms, int64_t to_ms) {
  return static_cast<double>(to_ms - from_ms) / 1000.0;
}

// "5m ago"; "-" when the time is unset.
std::string Age(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "-";
  return FormatDuration(std::max(0.0, SecondsBetween(then_ms, now_ms)));
}

std::string FormatTimestamp(int64_t ms, absl::TimeZone zone) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(ms), zone);
}

std::string PercentOf(int64_t step, int64_t total) {
  return absl::StrFormat("%.1f%%", 100.0 * static_cast<double>(step) / static_cast<double>(total));
}

}  // namespace

std::string JobStateName(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) return "UNKNOWN";
  return v1::JobState_Name(state);
}

std::string WorkerStateName(v1::WorkerState state) {
  switch (state) {
    case v1::WORKER_ALIVE:
      return "alive";
    case v1::WORKER_LOST:
      return "lost";
    default:
      return "unknown";
  }
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) widths[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < std::min(row.size(), widths.size()); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      line += cell;
      if (c + 1 < widths.size()) line += std::string(widths[c] - cell.size() + 2, ' ');
    }
    // An empty last cell would leave the padding of the one before it.
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  };
  append_row(header);
  for (const auto& row : rows) append_row(row);
  return out;
}

namespace {

std::string ReportCell(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer()) return absl::StrCat(value.get<int64_t>());
  if (value.is_number()) return FormatMetricValue(value.get<double>());
  if (value.is_array()) {
    std::vector<std::string> parts;
    for (const nlohmann::json& item : value) parts.push_back(ReportCell(item));
    return absl::StrJoin(parts, ",");
  }
  return value.is_null() ? "-" : value.dump();
}

// Appends the leaves under `value` as (path, cell), objects recursed into.
void FlattenReport(const nlohmann::json& value, const std::string& path,
                   std::vector<std::pair<std::string, std::string>>* out) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      FlattenReport(child, path.empty() ? key : absl::StrCat(path, ".", key), out);
    }
    return;
  }
  out->emplace_back(path, ReportCell(value));
}

}  // namespace

std::string FormatReportTable(const std::vector<std::pair<std::string, nlohmann::json>>& reports) {
  static const char* const kLeading[] = {"job", "model", "dataset", "steps", "wall_seconds", "evaluation_seconds"};
  std::vector<std::string> row_order;
  std::map<std::string, std::vector<std::string>> cells;  // path -> one cell per report
  auto add = [&](size_t column, const std::vector<std::pair<std::string, std::string>>& leaves) {
    for (const auto& [path, cell] : leaves) {
      auto [it, inserted] = cells.emplace(path, std::vector<std::string>(reports.size(), "-"));
      if (inserted) row_order.push_back(path);
      it->second[column] = cell;
    }
  };
  // Three passes so every report's leading rows come before any report's
  // evaluation rows, whatever order the keys have in each. Within the later
  // passes rows are sorted by path, so a part one report has as a text
  // ("not applicable") sits beside the values another report has under it.
  for (int pass = 0; pass < 3; ++pass) {
    const size_t pass_start = row_order.size();
    for (size_t c = 0; c < reports.size(); ++c) {
      const nlohmann::json& report = reports[c].second;
      if (!report.is_object()) continue;
      std::vector<std::pair<std::string, std::string>> leaves;
      for (const auto& [key, value] : report.items()) {
        const bool leading = std::find(std::begin(kLeading), std::end(kLeading), key) != std::end(kLeading);
        if (pass == 0 && leading) continue;  // in kLeading's order below
        if (pass == 1 && key == "evaluation") FlattenReport(value, "", &leaves);
        if (pass == 2 && !leading && key != "evaluation") FlattenReport(value, key, &leaves);
      }
      if (pass == 0) {
        for (const char* key : kLeading) {
          if (report.contains(key)) FlattenReport(report[key], key, &leaves);
        }
      }
      add(c, leaves);
    }
    if (pass > 0) std::sort(row_order.begin() + pass_start, row_order.end());
  }
  std::vector<std::string> header = {"FIELD"};
  for (const auto& [id, report] : reports) header.push_back(id);
  std::vector<std::vector<std::string>> rows;
  for (const std::string& path : row_order) {
    std::vector<std::string> row = {path};
    row.insert(row.end(), cells[path].begin(), cells[path].end());
    rows.push_back(std::move(row));
  }
  return FormatTable(header, rows);
}

std::string FormatStepProgress(const v1::Progress& progress) {
  if (progress.total_steps() > 0) {
    const int64_t pct = progress.step() * 100 / progress.total_steps();
    return absl::StrFormat("%d/%d %d%%", progress.step(), progress.total_steps(), pct);
  }
  if (progress.step() > 0) return absl::StrCat(progress.step());
  return "-";
}

std::string FormatJobTable(const std::vector<v1::Job>& jobs, int64_t now_ms) {
  const bool evaluations = std::any_of(jobs.begin(), jobs.end(), [](const v1::Job& job) { return job.has_evaluates(); });
  std::vector<std::vector<std::string>> rows;
  rows.reserve(jobs.size());
  for (const v1::Job& job : jobs) {
    rows.push_back({job.id(), job.name(), job.model(), JobStateName(job.state()),
                    absl::StrCat(job.priority()), absl::StrCat(job.attempt()),
                    FormatStepProgress(job.progress()), Age(job.created_ms(), now_ms)});
    if (evaluations) {
      rows.back().push_back(job.has_evaluates() ? FormatEvaluates(job.evaluates(), /*with_name=*/false) : "-");
    }
  }
  std::vector<std::string> header = {"ID", "NAME", "MODEL", "STATE", "PRIORITY", "ATTEMPT", "PROGRESS", "AGE"};
  if (evaluations) header.push_back("EVALUATES");
  return FormatTable(header, rows);
}

std::string FormatEvaluates(const v1::Evaluates& evaluates, bool with_name) {
  if (!with_name) return absl::StrCat(evaluates.job_id(), " step ", evaluates.step());
  return absl::StrCat(evaluates.job_id(), " ", evaluates.checkpoint(), " (step ", evaluates.step(), ")");
}

std::string FormatJobDetails(const v1::Job& job, int64_t now_ms, absl::TimeZone zone) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("id", job.id());
  fields.emplace_back("name", job.name());
  fields.emplace_back("model", job.model());
  if (job.has_evaluates()) fields.emplace_back("evaluates", FormatEvaluates(job.evaluates(), /*with_name=*/true));
  fields.emplace_back("state", JobStateName(job.state()));
  if (!job.reason().empty()) fields.emplace_back("reason", job.reason());
  fields.emplace_back("priority", absl::StrCat(job.priority()));
  fields.emplace_back("attempt",
                      absl::StrCat(job.attempt(), " (restarts allowed: ", job.max_restarts(), ")"));
  fields.emplace_back("world size", absl::StrCat(job.world_size()));
  fields.emplace_back("workers", job.workers().empty() ? "-" : absl::StrJoin(job.workers(), ", "));
  const v1::Progress& p = job.progress();
  std::string progress = FormatStepProgress(p);
  if (p.step() > 0 || p.total_steps() > 0) {
    absl::StrAppend(&progress, ", epoch ", p.epoch());
    if (p.samples_per_second() > 0) {
      absl::StrAppendFormat(&progress, ", %.0f samples/s", p.samples_per_second());
    }
    if (!v1::IsFinalState(job.state()) && p.eta_seconds() > 0) {
      absl::StrAppend(&progress, ", ETA ", FormatDuration(p.eta_seconds()));
    }
  }
  fields.emplace_back("progress", progress);
  if (job.created_ms() > 0) {
    fields.emplace_back("created", absl::StrCat(FormatTimestamp(job.created_ms(), zone), " (",
                                                Age(job.created_ms(), now_ms), " ago)"));
  }
  if (job.updated_ms() > 0) {
    fields.emplace_back("updated", absl::StrCat(FormatTimestamp(job.updated_ms(), zone), " (",
                                                Age(job.updated_ms(), now_ms), " ago)"));
  }
  fields.emplace_back("last event", absl::StrCat("#", job.last_seq()));

  size_t key_width = 0;
  for (const auto& [key, value] : fields) key_width = std::max(key_width, key.size() + 1);
  std::string out;
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&out, key, ":", std::string(key_width - key.size(), ' '), value, "\n");
  }
  if (!job.spec_yaml().empty()) {
    absl::StrAppend(&out, "spec:\n");
    for (absl::string_view line : absl::StrSplit(job.spec_yaml(), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  return out;
}

std::string FormatArtifactTable(const std::vector<v1::ArtifactInfo>& artifacts) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(artifacts.size());
  for (const v1::ArtifactInfo& a : artifacts) {
    rows.push_back({a.name(), v1::ArtifactKindName(a.kind()), absl::StrCat(a.step()),
                    FormatBytes(a.size()), absl::StrCat(a.attempt())});
  }
  return FormatTable({"NAME", "KIND", "STEP", "SIZE", "ATTEMPT"}, rows);
}

std::string FormatGarbageReport(const v1::CollectGarbageResponse& report) {
  std::map<std::string, v1::FreedSpace> since_start;
  for (const v1::FreedSpace& row : report.since_start()) since_start[row.reason()] = row;
  std::vector<std::vector<std::string>> rows;
  for (const v1::FreedSpace& row : report.this_pass()) {
    const v1::FreedSpace& total = since_start[row.reason()];
    rows.push_back({row.reason(), absl::StrCat(row.files()), FormatBytes(row.bytes()), absl::StrCat(total.files()),
                    FormatBytes(total.bytes())});
  }
  return absl::StrCat(FormatTable({"REASON", "FILES", "FREED", "FILES SINCE START", "FREED SINCE START"}, rows),
                      "artifacts stored: ", FormatBytes(report.stored_bytes()),
                      "; free on the coordinator's data folder: ", FormatBytes(report.available_bytes()), "\n");
}

std::string FormatWorkerTable(const std::vector<v1::WorkerInfo>& workers, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(workers.size());
  for (const v1::WorkerInfo& w : workers) {
    rows.push_back({w.id(), w.name(), w.device(), absl::StrCat(w.free_slots(), "/", w.slots()),
                    WorkerStateName(w.state()), w.address(),
                    w.last_heartbeat_ms() > 0 ? Age(w.last_heartbeat_ms(), now_ms) + " ago" : "-",
                    w.job_ids().empty() ? "-" : absl::StrJoin(w.job_ids(), ",")});
  }
  return FormatTable({"ID", "NAME", "DEVICE", "SLOTS", "STATE", "ADDRESS", "HEARTBEAT", "JOBS"},
                     rows);
}

std::string FormatTop(const std::vector<v1::WorkerInfo>& workers, const std::vector<v1::Job>& jobs,
                      int64_t now_ms, absl::TimeZone zone) {
  int alive = 0, slots = 0, busy = 0;
  std::vector<std::vector<std::string>> worker_rows;
  for (const v1::WorkerInfo& w : workers) {
    const bool is_alive = w.state() == v1::WORKER_ALIVE;
    if (is_alive) {
      ++alive;
      slots += w.slots();
      busy += w.slots() - w.free_slots();
    }
    worker_rows.push_back({w.name(), w.device(), absl::StrCat(w.slots() - w.free_slots(), "/", w.slots()),
                           WorkerStateName(w.state()),
                           w.last_heartbeat_ms() > 0 ? Age(w.last_heartbeat_ms(), now_ms) + " ago" : "-",
                           w.job_ids().empty() ? "-" : absl::StrJoin(w.job_ids(), ",")});
  }
  int running = 0, queued = 0;
  std::vector<std::vector<std::string>> job_rows;
  for (const v1::Job& job : jobs) {
    if (v1::IsFinalState(job.state())) continue;
    if (job.state() == v1::RUNNING) ++running;
    if (job.state() == v1::QUEUED) ++queued;
    const v1::Progress& p = job.progress();
    const bool live = job.state() == v1::RUNNING && p.step() > 0;
    job_rows.push_back({job.id(), job.name(), job.model(), JobStateName(job.state()), absl::StrCat(job.world_size()),
                        FormatStepProgress(p), live ? absl::StrFormat("%.0f", p.samples_per_second()) : "-",
                        live && p.step_seconds() > 0 ? absl::StrFormat("%.3f s", p.step_seconds()) : "-",
                        live && p.eta_seconds() > 0 ? FormatDuration(p.eta_seconds()) : "-"});
  }
  std::string out = absl::StrCat(
      "dfv top  ", absl::FormatTime("%H:%M:%S", absl::FromUnixMillis(now_ms), zone), "  workers ", alive, " alive of ",
      workers.size(), ", slots ", busy, "/", slots, " busy  jobs ", running, " running, ", queued, " queued\n\n");
  absl::StrAppend(&out, worker_rows.empty() ? "no workers\n"
                                             : FormatTable({"WORKER", "DEVICE", "BUSY", "STATE", "HEARTBEAT", "JOBS"},
                                                           worker_rows));
  absl::StrAppend(&out, "\n");
  absl::StrAppend(&out, job_rows.empty() ? "no queued or running jobs\n"
                                          : FormatTable({"JOB", "NAME", "MODEL", "STATE", "RANKS", "STEP", "SAMPLES/S",
                                                         "STEP TIME", "ETA"},
                                                        job_rows));
  return out;
}

std::string FormatEventLine(const v1::JobEvent& event, absl::TimeZone zone) {
  std::string line;
  if (event.time_ms() > 0) {
    line = absl::StrCat(absl::FormatTime("%H:%M:%S", absl::FromUnixMillis(event.time_ms()), zone),
                        " ");
  }
  absl::StrAppend(&line, "#", event.seq(), " ");
  switch (event.payload_case()) {
    case v1::JobEvent::kState: {
      const v1::StateChange& s = event.state();
      absl::StrAppend(&line, "state ", JobStateName(s.state()));
      if (s.attempt() > 0) absl::StrAppend(&line, " attempt ", s.attempt());
      if (!s.workers().empty()) absl::StrAppend(&line, " on ", absl::StrJoin(s.workers(), ","));
      if (!s.reason().empty()) absl::StrAppend(&line, ": ", s.reason());
      break;
    }
    case v1::JobEvent::kMetrics: {
      const v1::MetricsRow& m = event.metrics();
      absl::StrAppend(&line, "metrics step ", m.step(), " epoch ", m.epoch(), ":");
      for (const v1::MetricValue& v : m.values()) {
        absl::StrAppend(&line, " ", v.name(), " ", FormatMetricValue(v.value()));
      }
      break;
    }
    case v1::JobEvent::kProgress: {
      const v1::Progress& p = event.progress();
      absl::StrAppend(&line, "progress step ", p.step());
      if (p.total_steps() > 0) {
        absl::StrAppend(&line, "/", p.total_steps(), " (", PercentOf(p.step(), p.total_steps()),
                        ")");
      }
      absl::StrAppendFormat(&line, " epoch %d, %.0f samples/s", p.epoch(), p.samples_per_second());
      if (p.eta_seconds() >= 0) absl::StrAppend(&line, ", ETA ", FormatDuration(p.eta_seconds()));
      break;
    }
    case v1::JobEvent::kArtifact: {
      const v1::ArtifactInfo& a = event.artifact();
      absl::StrAppend(&line, "artifact ", v1::ArtifactKindName(a.kind()), " ", a.name(), " step ",
                      a.step(), " (", FormatBytes(a.size()), ")");
      break;
    }
    case v1::JobEvent::kMessage:
      absl::StrAppend(&line, "message ", event.message().text());
      break;
    case v1::JobEvent::PAYLOAD_NOT_SET:
      absl::StrAppend(&line, "(empty event)");
      break;
  }
  return line;
}

std::string FormatFinalState(const v1::Job& job) {
  std::string line = absl::StrCat(job.id(), " ", JobStateName(job.state()));
  if (!job.reason().empty()) absl::StrAppend(&line, ": ", job.reason());
  return line;
}

bool IsTimingMetric(const std::string& name) {
  return name == "samples_per_second" || absl::EndsWith(name, "_seconds");
}

std::string ProgressBar(double fraction, int width) {
  if (!std::isfinite(fraction)) fraction = 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  width = std::max(width, 0);
  const int filled = static_cast<int>(std::floor(fraction * width));
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "]");
}

std::string RenderProgressLine(const LiveStatus& status, int width) {
  std::string line = JobStateName(status.state);
  if (status.total_steps > 0) {
    const double fraction =
        static_cast<double>(status.step) / static_cast<double>(status.total_steps);
    absl::StrAppendFormat(&line, " %d/%d %s %5.1f%%", status.step, status.total_steps,
                          ProgressBar(fraction, 20), 100.0 * std::clamp(fraction, 0.0, 1.0));
  } else if (status.step > 0) {
    absl::StrAppend(&line, " step ", status.step);
  }
  if (status.step > 0 || status.total_steps > 0) absl::StrAppend(&line, " epoch ", status.epoch);
  if (!status.losses.empty()) {
    absl::StrAppend(&line, " |");
    for (const auto& [name, value] : status.losses) {
      absl::StrAppend(&line, " ", name, " ", FormatMetricValue(value));
    }
  }
  if (status.samples_per_second > 0) {
    absl::StrAppendFormat(&line, " | %.0f samples/s", status.samples_per_second);
  }
  if (status.eta_seconds >= 0 && !v1::IsFinalState(status.state)) {
    absl::StrAppend(&line, " | ETA ", FormatDuration(status.eta_seconds));
  }
  if (width > 0 && line.size() > static_cast<size_t>(width)) line.resize(width);
  return line;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print ", message.GetTypeName(), " as JSON: ", status.ToString()));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace dfv::client
