#include "worker/dist/status_util.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dfv::dist {

absl::Status CollectiveFailure(const std::string& context, const std::string& what) {
  // c10::Error messages carry a C++ backtrace after the first line.
  std::string first_line = what.substr(0, what.find('\n'));
  const std::string lower = absl::AsciiStrToLower(first_line);
  const bool timeout = absl::StrContains(lower, "timeout") || absl::StrContains(lower, "timed out") ||
                       absl::StrContains(lower, "deadline");
  std::string message = absl::StrCat(context, ": ", first_line);
  return timeout ? absl::DeadlineExceededError(message) : absl::UnavailableError(message);
}

}  // namespace dfv::dist
