#include "server/worker_registry.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/clock.h"

namespace dfv::server {
namespace {

class WorkerRegistryTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  WorkerRegistry registry_{&clock_, WorkerRegistryOptions{5000, 500, 60000}};
};

TEST_F(WorkerRegistryTest, HeartbeatsRenewTheLease) {
  std::string id = registry_.Register("w1", 2, "cpu", "127.0.0.1:9000").worker_id;
  for (int i = 0; i < 10; ++i) {
    clock_.AdvanceMs(4000);
    ASSERT_TRUE(registry_.Renew(id).ok());
    EXPECT_TRUE(registry_.ExpireLeases().empty());
  }
  ASSERT_NE(registry_.FindAlive(id), nullptr);
  EXPECT_EQ(registry_.FindAlive(id)->free_slots(), 2);
}

TEST_F(WorkerRegistryTest, ExpiredLeaseLosesTheWorkerAndItsAssignments) {
  std::string id = registry_.Register("w1", 1, "cpu", "").worker_id;
  registry_.FindAlive(id)->assignments[AssignmentKey{"j-000001", 1, 0}] = HeldAssignment{};
  clock_.AdvanceMs(4999);
  EXPECT_TRUE(registry_.ExpireLeases().empty());
  clock_.AdvanceMs(1);
  std::vector<WorkerRecord> lost = registry_.ExpireLeases();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].name, "w1");
  EXPECT_EQ(lost[0].assignments.size(), 1u);
  EXPECT_EQ(registry_.FindAlive(id), nullptr);
  ASSERT_NE(registry_.Find(id), nullptr);
  EXPECT_EQ(registry_.Find(id)->state, dfv::v1::WORKER_LOST);
  EXPECT_TRUE(registry_.Find(id)->assignments.empty());
  // A lost session cannot heartbeat: the worker must register again.
  EXPECT_TRUE(absl::IsNotFound(registry_.Renew(id)));
  // Lost workers are listed, then forgotten after the retention period.
  ASSERT_EQ(registry_.List().size(), 1u);
  EXPECT_EQ(registry_.List()[0].state(), dfv::v1::WORKER_LOST);
  clock_.AdvanceMs(60001);
  registry_.ExpireLeases();
  EXPECT_TRUE(registry_.List().empty());
}

TEST_F(WorkerRegistryTest, ReRegisteringReplacesTheOldSession) {
  std::string old_id = registry_.Register("w1", 1, "cpu", "").worker_id;
  registry_.FindAlive(old_id)->assignments[AssignmentKey{"j-000001", 1, 0}] = HeldAssignment{};
  WorkerRegistry::Registration again = registry_.Register("w1", 4, "cuda", "");
  EXPECT_NE(again.worker_id, old_id);
  ASSERT_TRUE(again.replaced.has_value());
  EXPECT_EQ(again.replaced->id, old_id);
  EXPECT_EQ(again.replaced->assignments.size(), 1u);
  EXPECT_EQ(registry_.Find(old_id), nullptr);
  EXPECT_TRUE(absl::IsNotFound(registry_.Renew(old_id)));
  ASSERT_EQ(registry_.List().size(), 1u);
  EXPECT_EQ(registry_.List()[0].slots(), 4);
  EXPECT_EQ(registry_.List()[0].device(), "cuda");
}

TEST_F(WorkerRegistryTest, ReRegisteringAfterExpiryReplacesTheLostRecord) {
  std::string old_id = registry_.Register("w1", 1, "cpu", "").worker_id;
  clock_.AdvanceMs(6000);
  registry_.ExpireLeases();
  WorkerRegistry::Registration again = registry_.Register("w1", 1, "cpu", "");
  EXPECT_FALSE(again.replaced.has_value());  // the old one was already lost
  ASSERT_EQ(registry_.List().size(), 1u);
  EXPECT_EQ(registry_.List()[0].state(), dfv::v1::WORKER_ALIVE);
}

TEST_F(WorkerRegistryTest, UnknownSessionIsNotFound) {
  absl::Status status = registry_.Renew("w-nobody");
  EXPECT_TRUE(absl::IsNotFound(status));
  EXPECT_NE(status.message().find("register again"), std::string::npos);
}

TEST_F(WorkerRegistryTest, FindSessionTellsAnUnknownOrLostWorkerToRegisterAgain) {
  std::string id = registry_.Register("w1", 1, "cpu", "").worker_id;
  absl::StatusOr<WorkerRecord*> found = registry_.FindSession(id);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ((*found)->name, "w1");
  clock_.AdvanceMs(6000);
  registry_.ExpireLeases();
  found = registry_.FindSession(id);
  EXPECT_TRUE(absl::IsNotFound(found.status()));
  EXPECT_EQ(found.status().message(),
            absl::StrCat("worker session ", id, " is unknown or its lease expired; register again"));
}

TEST_F(WorkerRegistryTest, HostOfIsTheAddressHostOrTheName) {
  WorkerRecord worker;
  worker.name = "w1";
  worker.address = "10.1.2.3:7000";
  EXPECT_EQ(HostOf(worker), "10.1.2.3");
  worker.address = "";
  EXPECT_EQ(HostOf(worker), "w1");
}

TEST_F(WorkerRegistryTest, ListReportsSlotsAndJobs) {
  std::string id = registry_.Register("b", 3, "cpu", "127.0.0.1:1").worker_id;
  registry_.Register("a", 1, "cpu", "127.0.0.1:2");
  registry_.FindAlive(id)->assignments[AssignmentKey{"j-000002", 1, 0}] = HeldAssignment{};
  registry_.FindAlive(id)->assignments[AssignmentKey{"j-000002", 1, 1}] = HeldAssignment{};
  std::vector<dfv::v1::WorkerInfo> list = registry_.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name(), "a");
  EXPECT_EQ(list[1].name(), "b");
  EXPECT_EQ(list[1].free_slots(), 1);
  ASSERT_EQ(list[1].job_ids_size(), 1);
  EXPECT_EQ(list[1].job_ids(0), "j-000002");
}

}  // namespace
}  // namespace dfv::server
