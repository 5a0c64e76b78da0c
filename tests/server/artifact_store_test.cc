#include "server/artifact_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/checksum.h"
#include "common/file_util.h"
#include "server/clock.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

namespace fs = std::filesystem;

dfv::v1::ArtifactInfo Declared(const std::string& name, const std::string& data,
                               dfv::v1::ArtifactKind kind = dfv::v1::GRID, int64_t step = 0) {
  dfv::v1::ArtifactInfo info;
  info.set_name(name);
  info.set_kind(kind);
  info.set_step(step);
  info.set_size(static_cast<int64_t>(data.size()));
  info.set_checksum(Crc32Hex(Crc32(data)));
  info.set_attempt(1);
  return info;
}

// Every regular file under `dir`, hidden ones included.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), dir).string());
  }
  return files;
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto store = JobStore::Create(dir_ + "/dfv.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    JobRecord record;
    record.job.set_name("art");
    record.job.set_model("vae");
    record.job.set_state(dfv::v1::RUNNING);
    ASSERT_TRUE(store_->RunInTransaction([&](JobStore::Tx& tx) { return tx.InsertJob(&record); }).ok());
    job_id_ = record.job.id();
    root_ = dir_ + "/artifacts";
    auto artifacts = ArtifactStore::Create(root_, store_.get(), &clock_);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = std::move(*artifacts);
  }

  // Uploads `data` in chunks of `chunk` bytes against `declared`.
  absl::StatusOr<dfv::v1::ArtifactInfo> Upload(const dfv::v1::ArtifactInfo& declared,
                                               const std::string& data, size_t chunk = 3) {
    auto upload = artifacts_->BeginUpload(job_id_, declared);
    if (!upload.ok()) return upload.status();
    for (size_t at = 0; at < data.size(); at += chunk) {
      absl::Status status = (*upload)->Append(std::string_view(data).substr(at, chunk));
      if (!status.ok()) return status;
    }
    absl::Status sealed = (*upload)->Seal();
    if (!sealed.ok()) return sealed;
    dfv::v1::ArtifactInfo info;
    absl::Status committed = store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
      auto stored = (*upload)->Commit(tx);
      if (!stored.ok()) return stored.status();
      info = *stored;
      return absl::OkStatus();
    });
    if (!committed.ok()) return committed;
    return info;
  }

  std::string dir_;
  std::string root_;
  std::string job_id_;
  FakeClock clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
};

TEST_F(ArtifactStoreTest, StoresIndexesAndReadsBack) {
  const std::string data = "a sample grid, pretend PNG bytes";
  auto info = Upload(Declared("grids/swap-step00000020.png", data, dfv::v1::GRID, 20), data);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->created_ms(), clock_.NowMs());
  EXPECT_EQ(info->attempt(), 1);
  auto on_disk = ReadFileToString(root_ + "/" + job_id_ + "/grids/swap-step00000020.png");
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, data);
  EXPECT_EQ(FilesUnder(root_).size(), 1u);  // no temporary file left

  auto listed = artifacts_->List(job_id_);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].checksum(), Crc32Hex(Crc32(data)));

  auto reader = artifacts_->Open(job_id_, "grids/swap-step00000020.png");
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string read_back;
  while (true) {
    auto chunk = (*reader)->Read(5);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    read_back += *chunk;
  }
  EXPECT_EQ(read_back, data);
}

TEST_F(ArtifactStoreTest, BadChecksumIsDataLossAndLeavesNothing) {
  const std::string data = "checkpoint bytes";
  dfv::v1::ArtifactInfo declared = Declared("checkpoints/step-1.ckpt", data, dfv::v1::CHECKPOINT);
  declared.set_checksum("crc32:deadbeef");
  auto info = Upload(declared, data);
  EXPECT_TRUE(absl::IsDataLoss(info.status())) << info.status();
  EXPECT_NE(info.status().message().find("crc32:deadbeef"), std::string::npos);
  EXPECT_TRUE(FilesUnder(root_).empty());
  EXPECT_TRUE(absl::IsNotFound(artifacts_->Get(job_id_, "checkpoints/step-1.ckpt").status()));
}

TEST_F(ArtifactStoreTest, WrongSizeIsRefused) {
  const std::string data = "0123456789";
  // Fewer bytes than declared: DATA_LOSS at the end.
  dfv::v1::ArtifactInfo longer = Declared("report.json", data + "xx", dfv::v1::REPORT);
  auto short_upload = Upload(longer, data);
  EXPECT_TRUE(absl::IsDataLoss(short_upload.status())) << short_upload.status();
  // More bytes than declared: refused as they arrive.
  dfv::v1::ArtifactInfo shorter = Declared("report.json", data.substr(0, 4), dfv::v1::REPORT);
  auto long_upload = Upload(shorter, data);
  EXPECT_TRUE(absl::IsInvalidArgument(long_upload.status())) << long_upload.status();
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(ArtifactStoreTest, AnAbandonedUploadLeavesNothing) {
  {
    auto upload = artifacts_->BeginUpload(job_id_, Declared("metrics.csv", "abc", dfv::v1::METRICS));
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->Append("ab").ok());
    EXPECT_EQ(FilesUnder(root_).size(), 1u);  // the hidden temporary file
  }
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(ArtifactStoreTest, AnEmptyArtifactIsRefusedUnlessALogOrMetricsFile) {
  for (dfv::v1::ArtifactKind kind : {dfv::v1::CHECKPOINT, dfv::v1::GRID, dfv::v1::REPORT, dfv::v1::JOB_SPEC}) {
    absl::Status status = artifacts_->BeginUpload(job_id_, Declared("empty.bin", "", kind)).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("artifact empty.bin is empty (0 bytes)"));
  }
  EXPECT_TRUE(FilesUnder(root_).empty());
  for (dfv::v1::ArtifactKind kind : {dfv::v1::LOG, dfv::v1::METRICS}) {
    EXPECT_TRUE(artifacts_->BeginUpload(job_id_, Declared("trainer-rank1.log", "", kind)).ok());
  }
}

TEST_F(ArtifactStoreTest, BadNamesAreRefused) {
  for (const std::string& name : std::vector<std::string>{
           "", "/etc/passwd", "../escape", "grids/../../escape", "a//b", "grids/", ".hidden",
        "grids/.hidden", "a b", "a/b/c/d/e/f/g/h/i",
           std::string(600, 'a')}) {
    absl::Status status = ValidateArtifactName(name);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << "'" << name << "'";
    EXPECT_TRUE(absl::IsInvalidArgument(
        artifacts_->BeginUpload(job_id_, Declared(name, "x")).status()))
        << name;
  }
  for (const char* name : {"report.json", "grids/swap-step00000500.png", "a/b/c"}) {
    EXPECT_TRUE(ValidateArtifactName(name).ok()) << name;
  }
  EXPECT_TRUE(FilesUnder(root_).empty());
  // A job id that is not a single safe component never becomes a path.
  EXPECT_TRUE(absl::IsInvalidArgument(artifacts_->BeginUpload("../x", Declared("a", "x")).status()));
  // A malformed checksum.
  dfv::v1::ArtifactInfo bad = Declared("a", "x");
  bad.set_checksum("md5:abc");
  EXPECT_TRUE(absl::IsInvalidArgument(artifacts_->BeginUpload(job_id_, bad).status()));
}

TEST_F(ArtifactStoreTest, CorruptionOnDiskIsDetectedWhenRead) {
  const std::string data(3000, 'z');
  ASSERT_TRUE(Upload(Declared("report.json", data, dfv::v1::REPORT), data, 1000).ok());
  std::string corrupted = data;
  corrupted[1500] = 'y';
  ASSERT_TRUE(WriteFileAtomically(root_ + "/" + job_id_ + "/report.json", corrupted).ok());
  auto reader = artifacts_->Open(job_id_, "report.json");
  ASSERT_TRUE(reader.ok());
  absl::Status final_status;
  while (true) {
    auto chunk = (*reader)->Read(1024);
    if (!chunk.ok()) {
      final_status = chunk.status();
      break;
    }
    if (chunk->empty()) break;
  }
  EXPECT_TRUE(absl::IsDataLoss(final_status)) << final_status;

  fs::remove(root_ + "/" + job_id_ + "/report.json");
  EXPECT_TRUE(absl::IsDataLoss(artifacts_->Open(job_id_, "report.json").status()));
}

TEST_F(ArtifactStoreTest, NewestCheckpointHasTheHighestStep) {
  EXPECT_TRUE(absl::IsNotFound(artifacts_->NewestCheckpoint(job_id_).status()));
  for (int step : {20, 60, 40}) {
    const std::string data = "ckpt" + std::to_string(step);
    clock_.AdvanceMs(100);
    ASSERT_TRUE(Upload(Declared("checkpoints/step-" + std::to_string(step) + ".ckpt", data,
                                dfv::v1::CHECKPOINT, step),
                       data)
                    .ok());
  }
  ASSERT_TRUE(Upload(Declared("grids/late.png", "g", dfv::v1::GRID, 100), "g").ok());
  auto newest = artifacts_->NewestCheckpoint(job_id_);
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(newest->name(), "checkpoints/step-60.ckpt");
}

TEST_F(ArtifactStoreTest, ReplacingAnArtifactKeepsOneIndexRow) {
  ASSERT_TRUE(Upload(Declared("metrics.csv", "v1", dfv::v1::METRICS), "v1").ok());
  ASSERT_TRUE(Upload(Declared("metrics.csv", "version 2", dfv::v1::METRICS), "version 2").ok());
  auto listed = artifacts_->List(job_id_);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size(), 9);
  EXPECT_EQ(*ReadFileToString(root_ + "/" + job_id_ + "/metrics.csv"), "version 2");
}

TEST_F(ArtifactStoreTest, CreateSweepsStaleTemporaryFiles) {
  ASSERT_TRUE(MakeDirs(root_ + "/" + job_id_ + "/grids").ok());
  const std::string stale = root_ + "/" + job_id_ + "/grids/.swap.png.upload-0123456789abcdef";
  ASSERT_TRUE(WriteFileAtomically(stale, "half").ok());
  ASSERT_TRUE(WriteFileAtomically(root_ + "/" + job_id_ + "/keep.txt", "keep").ok());
  auto reopened = ArtifactStore::Create(root_, store_.get(), &clock_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(root_ + "/" + job_id_ + "/keep.txt"));
}

}  // namespace
}  // namespace dfv::server
