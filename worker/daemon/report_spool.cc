#include "worker/daemon/report_spool.h"

#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "spdlog/spdlog.h"

namespace dfv::daemon {
namespace {

namespace fs = std::filesystem;

// Spool files need no fsync: a spool does not outlive its runner.
absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status FsError(const std::error_code& ec, const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", ec.message()));
}

bool Droppable(const v1::JobEvent& event) { return event.has_metrics() || event.has_progress(); }

}  // namespace

absl::StatusOr<std::unique_ptr<ReportSpool>> ReportSpool::Create(const std::string& dir,
                                                                  int64_t limit_bytes) {
  if (limit_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("spool limit: must be >= 1 byte, got ", limit_bytes));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return FsError(ec, absl::StrCat("emptying the report spool ", dir));
  if (absl::Status made = MakeDirs(dir); !made.ok()) return made;
  return std::unique_ptr<ReportSpool>(new ReportSpool(dir, limit_bytes));
}

std::string ReportSpool::PathOf(const Entry& entry, const char* suffix) const {
  return (fs::path(dir_) / absl::StrCat(entry.number, ".", suffix)).string();
}

absl::Status ReportSpool::WriteEvents(Entry& entry, const std::vector<v1::JobEvent>& events) {
  v1::ReportEventsRequest request;
  request.set_batch(entry.batch);
  entry.droppable = 0;
  for (const v1::JobEvent& event : events) {
    *request.add_events() = event;
    if (Droppable(event)) ++entry.droppable;
  }
  const std::string bytes = request.SerializeAsString();
  if (absl::Status written = WriteFile(PathOf(entry, "events"), bytes); !written.ok()) return written;
  bytes_ += static_cast<int64_t>(bytes.size()) - entry.bytes;
  entry.bytes = static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> ReportSpool::ReadEvents(const Entry& entry) const {
  absl::StatusOr<std::string> bytes = ReadFileToString(PathOf(entry, "events"));
  if (!bytes.ok()) return bytes.status();
  v1::ReportEventsRequest request;
  if (!request.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("spooled report ", PathOf(entry, "events"), " does not parse"));
  }
  return std::vector<v1::JobEvent>(request.events().begin(), request.events().end());
}

absl::Status ReportSpool::Append(Entry entry) {
  bytes_ += entry.bytes;
  if (bytes_ > limit_bytes_ && !warned_over_limit_) {
    warned_over_limit_ = true;
    spdlog::warn("report spool {} holds {} bytes, over its limit of {}: what is left cannot be dropped "
                 "(uploads, state changes, messages, the outcome)",
                 dir_, bytes_, limit_bytes_);
  }
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status ReportSpool::PushEvents(std::vector<v1::JobEvent> events) {
  v1::ReportEventsRequest sized;
  for (const v1::JobEvent& event : events) *sized.add_events() = event;
  MakeRoom(static_cast<int64_t>(sized.ByteSizeLong()));
  // Numbered after MakeRoom, which may queue a drop note first.
  Entry entry;
  entry.number = next_number_;
  entry.batch = next_batch_;
  // A new entry's bytes are added by Append, not by WriteEvents.
  const int64_t before = bytes_;
  if (absl::Status written = WriteEvents(entry, events); !written.ok()) return written;
  bytes_ = before;
  ++next_number_;
  ++next_batch_;
  return Append(std::move(entry));
}

absl::Status ReportSpool::PushUpload(const v1::ArtifactInfo& info, const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return FsError(ec, absl::StrCat("spooling the upload of ", path));
  const std::string header = info.SerializeAsString();
  MakeRoom(static_cast<int64_t>(size + header.size()));
  Entry entry;
  entry.number = next_number_;
  entry.kind = SpooledReport::Kind::kUpload;
  entry.bytes = static_cast<int64_t>(size + header.size());
  // A link costs nothing and survives the trainer deleting its copy; a copy
  // where the spool lies on another file system.
  const std::string data = PathOf(entry, "data");
  fs::create_hard_link(path, data, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(path, data, fs::copy_options::overwrite_existing, ec);
    if (ec) return FsError(ec, absl::StrCat("spooling the upload of ", path));
  }
  if (absl::Status written = WriteFile(PathOf(entry, "upload"), header); !written.ok()) {
    fs::remove(data, ec);
    return written;
  }
  ++next_number_;
  return Append(std::move(entry));
}

absl::Status ReportSpool::PushCompletion(v1::Outcome outcome, const std::string& reason, bool retryable) {
  v1::CompleteAssignmentRequest request;
  request.set_outcome(outcome);
  request.set_reason(reason);
  request.set_retryable(retryable);
  const std::string bytes = request.SerializeAsString();
  MakeRoom(static_cast<int64_t>(bytes.size()));
  Entry entry;
  entry.number = next_number_;
  entry.kind = SpooledReport::Kind::kCompletion;
  entry.bytes = static_cast<int64_t>(bytes.size());
  if (absl::Status written = WriteFile(PathOf(entry, "completion"), bytes); !written.ok()) return written;
  ++next_number_;
  return Append(std::move(entry));
}

void ReportSpool::MakeRoom(int64_t incoming) {
  if (bytes_ + incoming <= limit_bytes_) return;
  int64_t rows = 0, progress = 0;
  // Metrics rows first, then progress payloads; oldest first in each pass.
  for (const bool metrics_pass : {true, false}) {
    for (auto it = entries_.begin(); it != entries_.end() && bytes_ + incoming > limit_bytes_;) {
      Entry& entry = *it;
      if (entry.kind != SpooledReport::Kind::kEvents || entry.droppable == 0) {
        ++it;
        continue;
      }
      absl::StatusOr<std::vector<v1::JobEvent>> events = ReadEvents(entry);
      if (!events.ok()) {
        spdlog::warn("report spool: {}", events.status().ToString());
        ++it;
        continue;
      }
      std::vector<v1::JobEvent> kept;
      int64_t freed = 0;
      for (v1::JobEvent& event : *events) {
        const bool drop = bytes_ - freed + incoming > limit_bytes_ &&
                          (metrics_pass ? event.has_metrics() : event.has_progress());
        if (!drop) {
          kept.push_back(std::move(event));
          continue;
        }
        freed += static_cast<int64_t>(event.ByteSizeLong()) + 2;  // its tag and length
        if (event.has_metrics()) {
          if (note_rows_ == 0) note_first_step_ = event.metrics().step();
          note_last_step_ = event.metrics().step();
          ++note_rows_;
          ++rows;
        } else {
          ++note_progress_;
          ++progress;
        }
      }
      if (kept.empty()) {
        // Nothing left to say: the batch goes (its number is skipped, which
        // the coordinator allows).
        bytes_ -= entry.bytes;
        RemoveFiles(entry);
        it = entries_.erase(it);
        continue;
      }
      if (absl::Status written = WriteEvents(entry, kept); !written.ok()) {
        spdlog::warn("report spool: {}", written.ToString());
      }
      ++it;
    }
  }
  if (rows == 0 && progress == 0) return;
  dropped_rows_ += rows;
  // Once per note, not once per report while the coordinator stays away.
  if (note_number_ == 0) {
    spdlog::warn("report spool {} full (limit {} bytes): dropping the oldest metrics rows and progress reports",
                 dir_, limit_bytes_);
  }
  NoteDrops();
}

void ReportSpool::NoteDrops() {
  std::string text = absl::StrCat("report spool full (limit ", limit_bytes_,
                                  " bytes) while the coordinator could not be reached: dropped ", note_rows_,
                                  " metrics row(s)");
  if (note_rows_ > 0) absl::StrAppend(&text, " (steps ", note_first_step_, "-", note_last_step_, ")");
  if (note_progress_ > 0) absl::StrAppend(&text, " and ", note_progress_, " progress report(s)");
  v1::JobEvent note;
  note.mutable_message()->set_text(text);
  for (Entry& entry : entries_) {
    if (entry.number != note_number_) continue;
    if (absl::Status written = WriteEvents(entry, {note}); !written.ok()) {
      spdlog::warn("report spool: {}", written.ToString());
    }
    return;
  }
  Entry entry;
  entry.number = next_number_++;
  entry.batch = next_batch_++;
  entry.drop_note = true;
  const int64_t before = bytes_;
  if (absl::Status written = WriteEvents(entry, {note}); !written.ok()) {
    spdlog::warn("report spool: {}", written.ToString());
    return;
  }
  bytes_ = before;
  note_number_ = entry.number;
  Append(std::move(entry)).IgnoreError();  // cannot fail
}

absl::StatusOr<SpooledReport> ReportSpool::Front() {
  if (entries_.empty()) return absl::FailedPreconditionError("the report spool is empty");
  const Entry& entry = entries_.front();
  SpooledReport report;
  report.kind = entry.kind;
  switch (entry.kind) {
    case SpooledReport::Kind::kEvents: {
      absl::StatusOr<std::vector<v1::JobEvent>> events = ReadEvents(entry);
      if (!events.ok()) return events.status();
      report.batch = entry.batch;
      report.events = std::move(*events);
      break;
    }
    case SpooledReport::Kind::kUpload: {
      absl::StatusOr<std::string> header = ReadFileToString(PathOf(entry, "upload"));
      if (!header.ok()) return header.status();
      if (!report.artifact.ParseFromString(*header)) {
        return absl::DataLossError(absl::StrCat("spooled upload ", PathOf(entry, "upload"), " does not parse"));
      }
      report.path = PathOf(entry, "data");
      break;
    }
    case SpooledReport::Kind::kCompletion: {
      absl::StatusOr<std::string> bytes = ReadFileToString(PathOf(entry, "completion"));
      if (!bytes.ok()) return bytes.status();
      v1::CompleteAssignmentRequest request;
      if (!request.ParseFromString(*bytes)) {
        return absl::DataLossError(
            absl::StrCat("spooled outcome ", PathOf(entry, "completion"), " does not parse"));
      }
      report.outcome = request.outcome();
      report.reason = request.reason();
      report.retryable = request.retryable();
      break;
    }
  }
  return report;
}

void ReportSpool::MarkFrontSent() {
  if (entries_.empty()) return;
  entries_.front().sent = true;
  if (entries_.front().number == note_number_) {
    // Later drops start a new note.
    note_number_ = 0;
    note_rows_ = 0;
    note_progress_ = 0;
  }
}

void ReportSpool::Pop() {
  if (entries_.empty()) return;
  MarkFrontSent();
  bytes_ -= entries_.front().bytes;
  RemoveFiles(entries_.front());
  entries_.pop_front();
  if (bytes_ <= limit_bytes_) warned_over_limit_ = false;
}

void ReportSpool::RemoveFiles(const Entry& entry) {
  std::error_code ec;
  for (const char* suffix : {"events", "upload", "data", "completion"}) fs::remove(PathOf(entry, suffix), ec);
}

}  // namespace dfv::daemon
