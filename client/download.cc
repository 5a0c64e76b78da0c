#include "client/download.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv::client {
namespace {

// The buffer reserved up front is capped, so a lying size field cannot make
// the client allocate gigabytes before the first byte arrives.
constexpr int64_t kMaxReserveBytes = 64 << 20;

absl::Status DataLoss(const std::string& name, const std::string& what) {
  return absl::DataLossError(absl::StrCat("artifact ", name, ": ", what));
}

// True when `path` holds exactly the bytes `info` describes.
bool SameFileThere(const std::string& path, const v1::ArtifactInfo& info) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || static_cast<int64_t>(size) != info.size()) return false;
  absl::StatusOr<uint32_t> expected = ParseCrc32Hex(info.checksum());
  if (!expected.ok()) return false;
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  return contents.ok() && Crc32(*contents) == *expected;
}

// Names come from the coordinator, whose contract makes them safe: one that
// is not is the coordinator's fault (INTERNAL), not the user's.
absl::Status CheckServerName(const std::string& name) {
  absl::Status valid = ValidateArtifactName(name);
  if (valid.ok()) return valid;
  return absl::InternalError(absl::StrCat("refusing what the coordinator sent: ", valid.message()));
}

}  // namespace

absl::StatusOr<DownloadedArtifact> DownloadArtifact(Coordinator& coordinator,
                                                    const std::string& job_id,
                                                    const v1::ArtifactInfo& listed,
                                                    const std::string& dir) {
  const std::string& name = listed.name();
  DFV_RETURN_IF_ERROR(CheckServerName(name));
  DownloadedArtifact result;
  result.path = (std::filesystem::path(dir) / name).string();
  if (SameFileThere(result.path, listed)) {
    result.info = listed;
    result.already_present = true;
    return result;
  }

  DFV_ASSIGN_OR_RETURN(FetchedArtifact fetched, FetchArtifact(coordinator, job_id, name));
  result.info = std::move(fetched.info);
  DFV_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(result.path).parent_path().string()));
  DFV_RETURN_IF_ERROR(WriteFileAtomically(result.path, fetched.data));
  return result;
}

absl::StatusOr<FetchedArtifact> FetchArtifact(Coordinator& coordinator, const std::string& job_id,
                                              const std::string& name) {
  DFV_RETURN_IF_ERROR(CheckServerName(name));
  FetchedArtifact result;
  std::unique_ptr<ArtifactChunkStream> stream = coordinator.GetArtifact(job_id, name);
  v1::ArtifactChunk chunk;
  if (!stream->Read(&chunk)) {
    DFV_RETURN_IF_ERROR(stream->Finish());
    return DataLoss(name, "the transfer ended before it described the artifact");
  }
  if (!chunk.has_info()) return DataLoss(name, "the transfer's first chunk carries no info");
  result.info = chunk.info();
  const v1::ArtifactInfo& info = result.info;
  if (info.name() != name) {
    return DataLoss(name, absl::StrCat("the coordinator sent '", info.name(), "' instead"));
  }
  if (info.size() < 0) return DataLoss(name, absl::StrCat("negative size ", info.size()));
  absl::StatusOr<uint32_t> expected_crc = ParseCrc32Hex(info.checksum());
  if (!expected_crc.ok()) return DataLoss(name, std::string(expected_crc.status().message()));

  std::string& data = result.data;
  data.reserve(static_cast<size_t>(std::min(info.size(), kMaxReserveBytes)));
  uint32_t crc = 0;
  auto append = [&](const std::string& bytes) -> absl::Status {
    if (static_cast<int64_t>(data.size() + bytes.size()) > info.size()) {
      return DataLoss(
          name, absl::StrCat("the transfer is longer than the ", info.size(), " bytes announced"));
    }
    crc = Crc32Update(crc, bytes);
    data += bytes;
    return absl::OkStatus();
  };
  DFV_RETURN_IF_ERROR(append(chunk.data()));
  while (stream->Read(&chunk)) DFV_RETURN_IF_ERROR(append(chunk.data()));
  DFV_RETURN_IF_ERROR(stream->Finish());
  if (static_cast<int64_t>(data.size()) != info.size()) {
    return DataLoss(name, absl::StrCat("the transfer ended after ", data.size(), " of ",
                                       info.size(), " bytes"));
  }
  if (crc != *expected_crc) {
    return DataLoss(name, absl::StrCat("checksum mismatch: expected ", info.checksum(), ", got ",
                                       Crc32Hex(crc)));
  }
  return result;
}

absl::StatusOr<DownloadSummary> DownloadArtifacts(
    Coordinator& coordinator, const std::string& job_id, const std::string& dir,
    const std::function<void(const DownloadedArtifact&)>& on_artifact) {
  DFV_ASSIGN_OR_RETURN(v1::ListArtifactsResponse listed, coordinator.ListArtifacts(job_id));
  for (const v1::ArtifactInfo& info : listed.artifacts()) {
    DFV_RETURN_IF_ERROR(CheckServerName(info.name()));
  }
  DFV_RETURN_IF_ERROR(MakeDirs(dir));
  DownloadSummary summary;
  for (const v1::ArtifactInfo& info : listed.artifacts()) {
    DFV_ASSIGN_OR_RETURN(DownloadedArtifact artifact,
                         DownloadArtifact(coordinator, job_id, info, dir));
    if (!artifact.already_present) summary.bytes_fetched += artifact.info.size();
    if (on_artifact) on_artifact(artifact);
    summary.artifacts.push_back(std::move(artifact));
  }
  return summary;
}

}  // namespace dfv::client
