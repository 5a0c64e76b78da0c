// Downloading a job's artifacts: names checked before they become paths,
// every byte checked against the artifact's CRC-32, files written atomically
// (a crash or a bad transfer never leaves a partial file under the final
// name). Single-threaded.
#ifndef DFV_CLIENT_DOWNLOAD_H_
#define DFV_CLIENT_DOWNLOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/coordinator.h"
#include "common/file_util.h"  // ValidateArtifactName
#include "proto/dfv.pb.h"

namespace dfv::client {

struct DownloadedArtifact {
  std::string path;              // dir/name
  v1::ArtifactInfo info;         // as the transfer's first chunk described it
  bool already_present = false;  // an identical file was there; nothing fetched
};

// Fetches artifact `listed.name` of `job_id` into `dir`/name, creating
// folders as needed. A file already there with the listed size and checksum
// is kept and nothing is fetched. The transfer's first chunk must carry the
// info for the same name; the data must match its size and checksum.
// Errors: INTERNAL for an unsafe name (the coordinator broke its contract),
// DATA_LOSS for a malformed checksum or a transfer that is short, long, or
// fails its checksum, the stream's error as it is, and file errors from
// writing.
absl::StatusOr<DownloadedArtifact> DownloadArtifact(Coordinator& coordinator,
                                                    const std::string& job_id,
                                                    const v1::ArtifactInfo& listed,
                                                    const std::string& dir);

struct FetchedArtifact {
  v1::ArtifactInfo info;  // as the transfer's first chunk described it
  std::string data;       // every byte, checked against info's size and checksum
};

// Fetches artifact `name` of `job_id` into memory with DownloadArtifact's
// checks (the same errors; nothing is written). For small artifacts such as
// report.json.
absl::StatusOr<FetchedArtifact> FetchArtifact(Coordinator& coordinator, const std::string& job_id,
                                              const std::string& name);

struct DownloadSummary {
  std::vector<DownloadedArtifact> artifacts;  // in the order listed
  int64_t bytes_fetched = 0;                  // over the wire, skipped files excluded
};

// Lists `job_id`'s artifacts and downloads each (DownloadArtifact) into
// `dir`, which is created. Every name is validated before anything is
// fetched, so an unsafe name stops the download before a file is written.
// `on_artifact` (may be empty) hears about each file when it is done.
// Stops at the first error.
absl::StatusOr<DownloadSummary> DownloadArtifacts(
    Coordinator& coordinator, const std::string& job_id, const std::string& dir,
    const std::function<void(const DownloadedArtifact&)>& on_artifact);

}  // namespace dfv::client

#endif  // DFV_CLIENT_DOWNLOAD_H_
