// What one assignment runner has to tell the coordinator, in order, kept on
// the worker's disk until it is delivered: event batches (ReportEvents),
// artifact uploads and the outcome (CompleteAssignment). While the
// coordinator is unreachable the trainer keeps running and its reports wait
// here; once the coordinator answers again they go out in the order they
// were made.
//
// Every event batch gets the next batch number (1, 2, ...), which a re-send
// keeps, so the coordinator applies each batch once
// (ReportEventsRequest.batch). An upload's file is linked (or, across file
// systems, copied) into the spool when it is queued, so the trainer may
// delete its own copy (checkpoint.keep_last) meanwhile.
//
// The spool is bounded: when a new report would take it past limit_bytes,
// the oldest METRICS rows are dropped first, then the oldest Progress
// payloads (a later one supersedes them). Checkpoints and other uploads,
// state changes, messages and the outcome are never dropped; when they
// alone exceed the limit the spool grows past it (and says so in the log).
// Each drop is reported: a Message event ("report spool full ...: dropped
// N metrics rows, steps A-B") queued after what is kept.
//
// Folder layout: one file per report, <number>.events (a serialized
// ReportEventsRequest with batch and events), <number>.upload (an
// ArtifactInfo) beside <number>.data (the file), <number>.completion (a
// CompleteAssignmentRequest with outcome, reason and retryable). The folder
// is emptied when the spool is created: a spool does not outlive its
// runner.
//
// Thread-safety: none; the runner's thread owns it.
#ifndef DFV_WORKER_DAEMON_REPORT_SPOOL_H_
#define DFV_WORKER_DAEMON_REPORT_SPOOL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/dfv.pb.h"

namespace dfv::daemon {

// One queued report, as read back from the spool.
struct SpooledReport {
  enum class Kind { kEvents, kUpload, kCompletion };
  Kind kind = Kind::kEvents;
  // kEvents
  int64_t batch = 0;
  std::vector<v1::JobEvent> events;
  // kUpload: name, kind and step (the link fills in size and checksum), and
  // the spooled copy of the file.
  v1::ArtifactInfo artifact;
  std::string path;
  // kCompletion
  v1::Outcome outcome = v1::OUTCOME_UNSPECIFIED;
  std::string reason;
  bool retryable = false;
};

class ReportSpool {
 public:
  // Creates (or empties) `dir`. INVALID_ARGUMENT for limit_bytes < 1;
  // the file system's error when the folder cannot be made.
  static absl::StatusOr<std::unique_ptr<ReportSpool>> Create(const std::string& dir,
                                                             int64_t limit_bytes);

  // Queue a report at the end (after making room, see above). Errors: the
  // file system's, and then nothing was queued.
  absl::Status PushEvents(std::vector<v1::JobEvent> events);
  absl::Status PushUpload(const v1::ArtifactInfo& info, const std::string& path);
  absl::Status PushCompletion(v1::Outcome outcome, const std::string& reason, bool retryable);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // What the queued reports take on disk (an upload: its file's size).
  int64_t bytes() const { return bytes_; }
  int64_t limit_bytes() const { return limit_bytes_; }

  // The oldest report, read back. FAILED_PRECONDITION when empty; the file
  // system's error (or DATA_LOSS for an unreadable file) otherwise.
  absl::StatusOr<SpooledReport> Front();
  // Marks the oldest report as sent at least once (a drop note that was
  // sent is not amended any more).
  void MarkFrontSent();
  // Removes the oldest report (delivered, or refused for good).
  void Pop();

  // Rows dropped so far, for the runner's log and tests.
  int64_t dropped_rows() const { return dropped_rows_; }

 private:
  struct Entry {
    int64_t number = 0;
    SpooledReport::Kind kind = SpooledReport::Kind::kEvents;
    int64_t batch = 0;  // kEvents
    int64_t bytes = 0;
    int64_t droppable = 0;  // METRICS rows and Progress payloads in it
    bool drop_note = false;  // the Message reporting drops, alone
    bool sent = false;
  };

  ReportSpool(std::string dir, int64_t limit_bytes) : dir_(std::move(dir)), limit_bytes_(limit_bytes) {}

  std::string PathOf(const Entry& entry, const char* suffix) const;
  // Writes `events` as entry `entry`'s file and sets its bytes and droppable.
  absl::Status WriteEvents(Entry& entry, const std::vector<v1::JobEvent>& events);
  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const Entry& entry) const;
  // Queues or amends the note that reports the drops.
  void NoteDrops();
  absl::Status Append(Entry entry);
  // Drops the oldest droppable rows until `incoming` more bytes fit (or
  // nothing droppable is left); queues or amends the drop note.
  void MakeRoom(int64_t incoming);
  void RemoveFiles(const Entry& entry);

  const std::string dir_;
  const int64_t limit_bytes_;
  std::deque<Entry> entries_;
  int64_t bytes_ = 0;
  int64_t next_number_ = 1;
  int64_t next_batch_ = 1;
  int64_t dropped_rows_ = 0;
  // The drop note not sent yet (its entry number, 0 for none) and what it
  // reports so far.
  int64_t note_number_ = 0;
  int64_t note_rows_ = 0;
  int64_t note_first_step_ = 0;
  int64_t note_last_step_ = 0;
  int64_t note_progress_ = 0;
  bool warned_over_limit_ = false;
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_REPORT_SPOOL_H_
