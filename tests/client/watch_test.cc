// Tests of following a job: reconnecting without losing or repeating events,
// giving up after the contact budget (on a fake clock), and the display in
// its three forms (plain lines, live line, JSON).
#include "client/watch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/client/fake_coordinator.h"

namespace dfv::client {
namespace {

using testing::CapturedFile;
using ::testing::ElementsAre;
using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::MessageEvent;
using ::testing::SizeIs;
using testing::StateEvent;
using testing::WatchScript;

// A clock that moves only when the code under test sleeps (or a test moves it).
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1714564800);
  std::vector<absl::Duration> sleeps;
};

FollowOptions OptionsOn(FakeClock* clock) {
  FollowOptions options;
  options.now = [clock] { return clock->now; };
  options.sleep = [clock](absl::Duration d) {
    clock->sleeps.push_back(d);
    clock->now += d;
  };
  return options;
}

// Runs FollowJob and collects what it delivered.
struct Followed {
  absl::StatusOr<FollowResult> result;
  std::vector<int64_t> seqs;
  std::vector<std::string> notices;
};

Followed Follow(FakeCoordinator& coordinator, const FollowOptions& options) {
  Followed out;
  out.result = FollowJob(
      coordinator, "j-000001", options,
      [&](const v1::JobEvent& event) {
        out.seqs.push_back(event.seq());
        return absl::OkStatus();
      },
      [&](const std::string& text) { out.notices.push_back(text); });
  return out;
}

TEST(FollowJobTest, DeliversEveryEventUntilTheStreamEnds) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back(
      {{StateEvent(1, v1::QUEUED), StateEvent(2, v1::RUNNING), StateEvent(3, v1::SUCCEEDED)},
       absl::OkStatus()});
  FakeClock clock;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  ASSERT_TRUE(f.result.ok()) << f.result.status();
  EXPECT_THAT(f.seqs, ElementsAre(1, 2, 3));
  EXPECT_EQ(f.result->last_seq, 3);
  EXPECT_EQ(f.result->reconnects, 0);
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0));
  EXPECT_THAT(f.notices, IsEmpty());
}

TEST(FollowJobTest, ReconnectsFromTheLastSeqWithoutLossOrRepeat) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back(
      {{StateEvent(1, v1::QUEUED), StateEvent(2, v1::RUNNING), MessageEvent(3, "a")},
       absl::UnavailableError("cannot reach coordinator at 127.0.0.1:7070: connection reset")});
  // The coordinator replays 2 and 3 again (at-least-once); they are dropped.
  coordinator.watch_scripts.push_back({{StateEvent(2, v1::RUNNING), MessageEvent(3, "a"),
                                        MessageEvent(4, "b"), StateEvent(5, v1::SUCCEEDED)},
                                       absl::OkStatus()});
  FakeClock clock;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  ASSERT_TRUE(f.result.ok()) << f.result.status();
  EXPECT_THAT(f.seqs, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0, 3));
  EXPECT_EQ(f.result->reconnects, 1);
  // One pause, then a check that waits for the coordinator before the
  // stream was reopened.
  EXPECT_THAT(clock.sleeps, ElementsAre(absl::Milliseconds(250)));
  EXPECT_THAT(coordinator.get_job_calls, ElementsAre("j-000001"));
  EXPECT_THAT(coordinator.await_waits, ElementsAre(absl::Seconds(2)));
  ASSERT_THAT(f.notices, SizeIs(2));
  EXPECT_THAT(f.notices[0], HasSubstr("connection reset"));
  EXPECT_THAT(f.notices[0], HasSubstr("reconnecting after #3"));
  EXPECT_EQ(f.notices[1], "reconnected; resuming after #3");
}

TEST(FollowJobTest, StartsAfterTheGivenSeq) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back(
      {{StateEvent(10, v1::RUNNING), StateEvent(11, v1::SUCCEEDED)}, absl::OkStatus()});
  FakeClock clock;
  FollowOptions options = OptionsOn(&clock);
  options.after_seq = 10;
  Followed f = Follow(coordinator, options);
  ASSERT_TRUE(f.result.ok()) << f.result.status();
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(10));
  EXPECT_THAT(f.seqs, ElementsAre(11));  // 10 was asked to be skipped
}

TEST(FollowJobTest, GivesUpAfterThirtySecondsWithoutContact) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back(
      {{StateEvent(1, v1::QUEUED)}, absl::UnavailableError("cannot reach coordinator: gone")});
  coordinator.get_job_status = absl::UnavailableError("cannot reach coordinator: refused");
  FakeClock clock;
  const absl::Time start = clock.now;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  ASSERT_FALSE(f.result.ok());
  EXPECT_TRUE(absl::IsUnavailable(f.result.status())) << f.result.status();
  EXPECT_THAT(f.result.status().message(), HasSubstr("gave up after 30s without contact"));
  EXPECT_THAT(f.result.status().message(), HasSubstr("refused"));
  EXPECT_EQ(clock.now - start, absl::Seconds(30));  // the last pause is cut to the budget
  EXPECT_EQ(clock.sleeps.back(), absl::Milliseconds(2250));
  // Each check waits for the coordinator at most 2 s, and never past the budget.
  ASSERT_EQ(coordinator.await_waits.size(), clock.sleeps.size());
  EXPECT_EQ(coordinator.await_waits.front(), absl::Seconds(2));
  EXPECT_EQ(coordinator.await_waits.back(), absl::Milliseconds(100));
  // Backing off: doubling up to the cap.
  ASSERT_GE(clock.sleeps.size(), 6u);
  EXPECT_EQ(clock.sleeps[0], absl::Milliseconds(250));
  EXPECT_EQ(clock.sleeps[1], absl::Milliseconds(500));
  EXPECT_EQ(clock.sleeps[4], absl::Seconds(4));
  EXPECT_EQ(clock.sleeps[5], absl::Seconds(4));
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0));  // never reopened
  EXPECT_THAT(f.seqs, ElementsAre(1));
}

TEST(FollowJobTest, StreamsThatFailAtOnceDoNotResetTheBudget) {
  // GetJob answers, but every reopened stream breaks before it delivers.
  FakeCoordinator coordinator;
  FakeClock clock;
  const absl::Time start = clock.now;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  ASSERT_FALSE(f.result.ok());
  EXPECT_TRUE(absl::IsUnavailable(f.result.status()));
  EXPECT_GE(clock.now - start, absl::Seconds(30));
  EXPECT_GT(coordinator.watch_after_seqs.size(), 3u);
  EXPECT_THAT(f.notices, SizeIs(coordinator.watch_after_seqs.size()));  // 1 lost + n-1 reconnected
}

TEST(FollowJobTest, AQuietStreamThatBreaksLateStartsAFreshOutage) {
  FakeCoordinator coordinator;
  FakeClock clock;
  coordinator.watch_scripts.push_back({{}, absl::UnavailableError("refused")});
  // Connected, but the job sat in the queue for ten minutes without events.
  coordinator.watch_scripts.push_back(
      {{}, absl::UnavailableError("reset"), [&clock] { clock.now += absl::Minutes(10); }});
  coordinator.watch_scripts.push_back({{StateEvent(1, v1::SUCCEEDED)}, absl::OkStatus()});
  Followed f = Follow(coordinator, OptionsOn(&clock));
  ASSERT_TRUE(f.result.ok()) << f.result.status();
  EXPECT_THAT(f.seqs, ElementsAre(1));
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0, 0, 0));
  EXPECT_EQ(f.result->reconnects, 2);
}

TEST(FollowJobTest, OtherStreamErrorsEndTheWatchAtOnce) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back({{}, absl::NotFoundError("no job j-000001")});
  FakeClock clock;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  EXPECT_TRUE(absl::IsNotFound(f.result.status())) << f.result.status();
  EXPECT_THAT(clock.sleeps, IsEmpty());
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0));
}

TEST(FollowJobTest, AProbeThatFailsOtherwiseEndsTheWatch) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back({{}, absl::UnavailableError("reset")});
  coordinator.get_job_status = absl::NotFoundError("no job j-000001 (coordinator state lost)");
  FakeClock clock;
  Followed f = Follow(coordinator, OptionsOn(&clock));
  EXPECT_TRUE(absl::IsNotFound(f.result.status())) << f.result.status();
  EXPECT_THAT(coordinator.watch_after_seqs, ElementsAre(0));
}

TEST(FollowJobTest, AnEventHandlerErrorStopsTheWatch) {
  FakeCoordinator coordinator;
  coordinator.watch_scripts.push_back(
      {{StateEvent(1, v1::QUEUED), StateEvent(2, v1::RUNNING)}, absl::OkStatus()});
  FakeClock clock;
  int calls = 0;
  absl::StatusOr<FollowResult> result = FollowJob(
      coordinator, "j-000001", OptionsOn(&clock),
      [&](const v1::JobEvent&) {
        ++calls;
        return absl::InternalError("stdout closed");
      },
      nullptr);
  EXPECT_EQ(result.status(), absl::InternalError("stdout closed"));
  EXPECT_EQ(calls, 1);
}

v1::JobEvent ProgressEvent(int64_t seq, int64_t time_ms, int64_t step) {
  v1::JobEvent event;
  event.set_seq(seq);
  event.set_time_ms(time_ms);
  event.mutable_progress()->set_step(step);
  event.mutable_progress()->set_total_steps(100);
  event.mutable_progress()->set_epoch(0);
  event.mutable_progress()->set_samples_per_second(50);
  event.mutable_progress()->set_eta_seconds(90);
  return event;
}

v1::JobEvent MetricsEvent(int64_t seq, int64_t time_ms, int64_t step) {
  v1::JobEvent event;
  event.set_seq(seq);
  event.set_time_ms(time_ms);
  v1::MetricsRow* row = event.mutable_metrics();
  row->set_step(step);
  auto add = [row](const std::string& name, double value) {
    v1::MetricValue* v = row->add_values();
    v->set_name(name);
    v->set_value(value);
  };
  add("loss", 0.5);
  add("step_time_seconds", 0.1);
  add("samples_per_second", 100);
  return event;
}

WatchDisplayOptions TextOptions(CapturedFile& lines, CapturedFile& status) {
  WatchDisplayOptions options;
  options.lines = lines.get();
  options.status = status.get();
  options.zone = absl::UTCTimeZone();
  options.width = 200;
  return options;
}

TEST(WatchDisplayTest, PlainLinesWithProgressAtMostEveryTenSeconds) {
  CapturedFile lines, status;
  {
    WatchDisplay display(TextOptions(lines, status));
    const int64_t t0 = 1714564800000;  // 12:00:00 UTC
    for (const v1::JobEvent& event :
         {StateEvent(1, v1::RUNNING, "", t0), ProgressEvent(2, t0 + 1000, 10),
          ProgressEvent(3, t0 + 5000, 20), ProgressEvent(4, t0 + 11000, 30),
          MetricsEvent(5, t0 + 12000, 30), MessageEvent(6, "evaluating", t0 + 13000),
          StateEvent(7, v1::SUCCEEDED, "", t0 + 14000)}) {
      ASSERT_TRUE(display.OnEvent(event).ok());
    }
  }
  EXPECT_EQ(lines.text(),
            "12:00:00 #1 state RUNNING attempt 1\n"
            "12:00:01 #2 progress step 10/100 (10.0%) epoch 0, 50 samples/s, ETA 1m30s\n"
            "12:00:11 #4 progress step 30/100 (30.0%) epoch 0, 50 samples/s, ETA 1m30s\n"
            "12:00:12 #5 metrics step 30 epoch 0: loss 0.5 step_time_seconds 0.1 "
            "samples_per_second 100\n"
            "12:00:13 #6 message evaluating\n"
            "12:00:14 #7 state SUCCEEDED attempt 1\n");
  EXPECT_EQ(status.text(), "");  // no live line when not interactive
}

TEST(WatchDisplayTest, InteractiveRedrawsOneLiveLineAndKeepsItBelowMessages) {
  CapturedFile out;
  WatchDisplayOptions options;
  options.lines = out.get();
  options.status = out.get();  // as for `submit --follow`: both on stderr
  options.interactive = true;
  options.width = 200;
  options.zone = absl::UTCTimeZone();
  {
    WatchDisplay display(options);
    v1::Job job;
    job.set_state(v1::RUNNING);
    job.mutable_progress()->set_total_steps(100);
    display.Seed(job);
    ASSERT_TRUE(display.OnEvent(MetricsEvent(2, 0, 5)).ok());
    ASSERT_TRUE(display.OnEvent(MessageEvent(3, "hello")).ok());
    EXPECT_EQ(display.live().losses.size(), 1u);  // timing figures are not losses
    display.EndLiveLine();
    display.Notice("after the end");  // a closed live line is not drawn again
  }
  const std::string seeded = "RUNNING 0/100 [--------------------]   0.0% epoch 0";
  const std::string after_metrics =
      "RUNNING 5/100 [#-------------------]   5.0% epoch 0 | loss 0.5 | 100 samples/s";
  EXPECT_EQ(out.text(), "\r" + seeded + "\x1b[K" +               // Seed
                            "\r" + after_metrics + "\x1b[K" +    // metrics: redraw, no line
                            "\r\x1b[K" + "#3 message hello\n" +  // erase, print the line
                            "\r" + after_metrics + "\x1b[K" +    // and draw again below it
                            "\n" +                               // EndLiveLine
                            "after the end\n");
}

TEST(WatchDisplayTest, InteractiveLiveLineNeverWraps) {
  CapturedFile out;
  WatchDisplayOptions options;
  options.lines = out.get();
  options.status = out.get();
  options.interactive = true;
  options.width = 24;
  WatchDisplay display(options);
  ASSERT_TRUE(display.OnEvent(ProgressEvent(1, 0, 50)).ok());
  const std::string text = out.text();
  ASSERT_EQ(text.front(), '\r');
  const size_t end = text.find('\x1b');
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(end - 1, 23u);  // width - 1 characters
}

TEST(WatchDisplayTest, JsonIsOneObjectPerLineAndNoticesStayOnStatus) {
  CapturedFile lines, status;
  const std::vector<v1::JobEvent> events = {StateEvent(1, v1::QUEUED), MetricsEvent(2, 5, 10)};
  {
    WatchDisplayOptions options = TextOptions(lines, status);
    options.format = WatchFormat::kJson;
    options.interactive = true;  // ignored for JSON
    WatchDisplay display(options);
    for (const v1::JobEvent& event : events) ASSERT_TRUE(display.OnEvent(event).ok());
    display.Notice("reconnecting");
  }
  std::vector<std::string> rows = absl::StrSplit(lines.text(), '\n', absl::SkipEmpty());
  ASSERT_THAT(rows, SizeIs(2));
  for (size_t i = 0; i < rows.size(); ++i) {
    v1::JobEvent parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(rows[i], &parsed).ok()) << rows[i];
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, events[i]));
  }
  EXPECT_EQ(status.text(), "reconnecting\n");
}

}  // namespace
}  // namespace dfv::client
