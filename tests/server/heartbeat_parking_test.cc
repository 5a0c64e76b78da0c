#include "server/heartbeat_parking.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace dfv::server {
namespace {

// One parked call: counts its answers and finishes on the answer numbered
// `finish_on` (1-based) or a final one.
struct Call {
  explicit Call(int finish_on = 1) : finish_on(finish_on) {}
  HeartbeatParking::Answer answer() {
    return [this](bool final) {
      const int n = ++answers;
      if (final) finals.fetch_add(1);
      if (final || n >= finish_on) {
        finished_at = absl::Now();
        done.Notify();
        return true;
      }
      return false;
    };
  }
  const int finish_on;
  std::atomic<int> answers{0};
  std::atomic<int> finals{0};
  absl::Time finished_at;
  absl::Notification done;
};

TEST(HeartbeatParking, AnswersAtTheDeadlineWhenNothingWakesIt) {
  HeartbeatParking parking;
  Call call;
  const absl::Time start = absl::Now();
  parking.Park("w-1", start + absl::Milliseconds(100), call.answer());
  ASSERT_TRUE(call.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(call.finished_at - start, absl::Milliseconds(100));
  EXPECT_EQ(call.answers.load(), 1);
  EXPECT_EQ(call.finals.load(), 1);
  EXPECT_EQ(parking.parked(), 0u);
}

TEST(HeartbeatParking, WakeAnswersOnlyTheNamedWorkersAtOnce) {
  HeartbeatParking parking;
  Call woken, other;
  const absl::Time start = absl::Now();
  parking.Park("w-1", start + absl::Seconds(30), woken.answer());
  parking.Park("w-2", start + absl::Seconds(30), other.answer());
  parking.Wake({"w-1"});
  ASSERT_TRUE(woken.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_LT(woken.finished_at - start, absl::Seconds(10));
  EXPECT_EQ(woken.finals.load(), 0) << "answered because woken, not at its deadline";
  EXPECT_EQ(other.answers.load(), 0);
  EXPECT_EQ(parking.parked(), 1u);
  parking.Stop();
  EXPECT_TRUE(other.done.HasBeenNotified());
  EXPECT_EQ(other.finals.load(), 1);
}

TEST(HeartbeatParking, ACallWithNothingToSendAfterAWakeWaitsOnUntilItsDeadline) {
  HeartbeatParking parking;
  Call call(/*finish_on=*/100);  // never has anything to send
  const absl::Time start = absl::Now();
  parking.Park("w-1", start + absl::Milliseconds(300), call.answer());
  parking.Wake({"w-1"});
  ASSERT_TRUE(call.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(call.finished_at - start, absl::Milliseconds(300));
  EXPECT_EQ(call.answers.load(), 2) << "once when woken (parked again), once at the deadline";
  EXPECT_EQ(call.finals.load(), 1);
}

TEST(HeartbeatParking, AWakeJustBeforeTheCallIsParkedIsNotLost) {
  HeartbeatParking parking;
  Call call;
  parking.Wake({"w-1"});  // the heartbeat had found nothing a moment earlier
  parking.Park("w-1", absl::Now() + absl::Seconds(30), call.answer());
  ASSERT_TRUE(call.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(call.finals.load(), 0);
}

TEST(HeartbeatParking, AWakeWhileTheCallIsBeingAnsweredIsNotLost) {
  HeartbeatParking parking;
  std::atomic<int> answers{0};
  absl::Notification done;
  parking.Park("w-1", absl::Now() + absl::Seconds(30), [&](bool final) {
    if (++answers == 1 && !final) {
      parking.Wake({"w-1"});  // a placement while this answer runs
      return false;           // it had found nothing: parked again
    }
    done.Notify();
    return true;
  });
  parking.Wake({"w-1"});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(answers.load(), 2);
}

TEST(HeartbeatParking, StopAnswersEveryParkedCallAndLaterOnesAtOnce) {
  auto parking = std::make_unique<HeartbeatParking>();
  Call a, b;
  parking->Park("w-1", absl::Now() + absl::Seconds(30), a.answer());
  parking->Stop();
  EXPECT_TRUE(a.done.HasBeenNotified());
  EXPECT_EQ(a.finals.load(), 1);
  parking->Park("w-1", absl::Now() + absl::Seconds(30), b.answer());
  EXPECT_TRUE(b.done.HasBeenNotified()) << "answered on the calling thread";
  EXPECT_EQ(b.finals.load(), 1);
  parking.reset();  // a second Stop
}

}  // namespace
}  // namespace dfv::server
