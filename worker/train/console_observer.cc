#include "worker/train/console_observer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/text.h"
#include "proto/enums.h"

namespace dfv::train {

std::string FormatProgressLine(const v1::TrainerProgress& progress) {
  const v1::Progress& p = progress.progress();
  const double pct = p.total_steps() > 0 ? 100.0 * p.step() / p.total_steps() : 0.0;
  std::string line = absl::StrFormat("step %d/%d (%.1f%%) epoch %d |", p.step(), p.total_steps(), pct, p.epoch());
  for (const v1::MetricValue& metric : progress.metrics()) {
    absl::StrAppend(&line, " ", metric.name(), " ", FormatMetricValue(metric.value()));
  }
  absl::StrAppendFormat(&line, " | %.0f samples/s | ETA %s", p.samples_per_second(), FormatDuration(p.eta_seconds()));
  return line;
}

ConsoleObserver::~ConsoleObserver() { EndLiveLine(); }

void ConsoleObserver::EndLiveLine() {
  if (live_line_open_) {
    std::fputc('\n', out_);
    live_line_open_ = false;
  }
}

void ConsoleObserver::PrintLine(const std::string& text) {
  EndLiveLine();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void ConsoleObserver::ShowMetrics(const v1::MetricsRow& row) {
  if (interactive_) return;  // the live line shows the same figures
  v1::TrainerProgress shown = last_;
  shown.mutable_progress()->set_step(row.step());
  shown.mutable_progress()->set_epoch(row.epoch());
  shown.clear_metrics();
  for (const v1::MetricValue& metric : row.values()) {
    if (metric.name() == "samples_per_second") {
      shown.mutable_progress()->set_samples_per_second(metric.value());
    } else if (metric.name() != "step_time_seconds") {
      *shown.add_metrics() = metric;
    }
  }
  PrintLine(FormatProgressLine(shown));
}

void ConsoleObserver::OnReport(const v1::TrainerReport& report) {
  switch (report.report_case()) {
    case v1::TrainerReport::kProgress:
      last_ = report.progress();
      if (!interactive_) return;
      // \r and "erase to end of line" redraw one line in place.
      std::fprintf(out_, "\r%s\x1b[K", FormatProgressLine(last_).c_str());
      std::fflush(out_);
      live_line_open_ = true;
      return;
    case v1::TrainerReport::kMetrics:
      ShowMetrics(report.metrics());
      return;
    case v1::TrainerReport::kArtifact: {
      const v1::TrainerArtifact& artifact = report.artifact();
      if (artifact.kind() == v1::GRID) return;  // frequent; listed at the end of the run
      PrintLine(absl::StrCat(v1::ArtifactKindName(artifact.kind()), " at step ", artifact.step(), ": ",
                             artifact.path()));
      return;
    }
    case v1::TrainerReport::kMessage:
      PrintLine(report.message().text());
      return;
    default:
      return;  // started, rendezvous, finished, error: a trainer process's, for its daemon
  }
}

}  // namespace dfv::train
