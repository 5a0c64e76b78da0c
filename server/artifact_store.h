// Job artifacts (checkpoints, grids, reports) as files under
// <root>/<job_id>/<name>, indexed in the JobStore.
//
// An upload is written to a hidden temporary file beside its final path
// (one of 8 MiB or more bypassing the page cache: SequentialFileWriter),
// checked against the size and CRC-32 its header declared, fsync'ed, and
// only then renamed into place and indexed, so a reader never sees a partial
// or corrupt artifact and a crash leaves at most a temporary file, which
// Create() removes. Names are checked before they touch the file system.
//
// Thread-safety: ArtifactStore is thread-safe. An ArtifactUpload or
// ArtifactReader is used by one thread at a time.
#ifndef DFV_SERVER_ARTIFACT_STORE_H_
#define DFV_SERVER_ARTIFACT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_util.h"  // ValidateArtifactName
#include "common/sequential_file.h"
#include "proto/dfv.pb.h"
#include "server/clock.h"
#include "server/job_store.h"

namespace dfv::server {

// An upload in progress. Destroying it before Commit removes its temporary
// file.
class ArtifactUpload {
 public:
  ~ArtifactUpload();
  ArtifactUpload(const ArtifactUpload&) = delete;
  ArtifactUpload& operator=(const ArtifactUpload&) = delete;

  // Writes the next bytes. INVALID_ARGUMENT once more bytes arrive than the
  // header declared, or after DeclareChecksum.
  absl::Status Append(std::string_view data);

  // The checksum of an upload whose header left it empty, given after the
  // data ("crc32:0123abcd"). INVALID_ARGUMENT when the header gave one, when
  // given twice, or for a bad format.
  absl::Status DeclareChecksum(const std::string& checksum);

  // Checks the byte count and CRC-32 against the declared ones (DATA_LOSS on
  // a mismatch, INVALID_ARGUMENT when no checksum was declared; the
  // temporary file is removed), then fsyncs it. Call once, after the last
  // Append.
  absl::Status Seal();

  // Renames the sealed file into place and indexes it through `tx`, with
  // created_ms set to now. Returns the stored info. The caller's transaction
  // may add rows of its own (the ArtifactInfo event).
  absl::StatusOr<dfv::v1::ArtifactInfo> Commit(JobStore::Tx& tx);

  const std::string& job_id() const { return job_id_; }
  const dfv::v1::ArtifactInfo& declared() const { return declared_; }
  int64_t bytes_received() const { return received_; }

 private:
  friend class ArtifactStore;
  ArtifactUpload(std::string job_id, dfv::v1::ArtifactInfo declared, std::string final_path,
                 std::string temp_path, std::unique_ptr<SequentialFileWriter> file, const Clock* clock);
  // FAILED_PRECONDITION once sealed or discarded.
  absl::Status CheckOpen() const;
  void Discard();

  const std::string job_id_;
  dfv::v1::ArtifactInfo declared_;  // its checksum may come after the data
  const std::string final_path_;
  const std::string temp_path_;
  std::unique_ptr<SequentialFileWriter> file_;  // null once sealed or discarded
  const Clock* const clock_;
  int64_t received_ = 0;
  uint32_t crc_ = 0;
  bool checksum_after_data_ = false;  // DeclareChecksum was called
  bool sealed_ = false;
  bool committed_ = false;
};

// Sequential reads of one stored artifact. The checksum is recomputed while
// reading; the read that reaches the end fails with DATA_LOSS when the file
// no longer matches its index entry.
class ArtifactReader {
 public:
  ~ArtifactReader();
  ArtifactReader(const ArtifactReader&) = delete;
  ArtifactReader& operator=(const ArtifactReader&) = delete;

  const dfv::v1::ArtifactInfo& info() const { return info_; }
  // Up to `max_bytes` next bytes; empty once the whole file was read.
  absl::StatusOr<std::string> Read(size_t max_bytes);

 private:
  friend class ArtifactStore;
  ArtifactReader(dfv::v1::ArtifactInfo info, std::string path, int fd)
      : info_(std::move(info)), path_(std::move(path)), fd_(fd) {}

  const dfv::v1::ArtifactInfo info_;
  const std::string path_;
  int fd_;
  int64_t read_ = 0;
  uint32_t crc_ = 0;
};

class ArtifactStore {
 public:
  // `root` is created when missing; stale temporary files under it (left by
  // a crash during an upload) are removed. `store` and `clock` must outlive
  // the ArtifactStore.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Create(const std::string& root,
                                                               JobStore* store, const Clock* clock);

  // Starts an upload of `declared` (name, kind, step, size, checksum,
  // attempt) for `job_id`. INVALID_ARGUMENT for a bad name, size or checksum
  // format; an empty checksum is declared later (DeclareChecksum).
  absl::StatusOr<std::unique_ptr<ArtifactUpload>> BeginUpload(const std::string& job_id,
                                                              const dfv::v1::ArtifactInfo& declared) const;

  absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> List(const std::string& job_id) const;
  // NOT_FOUND when not indexed.
  absl::StatusOr<dfv::v1::ArtifactInfo> Get(const std::string& job_id, const std::string& name) const;
  // The newest CHECKPOINT artifact (highest step, then newest); NOT_FOUND
  // when the job has none.
  absl::StatusOr<dfv::v1::ArtifactInfo> NewestCheckpoint(const std::string& job_id) const;
  // Opens an indexed artifact for reading. NOT_FOUND when not indexed,
  // DATA_LOSS when indexed but the file is gone.
  absl::StatusOr<std::unique_ptr<ArtifactReader>> Open(const std::string& job_id,
                                                       const std::string& name) const;

  // Reads the whole stored file of `info` (an indexed artifact of the job)
  // and checks its size and CRC-32 against the index. DATA_LOSS naming what
  // differs (a truncated or damaged file, a missing one).
  absl::Status Verify(const std::string& job_id, const dfv::v1::ArtifactInfo& info) const;

  // Gives `info`, an indexed artifact of job `from_job`, to job `to_job`
  // under the same name without copying its bytes: a hard link to the
  // stored file (made under a temporary name and renamed into place, so a
  // file a crash left there is replaced), indexed for `to_job` through `tx`
  // with attempt 0 and created_ms now. Returns the new index row. Both rows
  // then name one file; removing either job's artifact (retention, delete)
  // unlinks only that job's name. Stored files are never written in place
  // (uploads rename new files over old names), so neither job can change
  // the other's bytes. If `tx` does not commit, the caller removes the
  // file (RemoveFiles). NOT_FOUND when from_job's file is gone;
  // FAILED_PRECONDITION when the artifact folder's file system has no hard
  // links; other file system errors as for uploads.
  absl::StatusOr<dfv::v1::ArtifactInfo> Share(const std::string& from_job,
                                              const dfv::v1::ArtifactInfo& info,
                                              const std::string& to_job, JobStore::Tx& tx) const;

  // Removes the files of artifacts whose index rows were deleted, or of
  // orphans (names as the index or FindOrphans gives them, relative to the
  // job's folder); a missing file is no error. Returns the first error, after trying every file.
  absl::Status RemoveFiles(const std::string& job_id, const std::vector<std::string>& names) const;
  // Removes <root>/<job_id> and what is left below it (after every artifact
  // of the job was removed from the index).
  absl::Status RemoveJobFolder(const std::string& job_id) const;

  // A file under the root that no index row names.
  struct Orphan {
    std::string job_id;
    std::string name;  // relative to the job's folder
    int64_t bytes = 0;
  };
  // Every regular file below <root>/<job>/ whose (job, name) is not indexed,
  // uploads in progress (hidden temporary files) excepted. Reads the index
  // once per job folder.
  absl::StatusOr<std::vector<Orphan>> FindOrphans() const;

  // The bytes the file system of the root may still take (AvailableBytes).
  absl::StatusOr<int64_t> AvailableBytes() const;

  // <root>/<job_id>/<name>; both must be valid.
  std::string PathOf(const std::string& job_id, const std::string& name) const;

 private:
  ArtifactStore(std::string root, JobStore* store, const Clock* clock)
      : root_(std::move(root)), store_(store), clock_(clock) {}

  const std::string root_;
  JobStore* const store_;
  const Clock* const clock_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_ARTIFACT_STORE_H_
