#include "client/watch.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace dfv::client {
namespace {

// A stream that broke after living at least this long, or after delivering
// an event, was connected: its break starts a new outage. One that broke
// sooner without an event counts as another failed attempt of the outage
// already running, so a coordinator that accepts GetJob but keeps refusing
// the stream still ends in "gave up".
constexpr absl::Duration kConnectedStreamLife = absl::Seconds(1);

// The shortest wait of a reconnect check.
constexpr absl::Duration kLastProbeWait = absl::Milliseconds(100);

bool IsRetryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

}  // namespace

absl::StatusOr<FollowResult> FollowJob(
    Coordinator& coordinator, const std::string& job_id, const FollowOptions& options,
    const std::function<absl::Status(const v1::JobEvent&)>& on_event,
    const std::function<void(const std::string&)>& on_notice) {
  auto notice = [&](const std::string& text) {
    if (on_notice) on_notice(text);
  };
  FollowResult result;
  result.last_seq = options.after_seq;
  std::optional<absl::Time> outage_since;
  absl::Duration backoff = options.initial_backoff;
  for (bool first = true;; first = false) {
    if (!first) ++result.reconnects;
    std::unique_ptr<JobEventStream> stream = coordinator.WatchJob(job_id, result.last_seq);
    const absl::Time opened_at = options.now();
    bool delivered = false;
    v1::JobEvent event;
    while (stream->Read(&event)) {
      // The coordinator replays from after_seq; anything at or below the last
      // seq delivered was seen before a reconnect.
      if (event.seq() <= result.last_seq) continue;
      absl::Status handled = on_event(event);
      if (!handled.ok()) return handled;  // the stream cancels itself when destroyed
      result.last_seq = event.seq();
      delivered = true;
    }
    absl::Status status = stream->Finish();
    if (status.ok()) return result;
    if (!absl::IsUnavailable(status)) return status;

    const absl::Time broke_at = options.now();
    if (!outage_since.has_value() || delivered || broke_at - opened_at >= kConnectedStreamLife) {
      outage_since = broke_at;
      backoff = options.initial_backoff;
      notice(absl::StrCat("watch interrupted (", status.message(), "); reconnecting after #",
                          result.last_seq));
    }
    // Wait until the coordinator answers again before reopening the stream.
    while (true) {
      auto budget_left = [&] { return options.give_up_after - (options.now() - *outage_since); };
      if (budget_left() <= absl::ZeroDuration()) {
        return absl::UnavailableError(absl::StrCat("gave up after ",
                                                   absl::FormatDuration(options.give_up_after),
                                                   " without contact: ", status.message()));
      }
      options.sleep(std::min(backoff, budget_left()));
      backoff = std::min(backoff * 2, options.max_backoff);
      // One last short check even when the pause used up the budget.
      const absl::Duration wait =
          std::min(options.probe_wait, std::max(budget_left(), kLastProbeWait));
      absl::StatusOr<v1::Job> probe = coordinator.AwaitJob(job_id, wait);
      spdlog::debug("watch {}: check after {}: {}", job_id,
                    absl::FormatDuration(options.now() - *outage_since), probe.status().ToString());
      if (probe.ok()) break;
      if (!IsRetryable(probe.status())) return probe.status();
      // "did not answer within 2s" says less than the connection error.
      if (absl::IsUnavailable(probe.status())) status = probe.status();
    }
    notice(absl::StrCat("reconnected; resuming after #", result.last_seq));
  }
}

void WatchDisplay::Seed(const v1::Job& job) {
  live_.state = job.state();
  live_.attempt = job.attempt();
  live_.step = job.progress().step();
  live_.total_steps = job.progress().total_steps();
  live_.epoch = job.progress().epoch();
  live_.samples_per_second = job.progress().samples_per_second();
  live_.eta_seconds = job.progress().eta_seconds() > 0 ? job.progress().eta_seconds() : -1;
  if (options_.format == WatchFormat::kText && options_.interactive) DrawLiveLine();
}

absl::Status WatchDisplay::OnEvent(const v1::JobEvent& event) {
  if (options_.format == WatchFormat::kJson) {
    absl::StatusOr<std::string> json = ToJson(event, /*pretty=*/false);
    if (!json.ok()) return json.status();
    std::fprintf(options_.lines, "%s\n", json->c_str());
    std::fflush(options_.lines);
    return absl::OkStatus();
  }
  const bool interactive = options_.interactive;
  switch (event.payload_case()) {
    case v1::JobEvent::kState:
      live_.state = event.state().state();
      live_.attempt = event.state().attempt();
      PrintAboveLiveLine(options_.lines, FormatEventLine(event, options_.zone));
      return absl::OkStatus();
    case v1::JobEvent::kMetrics: {
      const v1::MetricsRow& row = event.metrics();
      live_.step = std::max(live_.step, row.step());
      live_.epoch = row.epoch();
      live_.losses.clear();
      for (const v1::MetricValue& value : row.values()) {
        if (value.name() == "samples_per_second") {
          live_.samples_per_second = value.value();
        } else if (!IsTimingMetric(value.name())) {
          live_.losses.emplace_back(value.name(), value.value());
        }
      }
      if (interactive) {
        DrawLiveLine();
      } else {
        PrintAboveLiveLine(options_.lines, FormatEventLine(event, options_.zone));
      }
      return absl::OkStatus();
    }
    case v1::JobEvent::kProgress: {
      const v1::Progress& p = event.progress();
      live_.step = p.step();
      live_.total_steps = p.total_steps();
      live_.epoch = p.epoch();
      live_.samples_per_second = p.samples_per_second();
      live_.eta_seconds = p.eta_seconds();
      if (interactive) {
        DrawLiveLine();
        return absl::OkStatus();
      }
      const int64_t interval_ms = absl::ToInt64Milliseconds(options_.progress_interval);
      if (last_progress_ms_ < 0 || event.time_ms() - last_progress_ms_ >= interval_ms) {
        last_progress_ms_ = event.time_ms();
        PrintAboveLiveLine(options_.lines, FormatEventLine(event, options_.zone));
      }
      return absl::OkStatus();
    }
    case v1::JobEvent::kArtifact:
    case v1::JobEvent::kMessage:
    case v1::JobEvent::PAYLOAD_NOT_SET:
      PrintAboveLiveLine(options_.lines, FormatEventLine(event, options_.zone));
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

void WatchDisplay::Notice(const std::string& text) { PrintAboveLiveLine(options_.status, text); }

void WatchDisplay::PrintLine(const std::string& text) {
  EndLiveLine();
  std::fprintf(options_.lines, "%s\n", text.c_str());
  std::fflush(options_.lines);
}

void WatchDisplay::PrintAboveLiveLine(std::FILE* out, const std::string& text) {
  const bool redraw = live_drawn_;
  EraseLiveLine();
  std::fprintf(out, "%s\n", text.c_str());
  std::fflush(out);
  if (redraw || (options_.interactive && options_.format == WatchFormat::kText &&
                 live_.state != v1::JOB_STATE_UNSPECIFIED)) {
    DrawLiveLine();
  }
}

void WatchDisplay::DrawLiveLine() {
  if (!options_.interactive || options_.format != WatchFormat::kText || live_closed_) return;
  const int width = options_.width > 1 ? options_.width - 1 : 0;
  // "\r" returns to the line's start and "\x1b[K" erases what a longer
  // previous line left to the right.
  std::fprintf(options_.status, "\r%s\x1b[K", RenderProgressLine(live_, width).c_str());
  std::fflush(options_.status);
  live_drawn_ = true;
}

void WatchDisplay::EraseLiveLine() {
  if (!live_drawn_) return;
  std::fputs("\r\x1b[K", options_.status);
  std::fflush(options_.status);
  live_drawn_ = false;
}

void WatchDisplay::EndLiveLine() {
  live_closed_ = true;
  if (!live_drawn_) return;
  std::fputc('\n', options_.status);
  std::fflush(options_.status);
  live_drawn_ = false;
}

}  // namespace dfv::client
