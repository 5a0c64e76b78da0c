#include "worker/train/console_observer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dfv::train {

const char* ArtifactKindName(ArtifactKind kind) {
  switch (kind) {
    case ArtifactKind::kGrid: return "grid";
    case ArtifactKind::kCheckpoint: return "checkpoint";
    case ArtifactKind::kReport: return "report";
    case ArtifactKind::kMetrics: return "metrics";
    case ArtifactKind::kJobSpec: return "job";
  }
  return "artifact";
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string FormatProgressLine(const Progress& p) {
  const double pct = p.total_steps > 0 ? 100.0 * p.step / p.total_steps : 0.0;
  std::string line = absl::StrFormat("step %d/%d (%.1f%%) epoch %d |", p.step, p.total_steps, pct, p.epoch);
  for (const auto& [name, value] : p.metrics) absl::StrAppendFormat(&line, " %s %.4g", name, value);
  absl::StrAppendFormat(&line, " | %.0f samples/s | ETA %s", p.samples_per_second, FormatDuration(p.eta_seconds));
  return line;
}

ConsoleObserver::~ConsoleObserver() { EndLiveLine(); }

void ConsoleObserver::EndLiveLine() {
  if (live_line_open_) {
    std::fputc('\n', out_);
    live_line_open_ = false;
  }
}

void ConsoleObserver::OnProgress(const Progress& progress) {
  last_ = progress;
  if (!interactive_) return;
  // \r and "erase to end of line" redraw one line in place.
  std::fprintf(out_, "\r%s\x1b[K", FormatProgressLine(progress).c_str());
  std::fflush(out_);
  live_line_open_ = true;
}

void ConsoleObserver::OnMetrics(int64_t step, int64_t epoch, const models::Metrics& metrics) {
  if (interactive_) return;  // the live line shows the same figures
  Progress p = last_;
  p.step = step;
  p.epoch = epoch;
  p.metrics.clear();
  for (const auto& [name, value] : metrics) {
    if (name == "samples_per_second") {
      p.samples_per_second = value;
    } else if (name != "step_time_seconds") {
      p.metrics.emplace_back(name, value);
    }
  }
  std::fprintf(out_, "%s\n", FormatProgressLine(p).c_str());
  std::fflush(out_);
}

void ConsoleObserver::OnArtifact(ArtifactKind kind, const std::string& relative_path, int64_t step) {
  if (kind == ArtifactKind::kGrid) return;  // frequent; listed at the end of the run
  EndLiveLine();
  std::fprintf(out_, "%s at step %lld: %s\n", ArtifactKindName(kind), static_cast<long long>(step),
               relative_path.c_str());
  std::fflush(out_);
}

void ConsoleObserver::OnMessage(const std::string& message) {
  EndLiveLine();
  std::fprintf(out_, "%s\n", message.c_str());
  std::fflush(out_);
}

}  // namespace dfv::train
