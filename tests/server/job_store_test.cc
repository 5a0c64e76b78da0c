#include "server/job_store.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

JobRecord NewJob(const std::string& name, dfv::v1::JobState state = dfv::v1::QUEUED) {
  JobRecord record;
  record.job.set_name(name);
  record.job.set_model("vae");
  record.job.set_state(state);
  record.job.set_priority(1);
  record.job.set_spec_yaml("name: " + name + "\n");
  record.job.set_created_ms(1000);
  record.job.set_updated_ms(1000);
  record.job.set_max_restarts(2);
  record.job.set_world_size(2);
  return record;
}

std::string Insert(JobStore& store, JobRecord record) {
  EXPECT_TRUE(store.RunInTransaction([&](JobStore::Tx& tx) { return tx.InsertJob(&record); }).ok());
  return record.job.id();
}

TEST(JobStoreTest, IdsIncreaseAndSurviveReopen) {
  const std::string path = testing::FreshDir("ids") + "/dfv.db";
  {
    auto store = JobStore::Create(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(Insert(**store, NewJob("a")), "j-000001");
    EXPECT_EQ(Insert(**store, NewJob("b")), "j-000002");
  }
  auto store = JobStore::Create(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(Insert(**store, NewJob("c")), "j-000003");
}

TEST(JobStoreTest, AnEvaluationJobsLinkSurvivesUpdatesAndReopen) {
  const std::string path = testing::FreshDir("evaluates") + "/dfv.db";
  std::string id;
  {
    auto store = JobStore::Create(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_FALSE((*store)->GetJob(Insert(**store, NewJob("plain")))->job.has_evaluates());
    JobRecord record = NewJob("plain-eval");
    record.job.mutable_evaluates()->set_job_id("j-000001");
    record.job.mutable_evaluates()->set_checkpoint("checkpoints/step-00000060.ckpt");
    record.job.mutable_evaluates()->set_step(60);
    id = Insert(**store, record);
    auto stored = (*store)->GetJob(id);
    ASSERT_TRUE(stored.ok()) << stored.status();
    stored->job.set_state(dfv::v1::SUCCEEDED);
    stored->job.clear_evaluates();  // UpdateJob does not write it
    ASSERT_TRUE((*store)->RunInTransaction([&](JobStore::Tx& tx) { return tx.UpdateJob(*stored); }).ok());
  }
  auto store = JobStore::Create(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto jobs = (*store)->ListJobs({dfv::v1::SUCCEEDED}, 0);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  const dfv::v1::Evaluates& evaluates = (*jobs)[0].job.evaluates();
  EXPECT_EQ(evaluates.job_id(), "j-000001");
  EXPECT_EQ(evaluates.checkpoint(), "checkpoints/step-00000060.ckpt");
  EXPECT_EQ(evaluates.step(), 60);
}

TEST(JobStoreTest, JobsAttemptsEventsAndArtifactsSurviveReopen) {
  const std::string path = testing::FreshDir("reopen") + "/dfv.db";
  std::string id;
  {
    auto store = JobStore::Create(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobRecord record = NewJob("survivor", dfv::v1::RUNNING);
    ASSERT_TRUE((*store)
                    ->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
                      absl::Status s = tx.InsertJob(&record);
                      if (!s.ok()) return s;
                      record.job.set_attempt(1);
                      record.job.add_workers("w1");
                      record.job.add_workers("w2");
                      record.job.mutable_progress()->set_step(40);
                      record.job.mutable_progress()->set_samples_per_second(123.5);
                      record.restarts = 1;
                      record.cancel_requested = true;
                      s = tx.UpdateJob(record);
                      if (!s.ok()) return s;
                      s = tx.InsertAttempt({record.job.id(), 1, {"w1", "w2"}, 2000, 0,
                                            AttemptOutcome::kRunning, ""});
                      if (!s.ok()) return s;
                      s = tx.EndAttempt(record.job.id(), 1, 3000, AttemptOutcome::kInterrupted,
                                        "worker w2 lost");
                      if (!s.ok()) return s;
                      dfv::v1::JobEvent event;
                      event.set_job_id(record.job.id());
                      event.set_seq(1);
                      event.set_time_ms(2500);
                      event.mutable_message()->set_text("hello");
                      s = tx.InsertEvent(event);
                      if (!s.ok()) return s;
                      dfv::v1::ArtifactInfo info;
                      info.set_name("checkpoints/step-40.ckpt");
                      info.set_kind(dfv::v1::CHECKPOINT);
                      info.set_step(40);
                      info.set_size(7);
                      info.set_checksum("crc32:00000001");
                      info.set_attempt(1);
                      info.set_created_ms(2600);
                      return tx.PutArtifact(record.job.id(), info);
                    })
                    .ok());
    id = record.job.id();
  }
  auto store = JobStore::Create(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto job = (*store)->GetJob(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->job.name(), "survivor");
  EXPECT_EQ(job->job.state(), dfv::v1::RUNNING);
  EXPECT_EQ(job->job.attempt(), 1);
  ASSERT_EQ(job->job.workers_size(), 2);
  EXPECT_EQ(job->job.workers(1), "w2");
  EXPECT_EQ(job->job.progress().step(), 40);
  EXPECT_DOUBLE_EQ(job->job.progress().samples_per_second(), 123.5);
  EXPECT_EQ(job->job.last_seq(), 1);
  EXPECT_EQ(job->restarts, 1);
  EXPECT_TRUE(job->cancel_requested);
  EXPECT_EQ(job->submit_order, 1);

  auto attempts = (*store)->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kInterrupted);
  EXPECT_EQ((*attempts)[0].reason, "worker w2 lost");
  EXPECT_EQ((*attempts)[0].ended_ms, 3000);

  auto events = (*store)->ReadEvents(id, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].message().text(), "hello");

  auto artifact = (*store)->GetArtifact(id, "checkpoints/step-40.ckpt");
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  EXPECT_EQ(artifact->kind(), dfv::v1::CHECKPOINT);
  EXPECT_EQ(artifact->step(), 40);
  EXPECT_TRUE(absl::IsNotFound((*store)->GetArtifact(id, "nope").status()));
}

TEST(JobStoreTest, FailedTransactionLeavesNothing) {
  auto store = JobStore::Create(testing::FreshDir("rollback") + "/dfv.db");
  ASSERT_TRUE(store.ok());
  absl::Status status = (*store)->RunInTransaction([](JobStore::Tx& tx) -> absl::Status {
    JobRecord record = NewJob("doomed");
    absl::Status s = tx.InsertJob(&record);
    if (!s.ok()) return s;
    return absl::AbortedError("changed my mind");
  });
  EXPECT_TRUE(absl::IsAborted(status));
  auto jobs = (*store)->ListJobs({}, 0);
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
}

TEST(JobStoreTest, ListJobsFiltersByStateNewestFirstWithLimit) {
  auto store = JobStore::Create(testing::FreshDir("list") + "/dfv.db");
  ASSERT_TRUE(store.ok());
  Insert(**store, NewJob("a", dfv::v1::QUEUED));
  Insert(**store, NewJob("b", dfv::v1::SUCCEEDED));
  Insert(**store, NewJob("c", dfv::v1::QUEUED));
  Insert(**store, NewJob("d", dfv::v1::FAILED));
  auto queued = (*store)->ListJobs({dfv::v1::QUEUED}, 0);
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 2u);
  EXPECT_EQ((*queued)[0].job.name(), "c");
  EXPECT_EQ((*queued)[1].job.name(), "a");
  auto final_two = (*store)->ListJobs({dfv::v1::SUCCEEDED, dfv::v1::FAILED}, 1);
  ASSERT_TRUE(final_two.ok());
  ASSERT_EQ(final_two->size(), 1u);
  EXPECT_EQ((*final_two)[0].job.name(), "d");
  auto all = (*store)->ListJobs({}, 0);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);
}

TEST(JobStoreTest, MissingRowsAreNotFound) {
  auto store = JobStore::Create(testing::FreshDir("missing") + "/dfv.db");
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetJob("j-000009").status()));
  JobRecord ghost = NewJob("ghost");
  ghost.job.set_id("j-000009");
  EXPECT_TRUE(absl::IsNotFound(
      (*store)->RunInTransaction([&](JobStore::Tx& tx) { return tx.UpdateJob(ghost); })));
}

TEST(JobStoreTest, RefusesANewerSchemaAndNonDatabases) {
  const std::string dir = testing::FreshDir("schema");
  const std::string path = dir + "/dfv.db";
  ASSERT_TRUE(JobStore::Create(path).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto newer = JobStore::Create(path);
  EXPECT_TRUE(absl::IsFailedPrecondition(newer.status())) << newer.status();
  EXPECT_NE(newer.status().message().find("99"), std::string::npos);

  const std::string junk = dir + "/junk.db";
  ASSERT_TRUE(WriteFileAtomically(junk, std::string(4096, 'x')).ok());
  auto not_db = JobStore::Create(junk);
  EXPECT_TRUE(absl::IsDataLoss(not_db.status())) << not_db.status();
}

TEST(JobStoreTest, AttemptRendezvousIsStoredAndVersionOneDatabasesAreUpgraded) {
  const std::string path = testing::FreshDir("rendezvous") + "/dfv.db";
  std::string id;
  {
    auto store = JobStore::Create(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobRecord record = NewJob("pair", dfv::v1::SCHEDULED);
    ASSERT_TRUE((*store)
                    ->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
                      absl::Status s = tx.InsertJob(&record);
                      if (!s.ok()) return s;
                      s = tx.InsertAttempt({record.job.id(), 1, {"w1", "w2"}, 2000});
                      if (!s.ok()) return s;
                      return tx.SetAttemptRendezvous(record.job.id(), 1, "10.0.0.1:4242");
                    })
                    .ok());
    id = record.job.id();
    auto attempts = (*store)->ListAttempts(id);
    ASSERT_TRUE(attempts.ok());
    ASSERT_EQ(attempts->size(), 1u);
    EXPECT_EQ((*attempts)[0].rendezvous, "10.0.0.1:4242");
    EXPECT_TRUE(absl::IsNotFound((*store)->RunInTransaction(
        [&](JobStore::Tx& tx) { return tx.SetAttemptRendezvous(id, 2, "10.0.0.1:1"); })));
  }
  // Turn it into a version 1 database: no rendezvous column (nor the
  // evaluates_* columns of version 3).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE attempts DROP COLUMN rendezvous; "
                         "ALTER TABLE jobs DROP COLUMN evaluates_job; "
                         "ALTER TABLE jobs DROP COLUMN evaluates_checkpoint; "
                         "ALTER TABLE jobs DROP COLUMN evaluates_step; PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  auto store = JobStore::Create(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto attempts = (*store)->ListAttempts(id);
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].rendezvous, "");
  EXPECT_EQ((*attempts)[0].workers, (std::vector<std::string>{"w1", "w2"}));
  ASSERT_TRUE((*store)
                  ->RunInTransaction([&](JobStore::Tx& tx) {
                    return tx.SetAttemptRendezvous(id, 1, "10.0.0.1:5555");
                  })
                  .ok());
  attempts = (*store)->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ((*attempts)[0].rendezvous, "10.0.0.1:5555");
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), JobStore::kSchemaVersion);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

}  // namespace
}  // namespace dfv::server
