#include "server/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/sequential_file.h"
#include "common/status_macros.h"
#include "server/retention.h"

namespace dfv::server {
namespace {

// Temporary upload files: hidden (a leading '.', which no valid artifact
// name component has) and marked, so a restart can sweep them.
constexpr char kTempMarker[] = ".upload-";

// Uploads declared this large bypass the page cache (SequentialFileWriter):
// checkpoints, not grids or reports, which are small and read back soon.
constexpr int64_t kDirectUploadBytes = int64_t{8} << 20;

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%016x", rng());
}

absl::Status CheckChecksumFormat(const std::string& name, const std::string& checksum) {
  if (ParseCrc32Hex(checksum).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("artifact ", name, ": checksum must look like crc32:0123abcd, got '", checksum, "'"));
}

}  // namespace

// ---------------------------------------------------------------------------
// ArtifactUpload

ArtifactUpload::ArtifactUpload(std::string job_id, dfv::v1::ArtifactInfo declared,
                               std::string final_path, std::string temp_path,
                               std::unique_ptr<SequentialFileWriter> file, const Clock* clock)
    : job_id_(std::move(job_id)),
      declared_(std::move(declared)),
      final_path_(std::move(final_path)),
      temp_path_(std::move(temp_path)),
      file_(std::move(file)),
      clock_(clock) {}

ArtifactUpload::~ArtifactUpload() {
  if (!committed_) Discard();
}

absl::Status ArtifactUpload::CheckOpen() const {
  if (!sealed_ && file_ != nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("upload of ", declared_.name(), " is already sealed"));
}

void ArtifactUpload::Discard() {
  file_.reset();
  ::unlink(temp_path_.c_str());
}

absl::Status ArtifactUpload::Append(std::string_view data) {
  DFV_RETURN_IF_ERROR(CheckOpen());
  if (checksum_after_data_ && !data.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload of ", declared_.name(), " has data after its checksum, which ends it"));
  }
  if (received_ + static_cast<int64_t>(data.size()) > declared_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload of ", declared_.name(), " is larger than the ", declared_.size(),
        " bytes its header declared"));
  }
  crc_ = Crc32Update(crc_, data);
  received_ += static_cast<int64_t>(data.size());
  return file_->Append(data);
}

absl::Status ArtifactUpload::DeclareChecksum(const std::string& checksum) {
  DFV_RETURN_IF_ERROR(CheckOpen());
  if (!declared_.checksum().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload of ", declared_.name(), " gives its checksum ",
        checksum_after_data_ ? "twice after its data" : "both in its header and after its data"));
  }
  DFV_RETURN_IF_ERROR(CheckChecksumFormat(declared_.name(), checksum));
  declared_.set_checksum(checksum);
  checksum_after_data_ = true;
  return absl::OkStatus();
}

absl::Status ArtifactUpload::Seal() {
  DFV_RETURN_IF_ERROR(CheckOpen());
  if (received_ != declared_.size()) {
    Discard();
    return absl::DataLossError(absl::StrCat("upload of ", declared_.name(), " ended after ",
                                            received_, " bytes; its header declared ",
                                            declared_.size()));
  }
  if (declared_.checksum().empty()) {
    Discard();
    return absl::InvalidArgumentError(absl::StrCat(
        "upload of ", declared_.name(), " ended without a checksum (in its header or after its data)"));
  }
  std::string actual = Crc32Hex(crc_);
  if (actual != absl::AsciiStrToLower(declared_.checksum())) {
    Discard();
    return absl::DataLossError(absl::StrCat("upload of ", declared_.name(), " has checksum ",
                                            actual, " but its header declared ",
                                            declared_.checksum()));
  }
  absl::Status status = file_->Finish();
  file_.reset();
  if (!status.ok()) {
    Discard();
    return status;
  }
  sealed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<dfv::v1::ArtifactInfo> ArtifactUpload::Commit(JobStore::Tx& tx) {
  if (!sealed_ || committed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload of ", declared_.name(), " must be sealed once before Commit"));
  }
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return ErrnoStatus("rename to", final_path_, errno);
  }
  committed_ = true;
  SyncDir(std::filesystem::path(final_path_).parent_path().string());
  dfv::v1::ArtifactInfo info = declared_;
  info.set_checksum(Crc32Hex(crc_));
  info.set_created_ms(clock_->NowMs());
  DFV_RETURN_IF_ERROR(tx.PutArtifact(job_id_, info));
  return info;
}

// ---------------------------------------------------------------------------
// ArtifactReader

ArtifactReader::~ArtifactReader() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::string> ArtifactReader::Read(size_t max_bytes) {
  std::string chunk(max_bytes, '\0');
  size_t filled = 0;
  while (filled < max_bytes) {
    ssize_t n = ::read(fd_, chunk.data() + filled, max_bytes - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", path_, errno);
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  chunk.resize(filled);
  crc_ = Crc32Update(crc_, chunk);
  read_ += static_cast<int64_t>(filled);
  if (read_ > info_.size()) {
    return absl::DataLossError(absl::StrCat("artifact ", info_.name(), " on disk is larger than the ",
                                            info_.size(), " bytes it was stored with"));
  }
  if (filled < max_bytes) {  // end of file
    if (read_ != info_.size() || Crc32Hex(crc_) != info_.checksum()) {
      return absl::DataLossError(absl::StrCat(
          "artifact ", info_.name(), " on disk (", read_, " bytes, ", Crc32Hex(crc_),
          ") no longer matches what was stored (", info_.size(), " bytes, ", info_.checksum(),
          ")"));
    }
  }
  return chunk;
}

// ---------------------------------------------------------------------------
// ArtifactStore

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Create(const std::string& root,
                                                                     JobStore* store,
                                                                     const Clock* clock) {
  DFV_RETURN_IF_ERROR(MakeDirs(root));
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (it->is_regular_file() && !file.empty() && file.front() == '.' &&
        file.find(kTempMarker) != std::string::npos) {
      std::error_code ignored;  // a file we cannot remove is only clutter
      std::filesystem::remove(it->path(), ignored);
    }
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot scan artifact folder ", root, ": ", ec.message()));
  }
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(root, store, clock));
}

std::string ArtifactStore::PathOf(const std::string& job_id, const std::string& name) const {
  return absl::StrCat(root_, "/", job_id, "/", name);
}

absl::StatusOr<std::unique_ptr<ArtifactUpload>> ArtifactStore::BeginUpload(
    const std::string& job_id, const dfv::v1::ArtifactInfo& declared) const {
  if (!IsSafePathComponent(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("'", job_id, "' is not a valid job id"));
  }
  DFV_RETURN_IF_ERROR(ValidateArtifactName(declared.name()));
  if (declared.size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact ", declared.name(), ": size must be >= 0, got ", declared.size()));
  }
  if (declared.size() == 0 && declared.kind() != dfv::v1::LOG && declared.kind() != dfv::v1::METRICS) {
    // Only a log or a metrics file may legitimately be empty; an empty
    // checkpoint, grid, report or job file is a failed write upstream.
    return absl::InvalidArgumentError(absl::StrCat("artifact ", declared.name(), " is empty (0 bytes); a ",
                                                   absl::AsciiStrToLower(dfv::v1::ArtifactKind_Name(declared.kind())),
                                                   " artifact has content"));
  }
  if (!declared.checksum().empty()) DFV_RETURN_IF_ERROR(CheckChecksumFormat(declared.name(), declared.checksum()));
  const std::string final_path = PathOf(job_id, declared.name());
  std::filesystem::path final_fs(final_path);
  const std::string dir = final_fs.parent_path().string();
  DFV_RETURN_IF_ERROR(MakeDirs(dir));
  std::string temp_path = absl::StrCat(dir, "/.", final_fs.filename().string(), kTempMarker,
                                       RandomSuffix());
  DFV_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFileWriter> file,
                       SequentialFileWriter::Create(temp_path, declared.size() >= kDirectUploadBytes));
  return std::unique_ptr<ArtifactUpload>(
      new ArtifactUpload(job_id, declared, final_path, std::move(temp_path), std::move(file), clock_));
}

absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> ArtifactStore::List(
    const std::string& job_id) const {
  return store_->ListArtifacts(job_id);
}

absl::StatusOr<dfv::v1::ArtifactInfo> ArtifactStore::Get(const std::string& job_id,
                                                         const std::string& name) const {
  return store_->GetArtifact(job_id, name);
}

absl::StatusOr<dfv::v1::ArtifactInfo> ArtifactStore::NewestCheckpoint(
    const std::string& job_id) const {
  DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> all, store_->ListArtifacts(job_id));
  std::vector<dfv::v1::ArtifactInfo> checkpoints = CheckpointsNewestFirst(all);
  if (checkpoints.empty()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint"));
  }
  return checkpoints.front();
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> ArtifactStore::Open(const std::string& job_id,
                                                                    const std::string& name) const {
  DFV_RETURN_IF_ERROR(ValidateArtifactName(name));
  DFV_ASSIGN_OR_RETURN(dfv::v1::ArtifactInfo info, store_->GetArtifact(job_id, name));
  std::string path = PathOf(job_id, name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::DataLossError(
          absl::StrCat("artifact ", name, " of job ", job_id, " is indexed but its file ", path,
                       " is missing"));
    }
    return ErrnoStatus("open", path, err);
  }
  return std::unique_ptr<ArtifactReader>(new ArtifactReader(std::move(info), std::move(path), fd));
}

absl::Status ArtifactStore::Verify(const std::string& job_id,
                                   const dfv::v1::ArtifactInfo& info) const {
  absl::StatusOr<std::unique_ptr<ArtifactReader>> reader = Open(job_id, info.name());
  if (!reader.ok()) {
    if (absl::IsDataLoss(reader.status())) return reader.status();
    return absl::DataLossError(reader.status().message());
  }
  constexpr size_t kChunk = 1 << 20;
  while (true) {
    DFV_ASSIGN_OR_RETURN(std::string chunk, (*reader)->Read(kChunk));
    if (chunk.size() < kChunk) return absl::OkStatus();  // the end: size and CRC checked
  }
}

absl::StatusOr<dfv::v1::ArtifactInfo> ArtifactStore::Share(const std::string& from_job,
                                                           const dfv::v1::ArtifactInfo& info,
                                                           const std::string& to_job,
                                                           JobStore::Tx& tx) const {
  for (const std::string* job_id : {&from_job, &to_job}) {
    if (!IsSafePathComponent(*job_id)) {
      return absl::InvalidArgumentError(absl::StrCat("'", *job_id, "' is not a valid job id"));
    }
  }
  DFV_RETURN_IF_ERROR(ValidateArtifactName(info.name()));
  const std::string from = PathOf(from_job, info.name());
  const std::filesystem::path to(PathOf(to_job, info.name()));
  const std::string dir = to.parent_path().string();
  DFV_RETURN_IF_ERROR(MakeDirs(dir));
  // The temporary name is one Create sweeps after a crash.
  const std::string temp = absl::StrCat(dir, "/.", to.filename().string(), kTempMarker, RandomSuffix());
  if (::link(from.c_str(), temp.c_str()) != 0) {
    const int err = errno;
    if (err == EXDEV || err == EPERM || err == EMLINK || err == EOPNOTSUPP) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot link ", from, " to ", temp, ": ", std::strerror(err),
          " (artifacts are shared between jobs as hard links, which this file system refuses)"));
    }
    return ErrnoStatus("link", from, err);
  }
  if (::rename(temp.c_str(), to.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus("rename to", to.string(), err);
  }
  SyncDir(dir);
  dfv::v1::ArtifactInfo shared = info;
  shared.set_attempt(0);
  shared.set_created_ms(clock_->NowMs());
  DFV_RETURN_IF_ERROR(tx.PutArtifact(to_job, shared));
  return shared;
}

absl::Status ArtifactStore::RemoveFiles(const std::string& job_id,
                                        const std::vector<std::string>& names) const {
  absl::Status first;
  for (const std::string& name : names) {
    const std::string path = PathOf(job_id, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && first.ok()) {
      first = ErrnoStatus("remove", path, errno);
    }
  }
  return first;
}

absl::Status ArtifactStore::RemoveJobFolder(const std::string& job_id) const {
  if (!IsSafePathComponent(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("'", job_id, "' is not a valid job id"));
  }
  std::error_code ec;
  std::filesystem::remove_all(absl::StrCat(root_, "/", job_id), ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", root_, "/", job_id, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ArtifactStore::Orphan>> ArtifactStore::FindOrphans() const {
  std::vector<Orphan> orphans;
  std::error_code ec;
  for (auto job_dir = std::filesystem::directory_iterator(root_, ec);
       !ec && job_dir != std::filesystem::directory_iterator(); job_dir.increment(ec)) {
    const std::string job_id = job_dir->path().filename().string();
    if (!job_dir->is_directory() || !IsSafePathComponent(job_id)) continue;
    DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> indexed, store_->ListArtifacts(job_id));
    std::set<std::string> names;
    for (const dfv::v1::ArtifactInfo& info : indexed) names.insert(info.name());
    std::error_code walk_ec;
    for (auto it = std::filesystem::recursive_directory_iterator(job_dir->path(), walk_ec);
         !walk_ec && it != std::filesystem::recursive_directory_iterator(); it.increment(walk_ec)) {
      if (!it->is_regular_file()) continue;
      const std::string file = it->path().filename().string();
      if (!file.empty() && file.front() == '.' && file.find(kTempMarker) != std::string::npos) {
        continue;  // an upload in progress
      }
      const std::string name = it->path().lexically_relative(job_dir->path()).generic_string();
      if (names.count(name) > 0) continue;
      std::error_code size_ec;
      const auto bytes = std::filesystem::file_size(it->path(), size_ec);
      orphans.push_back(Orphan{job_id, name, size_ec ? 0 : static_cast<int64_t>(bytes)});
    }
    if (walk_ec) {
      return absl::InternalError(absl::StrCat("cannot scan ", job_dir->path().string(), ": ", walk_ec.message()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot scan artifact folder ", root_, ": ", ec.message()));
  return orphans;
}

absl::StatusOr<int64_t> ArtifactStore::AvailableBytes() const { return dfv::AvailableBytes(root_); }

}  // namespace dfv::server
