// Process-wide logging set-up. Libraries log through spdlog's default logger;
// only main() calls InitLogging.
#ifndef DFV_COMMON_LOGGING_H_
#define DFV_COMMON_LOGGING_H_

#include <string>

namespace dfv {

// `level`: trace, debug, info, warn, error. Logs go to stderr with the
// process name, so interleaved daemon logs stay readable.
void InitLogging(const std::string& process_name, const std::string& level = "info");

}  // namespace dfv

#endif  // DFV_COMMON_LOGGING_H_
