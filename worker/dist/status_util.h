// LibTorch's distributed code reports failures as c10::Error with a message;
// this turns one into the Status the rest of dfv speaks.
#ifndef DFV_WORKER_DIST_STATUS_UTIL_H_
#define DFV_WORKER_DIST_STATUS_UTIL_H_

#include <string>

#include "absl/status/status.h"

namespace dfv::dist {

// DEADLINE_EXCEEDED when `what` reads like a timeout, else UNAVAILABLE (a
// peer went away, a connection broke): both mean "not the job's fault".
absl::Status CollectiveFailure(const std::string& context, const std::string& what);

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_STATUS_UTIL_H_
