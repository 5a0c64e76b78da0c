#include "worker/train/metrics_log.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv::train {

absl::StatusOr<MetricsLog> MetricsLog::Open(const std::string& path, int64_t resume_step) {
  MetricsLog log(path);
  std::string kept;
  if (resume_step >= 0) {
    auto existing = ReadFileToString(path);
    if (existing.ok()) {
      std::vector<std::string> lines = absl::StrSplit(*existing, '\n', absl::SkipEmpty());
      for (size_t i = 0; i < lines.size(); ++i) {
        if (i == 0) {
          std::vector<std::string> header = absl::StrSplit(lines[0], ',');
          if (header.size() < 2 || header[0] != "step") {
            return absl::DataLossError(absl::StrCat(path, ": not a dfv metrics file"));
          }
          log.columns_.assign(header.begin() + 2, header.end());
          kept += lines[0] + "\n";
          continue;
        }
        int64_t step = 0;
        std::string first = lines[i].substr(0, lines[i].find(','));
        if (!absl::SimpleAtoi(first, &step) || step > resume_step) continue;
        kept += lines[i] + "\n";
      }
    } else if (!absl::IsNotFound(existing.status())) {
      return existing.status();
    }
  }
  DFV_RETURN_IF_ERROR(WriteFileAtomically(path, kept));
  return log;
}

absl::Status MetricsLog::Append(int64_t step, int64_t epoch, const models::Metrics& metrics) {
  std::string text;
  if (columns_.empty()) {
    for (const auto& [name, value] : metrics) columns_.push_back(name);
    text = absl::StrCat("step,epoch,", absl::StrJoin(columns_, ","), "\n");
  }
  absl::StrAppend(&text, step, ",", epoch);
  for (const std::string& column : columns_) {
    text += ",";
    for (const auto& [name, value] : metrics) {
      if (name == column) {
        absl::StrAppendFormat(&text, "%.9g", value);
        break;
      }
    }
  }
  text += "\n";
  return AppendToFile(path_, text);
}

}  // namespace dfv::train
