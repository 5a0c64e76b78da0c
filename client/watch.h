// Following a job: FollowJob reads WatchJob, reconnecting after a broken
// stream without losing or repeating an event; WatchDisplay turns the events
// into terminal output (a live line redrawn in place, or plain lines, or
// JSON). Both are single-threaded.
#ifndef DFV_CLIENT_WATCH_H_
#define DFV_CLIENT_WATCH_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/coordinator.h"
#include "client/format.h"
#include "proto/dfv.pb.h"

namespace dfv::client {

struct FollowOptions {
  // Deliver events with seq > after_seq.
  int64_t after_seq = 0;
  // Give up when the coordinator has not been reached for this long.
  absl::Duration give_up_after = absl::Seconds(30);
  // Pause before the first reconnect attempt; doubles up to max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(4);
  // How long each check (AwaitJob) waits for the coordinator to come back.
  absl::Duration probe_wait = absl::Seconds(2);
  // Clock and sleep, replaceable so tests run without waiting.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
};

struct FollowResult {
  int64_t last_seq = 0;  // seq of the newest event delivered (after_seq if none)
  int reconnects = 0;    // streams opened after the first
};

// Follows `job_id`'s events until the coordinator ends the stream (the job
// is final and every event was sent). Each event with a seq above the last
// one delivered goes to `on_event` in order; a replayed duplicate is
// dropped. When the stream breaks with UNAVAILABLE, waits (backing off),
// checks the coordinator with AwaitJob, and reopens the stream from the last
// seq delivered; `on_notice` (may be empty) hears about the outage and the
// recovery. Errors: UNAVAILABLE after `give_up_after` without contact, any
// other error of the stream or of AwaitJob as it is, and the first error
// `on_event` returns.
absl::StatusOr<FollowResult> FollowJob(
    Coordinator& coordinator, const std::string& job_id, const FollowOptions& options,
    const std::function<absl::Status(const v1::JobEvent&)>& on_event,
    const std::function<void(const std::string&)>& on_notice);

enum class WatchFormat {
  kText,  // human lines (and the live line when interactive)
  kJson,  // one JSON object per event, one per line, on `lines`
};

struct WatchDisplayOptions {
  WatchFormat format = WatchFormat::kText;
  // Where event lines (or JSON) go. Not owned; must outlive the display.
  std::FILE* lines = stdout;
  // Where the live line and notices go (a terminal's stderr). Not owned.
  std::FILE* status = stderr;
  // Text only: draw a live line on `status` (redrawn with "\r" + erase to
  // end of line) instead of a line per metrics row and progress event. Set
  // it only when `status`, and `lines` too, are terminals.
  bool interactive = false;
  // Terminal width; the live line is cut to width - 1 so it never wraps.
  int width = 80;
  // Text, not interactive: print a progress event only when this much job
  // time (event time_ms) passed since the last one printed.
  absl::Duration progress_interval = absl::Seconds(10);
  // Zone for the times in event lines.
  absl::TimeZone zone = absl::LocalTimeZone();
};

// Renders a job's events. Not thread-safe.
class WatchDisplay {
 public:
  explicit WatchDisplay(WatchDisplayOptions options) : options_(std::move(options)) {}
  // Ends an open live line, so later output starts on a fresh line.
  ~WatchDisplay() { EndLiveLine(); }

  WatchDisplay(const WatchDisplay&) = delete;
  WatchDisplay& operator=(const WatchDisplay&) = delete;

  // Starts the live line from the job as GetJob returned it, so a watch that
  // resumes late knows state and progress before the first event.
  void Seed(const v1::Job& job);

  // Shows one event. Fails only when the event cannot be printed as JSON.
  absl::Status OnEvent(const v1::JobEvent& event);

  // A line about the watch itself (reconnecting, downloading) on `status`;
  // never on `lines`, so JSON output stays pure.
  void Notice(const std::string& text);

  // A plain text line on `lines` (the final state) after ending the live
  // line (see EndLiveLine).
  void PrintLine(const std::string& text);

  // Ends the live line (with a newline) if one is drawn; no live line is
  // drawn after this.
  void EndLiveLine();

  const LiveStatus& live() const { return live_; }

 private:
  // Prints `text` + '\n' to `out`, first erasing the live line and then
  // drawing it again below.
  void PrintAboveLiveLine(std::FILE* out, const std::string& text);
  void DrawLiveLine();
  void EraseLiveLine();

  WatchDisplayOptions options_;
  LiveStatus live_;
  bool live_drawn_ = false;        // a live line is on screen
  bool live_closed_ = false;       // EndLiveLine was called: draw no more
  int64_t last_progress_ms_ = -1;  // time_ms of the last progress line printed
};

}  // namespace dfv::client

#endif  // DFV_CLIENT_WATCH_H_
