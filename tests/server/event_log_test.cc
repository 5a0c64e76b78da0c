#include "server/event_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "server/clock.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

dfv::v1::JobEvent Message(const std::string& text) {
  dfv::v1::JobEvent event;
  event.mutable_message()->set_text(text);
  return event;
}

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
            "/dfv.db";
    Open();
    JobRecord record;
    record.job.set_name("events");
    record.job.set_model("vae");
    record.job.set_state(dfv::v1::QUEUED);
    record.job.set_spec_yaml("name: events\n");
    ASSERT_TRUE(store_->RunInTransaction([&](JobStore::Tx& tx) { return tx.InsertJob(&record); }).ok());
    job_id_ = record.job.id();
  }

  void Open() {
    log_.reset();
    store_.reset();
    auto store = JobStore::Create(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    log_ = std::make_unique<EventLog>(store_.get(), &clock_);
  }

  std::string path_;
  std::string job_id_;
  FakeClock clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(EventLogTest, AssignsGapFreeSequenceNumbersAndTimes) {
  for (int i = 1; i <= 5; ++i) {
    clock_.AdvanceMs(10);
    auto event = log_->Append(job_id_, Message("m" + std::to_string(i)));
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_EQ(event->seq(), i);
    EXPECT_EQ(event->job_id(), job_id_);
    EXPECT_EQ(event->time_ms(), clock_.NowMs());
  }
  auto job = store_->GetJob(job_id_);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job.last_seq(), 5);
}

TEST_F(EventLogTest, ConcurrentAppendsStayGapFree) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(log_->Append(job_id_, Message("x")).ok());
    });
  }
  for (auto& thread : threads) thread.join();
  auto events = log_->Read(job_id_, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*events)[i].seq(), i + 1);
}

TEST_F(EventLogTest, ReadsAfterASeqWithALimit) {
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(log_->Append(job_id_, Message(std::to_string(i))).ok());
  auto events = log_->Read(job_id_, 4, 3);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].seq(), 5);
  EXPECT_EQ((*events)[0].message().text(), "5");
  EXPECT_EQ((*events)[2].seq(), 7);
  auto tail = log_->Read(job_id_, 10, 0);
  ASSERT_TRUE(tail.ok());
  EXPECT_TRUE(tail->empty());
  auto unknown = log_->Read("j-999999", 0, 0);
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->empty());
}

TEST_F(EventLogTest, AppendToAnUnknownJobIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(log_->Append("j-999999", Message("lost")).status()));
}

TEST_F(EventLogTest, SubscribersSeeNewEventsUntilTheyUnsubscribe) {
  std::vector<int64_t> seen;
  std::vector<int64_t> other_seen;
  auto subscription = log_->Subscribe(job_id_, [&](const dfv::v1::JobEvent& e) {
    seen.push_back(e.seq());
  });
  auto other = log_->Subscribe("j-000777", [&](const dfv::v1::JobEvent& e) {
    other_seen.push_back(e.seq());
  });
  ASSERT_TRUE(log_->Append(job_id_, Message("a")).ok());
  ASSERT_TRUE(log_->Append(job_id_, Message("b")).ok());
  subscription.reset();
  ASSERT_TRUE(log_->Append(job_id_, Message("c")).ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(other_seen.empty());
}

TEST_F(EventLogTest, TransactionalAppendsPublishOnlyWhenAsked) {
  std::vector<int64_t> seen;
  auto subscription =
      log_->Subscribe(job_id_, [&](const dfv::v1::JobEvent& e) { seen.push_back(e.seq()); });
  std::vector<dfv::v1::JobEvent> appended;
  ASSERT_TRUE(store_
                  ->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
                    for (const char* text : {"one", "two"}) {
                      auto event = log_->AppendInTransaction(tx, job_id_, Message(text));
                      if (!event.ok()) return event.status();
                      appended.push_back(*event);
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(seen.empty());
  log_->Publish(appended);
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  // A rolled-back append leaves no trace and no gap.
  EXPECT_FALSE(store_
                   ->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
                     auto event = log_->AppendInTransaction(tx, job_id_, Message("three"));
                     if (!event.ok()) return event.status();
                     return absl::AbortedError("roll back");
                   })
                   .ok());
  auto next = log_->Append(job_id_, Message("three again"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->seq(), 3);
}

TEST_F(EventLogTest, EventsPersistAcrossReopen) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(log_->Append(job_id_, Message(std::to_string(i))).ok());
  Open();
  auto events = log_->Read(job_id_, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[2].message().text(), "3");
  auto next = log_->Append(job_id_, Message("4"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->seq(), 4);
}

TEST_F(EventLogTest, UnsubscribeWaitsForARunningCallback) {
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<int> calls{0};
  auto subscription = log_->Subscribe(job_id_, [&](const dfv::v1::JobEvent&) {
    in_callback = true;
    while (!release) std::this_thread::yield();
    ++calls;
  });
  std::thread appender([&] { ASSERT_TRUE(log_->Append(job_id_, Message("slow")).ok()); });
  while (!in_callback) std::this_thread::yield();
  std::atomic<bool> unsubscribed{false};
  std::thread unsubscriber([&] {
    subscription.reset();
    unsubscribed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(unsubscribed.load());  // still waiting for the callback
  release = true;
  unsubscriber.join();
  appender.join();
  EXPECT_TRUE(unsubscribed.load());
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace dfv::server
